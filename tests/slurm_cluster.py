"""A real one-node Slurm cluster on this machine for the tests: munged, slurmctld and slurmd in the foreground.

Debian's `slurm-wlm` and `munge`, run as the current user (root in CI) without systemd or cgroups:
everything — the munge key and socket, slurm.conf, state, spool, logs — lives in one temporary folder,
and the client commands find it through `SLURM_CONF` (`env`). The node is this machine as `slurmd -C`
describes it (hostname, CPUs, memory); its partition lets jobs share CPUs, so a test's jobs run at once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from prom_fixtures import free_port, wait_for

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")

# What each line is for: the proctrack/task plugins that need no cgroups (a container has none to give),
# no accounting database, a time limit enforced to the second (OverTimeLimit=0, a short KillWait), and ended
# jobs purged soon (MinJobAge) so that the cluster's memory does not carry one test's jobs into the next.
CONF = """\
ClusterName=trainwatch-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
OverTimeLimit=0
MinJobAge={min_job_age}
{node}
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
"""


def missing() -> list[str]:
    """The Slurm and munge programs this machine lacks (CI installs them: apt-get install slurm-wlm munge)."""
    return [b for b in BINARIES if shutil.which(b) is None]


class SlurmCluster:
    """munged, slurmctld and slurmd started in `root`; `stop()` cancels every job and ends all three."""

    def __init__(self, root: Path, *, min_job_age: int = 30) -> None:
        self.root = root
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        for sub in ("state", "spool", "munge", "jobs"):
            (root / sub).mkdir(mode=0o700, exist_ok=True)
        (root / "munge").chmod(0o711)  # munged wants its socket's folder searchable by the users it serves
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        for var in [v for v in self.env if v.startswith(("SLURM_", "SBATCH_", "SQUEUE_"))]:
            if var != "SLURM_CONF":  # a test run inside a Slurm job must not steer this cluster
                del self.env[var]
        node = self._node()
        self.host = re.search(r"NodeName=(\S+)", node).group(1)  # type: ignore[union-attr]
        munge_socket = root / "munge" / "munge.socket"
        self.conf.write_text(CONF.format(host=self.host, ctld_port=free_port(), slurmd_port=free_port(),
                                         user=_user(), munge_socket=munge_socket, dir=root, node=node,
                                         min_job_age=min_job_age))
        try:
            self._start_munge(munge_socket)
            self._start("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
            self._start("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
            wait_for(self._idle, 60, f"the node to be idle in sinfo (logs in {root})", interval=0.2)
        except BaseException:
            self.stop()
            raise

    def _node(self) -> str:
        """This machine's NodeName line as slurmd itself sees it (its hostname, CPUs, sockets, memory)."""
        out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True, env=self.env).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("NodeName="))
        return f"{line} NodeAddr=127.0.0.1 State=UNKNOWN"

    def _start_munge(self, socket: Path) -> None:
        key = self.root / "munge" / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
        # --force: munged refuses to run as root, or with a key under /tmp, without it
        self._start("munged", ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={socket}",
                               f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                               f"--log-file={self.root / 'munge' / 'munged.log'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        wait_for(lambda: self._alive("munged") and socket.exists(), 20, "munged's socket")

    def _start(self, name: str, argv: list[str]) -> None:
        with (self.root / f"{name}.out").open("wb") as fh:
            self.procs.append((name, subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=self.env,
                                                      stdin=subprocess.DEVNULL)))

    def _alive(self, name: str) -> bool:
        for n, proc in self.procs:
            if n == name and proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n"
                                     f"{(self.root / f'{name}.out').read_text(errors='replace')[-3000:]}")
        return True

    def _idle(self) -> bool:
        for name, _ in self.procs:
            self._alive(name)
        out = self.run("sinfo", "--noheader", "--format=%t", check=False)
        return out.returncode == 0 and out.stdout.split() == ["idle"]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A Slurm client command against this cluster."""
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def sbatch(self, *options: str, wrap: str, cwd: Path | None = None) -> int:
        """Submit a batch job running the shell command `wrap`; its job id."""
        out = self.run("sbatch", "--parsable", *options, f"--chdir={cwd or self.root / 'jobs'}", "--wrap", wrap)
        return int(out.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as a dict (empty once the job is purged); for the tests' own waits."""
        out = self.run("scontrol", "--oneliner", "show", "job", str(job_id), check=False)
        return dict(re.findall(r"(\w+)=(\S*)", out.stdout)) if out.returncode == 0 else {}

    def state(self, job_id: int) -> str | None:
        return self.job(job_id).get("JobState")

    def stop(self) -> None:
        """Cancel every job and wait for their steps to end (slurmstepd outlives slurmd otherwise), then
        end slurmd, slurmctld and munged, newest first."""
        if self._running("slurmctld") and self._running("slurmd"):
            self.run("scancel", f"--user={_user()}", check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.run("squeue", "--noheader", "--states=R,CG",
                                                           check=False).stdout.strip():
                time.sleep(0.2)
        for _, proc in reversed(self.procs):
            end(proc)
        self.procs.clear()

    def _running(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self.procs)


def end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if that is not enough within 15 s; reaped either way."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name
