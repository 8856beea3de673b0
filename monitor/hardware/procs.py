"""Which process writes the log, which GPUs it runs on, and where its data is: read from /proc.

A direct /proc scan comparing (st_dev, st_ino) finds the writer under any path it opened the file by
(renamed, bind-mounted) and is 3-7× faster than psutil's open_files() (components.md §7). Scan once
at attach time and again when the writer is gone. Without /proc (macOS) nothing is found: the run's
GPUs then come from `--gpu` or are all of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from monitor.follow.read import train_bin_tokens
from monitor.snapshot import GpuSample

PROC = "/proc"
# Programs that only pass a training script's output on (`python train.py | tee out.log`): the
# training process is on the other end of their stdin pipe.
RELAYS = frozenset({"tee", "ts", "cat", "sed", "awk", "gawk", "mawk", "grep", "stdbuf"})
_O_ACCMODE = 0o3
_MAX_RELAYS = 4


@dataclass(frozen=True, slots=True)
class Writer:
    pid: int  # the process holding the log open for writing (`tee` in a pipeline)
    cmdline: tuple[str, ...]  # of the training process (training_pids[0])
    cwd: str | None  # of the training process: where nanoGPT's data/<dataset>/ is
    training_pids: tuple[int, ...]  # the training process first, then its descendants (torchrun's ranks)
    ns_pids: tuple[int, ...]  # the same processes' PIDs in nested PID namespaces (NSpid), for NVML matching


@dataclass(frozen=True, slots=True)
class _Proc:
    pid: int
    ppid: int
    comm: str
    writes_log: bool
    stdin_pipe: str | None  # "pipe:[123]"
    out_pipes: frozenset[str]  # pipes on fd 1 and 2


def find_writer(log_path: str, proc: str = PROC) -> Writer | None:
    """The process writing `log_path` (following a `| tee` pipe to the training process), or None."""
    try:
        st = os.stat(log_path)
    except OSError:
        return None
    table = {p.pid: p for p in _scan(proc, (st.st_dev, st.st_ino))}
    top = _top([p for p in table.values() if p.writes_log])
    if top is None:
        return None
    trainer = top
    for _ in range(_MAX_RELAYS):
        if trainer.comm not in RELAYS or trainer.stdin_pipe is None:
            break
        feeder = _top([p for p in table.values() if trainer.stdin_pipe in p.out_pipes])
        if feeder is None:
            break
        trainer = feeder
    pids = (trainer.pid, *sorted(_descendants(trainer.pid, table)))
    ns = tuple(n for pid in pids for n in _nspids(proc, pid))
    return Writer(pid=top.pid, cmdline=_cmdline(proc, trainer.pid), cwd=_cwd(proc, trainer.pid),
                  training_pids=pids, ns_pids=ns)


def alive(pid: int, proc: str = PROC) -> bool:
    """Running (a zombie that was killed but not yet reaped counts as gone)."""
    if not os.path.isdir(proc):
        return _signal_alive(pid)
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def _signal_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def started_at(pid: int, proc: str = PROC) -> float | None:
    """Wall time the process started (for the part of the run before trainwatch attached)."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"{proc}/stat", "rb") as f:
            btime = next(int(ln.split()[1]) for ln in f if ln.startswith(b"btime "))
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5), counted from `state`


def run_gpus(writer: Writer | None, samples: Sequence[GpuSample],
             fallback: Sequence[int] | None) -> tuple[tuple[int, ...], str]:
    """The run's GPU indexes and a sentence saying how they were chosen.

    The run's processes in NVML's list first (both PID forms: inside containers NVML may report host
    PIDs), then `--gpu` (`fallback`), then the only GPU process if there is exactly one, then all GPUs.
    """
    on_gpu = [(s.index, p.pid) for s in samples for p in s.processes]
    if writer is not None:
        ours = set(writer.training_pids) | set(writer.ns_pids)
        hits = sorted({i for i, pid in on_gpu if pid in ours})
        if hits:
            pids = sorted({pid for i, pid in on_gpu if pid in ours})
            return tuple(hits), (f"{_gpus(hits)}: where NVML lists the run's process{'es' if len(pids) > 1 else ''} "
                                 f"{', '.join(map(str, pids))}")
        why = "no process of the run is on a GPU (yet)"
    else:
        why = "the process writing the log was not found"
    if fallback:
        return tuple(fallback), f"{_gpus(fallback)}: from --gpu ({why})"
    if writer is not None and len(on_gpu) == 1:
        i, pid = on_gpu[0]
        return (i,), (f"GPU {i}: assumed, it runs the only GPU process (PID {pid}), but NVML's PIDs do not match "
                      "the run's (another PID namespace? try --gpu)")
    every = sorted({s.index for s in samples})
    if not every:
        return (), f"no GPUs ({why})"
    return tuple(every), f"all GPUs ({why})"


def dataset_tokens(cwd: str, dataset: str) -> int | None:
    """Tokens in nanoGPT's `data/<dataset>/train.bin` (uint16 ids) under the training's working directory."""
    if not dataset or os.sep in dataset or dataset in (".", ".."):
        return None
    try:
        return train_bin_tokens(os.path.join(cwd, "data", dataset))
    except OSError:
        return None


def _gpus(indexes: Sequence[int]) -> str:
    return ("GPU " if len(indexes) == 1 else "GPUs ") + ",".join(map(str, indexes))


def _scan(proc: str, key: tuple[int, int]) -> Iterator[_Proc]:
    """Every process, with whether it holds the file `key` open for writing and its stdio pipes."""
    me = os.getpid()
    try:
        entries = os.listdir(proc)
    except OSError:
        return
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            with open(f"{proc}/{pid}/stat", "rb") as f:
                stat = f.read()
            fds = os.listdir(f"{proc}/{pid}/fd")
        except OSError:  # exited meanwhile, or not ours to read
            continue
        writes, stdin, outs = False, None, set()
        for fd in fds:
            path = f"{proc}/{pid}/fd/{fd}"
            try:
                target = os.readlink(path)
                if target.startswith("pipe:"):
                    if fd == "0":
                        stdin = target
                    elif fd in ("1", "2"):
                        outs.add(target)
                elif not writes and target.startswith("/"):
                    s = os.stat(path)
                    writes = (s.st_dev, s.st_ino) == key and _writable(proc, pid, fd)
            except OSError:
                continue
        close = stat.rfind(b")")
        yield _Proc(pid=pid, ppid=int(stat[close + 2:].split()[1]),
                    comm=stat[stat.find(b"(") + 1:close].decode(errors="replace"),
                    writes_log=writes, stdin_pipe=stdin, out_pipes=frozenset(outs))


def _writable(proc: str, pid: int, fd: str) -> bool:
    try:
        with open(f"{proc}/{pid}/fdinfo/{fd}") as f:
            flags = next(int(ln.split()[1], 8) for ln in f if ln.startswith("flags:"))
    except (OSError, StopIteration, ValueError):
        return False
    return flags & _O_ACCMODE in (os.O_WRONLY, os.O_RDWR)


def _top(procs: list[_Proc]) -> _Proc | None:
    """The ancestor among `procs` (torchrun above its ranks, python above its DataLoader workers)."""
    pids = {p.pid for p in procs}
    roots = [p for p in procs if p.ppid not in pids]
    return min(roots, key=lambda p: p.pid) if roots else None


def _descendants(pid: int, table: dict[int, _Proc]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _nspids(proc: str, pid: int) -> tuple[int, ...]:
    try:
        with open(f"{proc}/{pid}/status") as f:
            line = next((ln for ln in f if ln.startswith("NSpid:")), "")
    except OSError:
        return ()
    return tuple(int(x) for x in line.split()[2:])  # [1] is the PID as this /proc sees it


def _cmdline(proc: str, pid: int) -> tuple[str, ...]:
    try:
        with open(f"{proc}/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return ()
    return tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)


def _cwd(proc: str, pid: int) -> str | None:
    try:
        return os.readlink(f"{proc}/{pid}/cwd")
    except OSError:
        return None
