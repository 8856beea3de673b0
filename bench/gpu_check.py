"""The real-GPU check: a short real training (bench/gpu_train.py, `| tee train.log`) followed live with
trainwatch's own parts (monitor.hardware: gpu, meter, procs; the ingest and snapshot path), then a
comparison of what trainwatch said against what happened.

Needs: torch with a GPU (for the training), nvidia-ml-py (pynvml). Nothing else of trainwatch's
dependencies: without pynvml it still trains and reports what it can. Output goes to stdout and, when
$OUT is set, to $OUT/gpu_check.txt (with train.log and torch_stats.json beside it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.daemon.load import new_ingest  # noqa: E402
from monitor.follow.lines import LineSplitter  # noqa: E402
from monitor.hardware.gpu import BackgroundSampler, check_lines, make_sampler  # noqa: E402
from monitor.hardware.meter import EnergyMeter  # noqa: E402
from monitor.hardware.peaks import peak_flops  # noqa: E402
from monitor.hardware.procs import Writer, alive, dataset_tokens, find_writer, run_gpus, started_at  # noqa: E402
from monitor.model.build import build_snapshot  # noqa: E402
from monitor.model.ingest import Ingest  # noqa: E402
from monitor.snapshot import GpuSample, Snapshot  # noqa: E402
from monitor.units import duration, human  # noqa: E402

OUT = os.environ.get("OUT")
_report: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    _report.append(line)


def gib(b: float | None) -> str:
    return "—" if b is None else f"{b / 2**30:.2f} GiB"


def joules(j: float | None) -> str:
    return "—" if j is None else f"{j:,.0f} J ({j / 3600:.2f} Wh)"


def pct(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{(a - b) / b * 100:+.1f} %"


class Follow:
    """The log read as trainwatch reads it live: new bytes → lines → parser → state, stamped on arrival."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.splitter = LineSplitter()
        self.ingest: Ingest | None = None

    def poll(self, now: float) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        lines = self.splitter.feed(chunk)
        if lines:
            if self.ingest is None:
                self.ingest = new_ingest("\n".join(lines).encode(), format="nanogpt", user={})
            self.ingest.feed_lines(lines, now)


class Check:
    """One run of the check: launch, follow and sample until the training ends, then report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rundir = Path(tempfile.mkdtemp(prefix="tw-gpu-check-"))
        self.log = self.rundir / "train.log"
        self.follow = Follow(self.log)
        self.whole = EnergyMeter()  # from launch: the reference for what trainwatch estimates
        self.late = EnergyMeter()  # trainwatch's view: attached at the first iteration line
        self.writer: Writer | None = None
        self.gpus: tuple[int, ...] = ()
        self.how = "not chosen yet"
        self.attach_at: float | None = None
        self.before_s: float | None = None  # the process's age at attach
        self.log_before_s: float | None = None  # the log's elapsed time at attach
        self.at_10: Snapshot | None = None
        self.snap: Snapshot | None = None
        self.seen_pids: set[tuple[int, int]] = set()
        self.power_max = self.temp_max = 0.0
        self.clocks: list[float] = []
        self.throttles: set[str] = set()
        self.ours: list[GpuSample] = []
        self.launched = self.finished = 0.0
        self.serve: Serve | None = None

    def run(self) -> int:
        a = self.args
        train = a.train_cmd or f"{sys.executable} -u {ROOT / 'bench' / 'gpu_train.py'} --seconds {a.seconds}"
        self.launched = time.time()
        shell = subprocess.Popen(f"{train} | tee {self.log} > /dev/null", shell=True, cwd=self.rundir,
                                 stderr=subprocess.PIPE, text=True)
        self.serve = Serve(self.log, self.rundir) if a.serve else None
        bg = BackgroundSampler(make_sampler(), interval_s=a.interval)
        seen_at = 0.0
        try:
            while shell.poll() is None and time.time() < self.launched + a.timeout:
                time.sleep(0.25)
                latest = bg.latest()
                if latest and latest[0].at != seen_at:
                    seen_at = latest[0].at
                    self.step(time.time(), latest)
                if self.serve is not None and self.at_10 is not None and self.serve.at_10 is None:
                    self.serve.at_10 = self.serve.scrape()
        finally:
            bg.stop()
            if shell.poll() is None:
                shell.kill()
            shell.wait()
        if self.serve is not None:
            time.sleep(2.0)  # the serve process publishes the last line and sees the process gone
            self.serve.final = self.serve.scrape()
            self.serve.stop()
        self.finished = time.time()
        self.follow.poll(self.finished)
        self.snap = self.snapshot(self.finished) or self.snap
        self.report(shell.returncode, shell.stderr.read() if shell.stderr else "")
        return 0 if shell.returncode == 0 else 1

    def step(self, now: float, latest: tuple[GpuSample, ...]) -> None:
        """What trainwatch's writer loop does on a new GPU sample."""
        self.follow.poll(now)
        if self.writer is None or not alive(self.writer.training_pids[0]):
            self.writer = find_writer(str(self.log)) or self.writer
        if "where NVML lists" not in self.how:
            self.gpus, self.how = run_gpus(self.writer, latest, None)
        ours = [s for s in latest if s.index in self.gpus]
        w = self.writer
        self.whole.pids = self.late.pids = frozenset(w.training_pids + w.ns_pids) if w else frozenset()
        self.whole.update(ours)
        self.seen_pids |= {(s.index, p.pid) for s in latest for p in s.processes}
        for s in ours:
            self.power_max = max(self.power_max, s.power_w or 0)
            self.temp_max = max(self.temp_max, s.temperature_c or 0)
            self.clocks += [s.sm_clock_mhz] if s.sm_clock_mhz else []
            self.throttles |= set(s.throttle)
        state = self.follow.ingest.state if self.follow.ingest else None
        if state is None or state.last is None:
            return
        if self.attach_at is None:
            self.attach_at = now
            start = started_at(w.training_pids[0]) if w else None
            self.before_s = now - (start or self.launched)
            self.log_before_s = state.clock_s  # the iterations' own printed durations so far
        self.late.update(ours)
        self.ours = ours
        snap = self.snap = self.snapshot(now)
        if (self.at_10 is None and snap is not None and snap.fraction is not None and snap.fraction >= 0.10
                and snap.forecast.eta_s is not None):
            self.at_10 = snap

    def snapshot(self, now: float) -> Snapshot | None:
        """What trainwatch publishes: the run state with the meter's energy and the GPUs' peak."""
        if self.follow.ingest is None or self.attach_at is None:
            return None
        peaks = [peak_flops(s.name) for s in self.ours]
        peak = peaks[0] if peaks and None not in peaks else None
        return build_snapshot(self.follow.ingest.state, run="gpu-check", log=str(self.log), now=now,
                              energy=self.late.energy(self.before_s), gpus=tuple(self.ours), gpu_peak_flops=peak,
                              history=False)

    def report(self, rc: int, err: str) -> None:
        say()
        say(f"training: exit {rc} after {self.finished - self.launched:.0f} s, in {self.rundir}")
        if rc != 0 and err:
            say("training stderr (last lines):")
            for line in err.strip().splitlines()[-15:]:
                say(f"  | {line}")
        stats_file = self.rundir / "torch_stats.json"
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        self.report_process(stats)
        self.report_energy(stats)
        self.report_forecast(stats)
        if self.serve is not None:
            self.serve.report(self.late.energy(self.before_s).joules, self.whole.energy(None).joules)

    def report_process(self, stats: dict) -> None:
        say("\n-- process discovery (monitor.hardware.procs)")
        w = self.writer
        if w is None:
            say("writer of the log: not found")
        else:
            say(f"writer of the log: PID {w.pid}; training process {w.training_pids[0]}: {' '.join(w.cmdline)[:120]}")
            say(f"training PIDs {list(w.training_pids)}, NSpid {list(w.ns_pids) or '—'}, cwd {w.cwd}")
            if stats.get("pid"):
                same = "matches" if stats["pid"] in w.training_pids else "DIFFERS from"
                say(f"torch's own os.getpid(): {stats['pid']} ({same} /proc)")
        say(f"NVML compute processes seen (GPU, PID): {sorted(self.seen_pids) or '—'}")
        say(f"run's GPUs: {list(self.gpus)} — {self.how}")
        if w and w.cwd:
            tokens = dataset_tokens(w.cwd, "pystdlib")
            say(f"dataset tokens from data/pystdlib/train.bin: {tokens:,}" if tokens else "dataset tokens: —")

    def report_energy(self, stats: dict) -> None:
        say("\n-- power and energy (monitor.hardware.meter)")
        whole, late = self.whole, self.late
        e_whole = whole.energy(None)
        say(f"mean power {e_whole.mean_power_w or 0:.0f} W, max {self.power_max:.0f} W; "
            f"temperature max {self.temp_max:.0f} C; "
            f"SM clock {min(self.clocks, default=0):.0f}-{max(self.clocks, default=0):.0f} MHz; "
            f"throttle reasons seen: {', '.join(sorted(self.throttles)) or 'none'}")
        say(f"whole run from launch, sampled every {self.args.interval:g} s: "
            f"by counter {joules(whole.counter_joules)}, "
            f"by power integration {joules(whole.power_joules)} "
            f"(power vs counter {pct(whole.power_joules, whole.counter_joules)}), source {e_whole.source}, "
            f"counter resets {whole.resets}")
        if self.attach_at is not None and self.before_s is not None:
            e = late.energy(self.before_s)
            say(f"as trainwatch reports it, attached at the first iteration line "
                f"{self.attach_at - self.launched:.1f} s after launch: measured {joules(late.measured_joules)} "
                f"+ estimated {joules(e.estimated_joules)} (mean power × {self.before_s:.1f} s before attach) "
                f"= {joules(e.joules)}, source {e.source}")
            say(f"  vs the whole-run reference {joules(e_whole.joules)}: {pct(e.joules, e_whole.joules)}")
            e_log = late.energy(self.log_before_s)
            say(f"  with the log's elapsed time before attach ({self.log_before_s or 0:.1f} s) instead of the "
                f"process's age: {joules(e_log.joules)}, {pct(e_log.joules, e_whole.joules)}")
        say(f"peak VRAM: NVML {gib(whole.memory_peak_bytes)} (of the {whole.memory_peak_source or '—'}); "
            f"torch max reserved {gib(stats.get('max_memory_reserved'))}, "
            f"max allocated {gib(stats.get('max_memory_allocated'))}")

    def report_forecast(self, stats: dict) -> None:
        say("\n-- progress, MFU, forecast (monitor.snapshot)")
        snap, at_10 = self.snap, self.at_10
        if snap is None:
            say("no snapshot: the log never showed an iteration while sampling")
            return
        fc = snap.forecast
        say(f"state {snap.state}, iter {snap.iter}/{snap.max_iters}, {snap.parse_errors} parse errors")
        say(f"tokens/s {human(fc.tokens_per_s)}, FLOPs/token {human(snap.flops_per_token)} "
            f"(torch: {human(stats.get('flops_per_token'))}), params {human(snap.params)}")
        mfu = "—" if snap.mfu is None else f"{snap.mfu * 100:.1f} %"
        logged = "—" if snap.mfu_logged is None else f"{snap.mfu_logged * 100:.1f} %"
        say(f"MFU vs the GPU's peak ({stats.get('device', '?')}: {human(snap.gpu_peak_flops, 'FLOP/s')}): {mfu}; "
            f"the log's own mfu (vs A100 312 TFLOP/s): {logged}")
        if at_10 is None or at_10.fraction is None:
            say("forecast at 10 %: none was made")
            return
        f10 = at_10.forecast
        say(f"forecast made at iter {at_10.iter} ({at_10.fraction * 100:.0f} %), "
            f"{at_10.taken_at - self.launched:.0f} s after launch: ETA {duration(f10.eta_s)} "
            f"(p10 {duration(f10.eta_p10_s)}, p90 {duration(f10.eta_p90_s)}), "
            f"energy forecast {joules(at_10.energy_forecast_j)}")
        end = self.follow.ingest.state.last_wall if self.follow.ingest else None
        if end is not None and f10.finish_at is not None:
            band = f10.finish_p10 is not None and f10.finish_p90 is not None and f10.finish_p10 <= end <= f10.finish_p90
            say(f"  finish: predicted {f10.finish_at - self.launched:.0f} s, actual {end - self.launched:.0f} s "
                f"after launch ({pct(f10.finish_at - at_10.taken_at, end - at_10.taken_at)} on the remaining time; "
                f"{'inside' if band else 'OUTSIDE'} the p10-p90 band)")
        final = self.late.energy(self.before_s).joules
        say(f"  energy: forecast {joules(at_10.energy_forecast_j)} vs final {joules(final)} "
            f"({pct(at_10.energy_forecast_j, final)})")


class Serve:
    """The real `trainwatch serve` following the same log: what its /metrics say, at ~10 % and at the end."""

    SHOWN = ("trainwatch_run_state", "trainwatch_iteration", "trainwatch_max_iterations", "trainwatch_eta_seconds",
             "trainwatch_expected_finish_timestamp_seconds", "trainwatch_iteration_duration_seconds",
             "trainwatch_tokens_per_second", "trainwatch_mfu_ratio", "trainwatch_logged_mfu_ratio",
             "trainwatch_energy_joules_total", "trainwatch_energy_forecast_joules", "trainwatch_gpu_power_watts",
             "trainwatch_gpu_memory_used_bytes", "trainwatch_gpu_utilization_ratio", "trainwatch_error_info")

    def __init__(self, log: Path, rundir: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.err = rundir / "serve.err"
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "XDG_STATE_HOME": str(rundir / "state")}
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", str(log), "--listen",
                                      f"127.0.0.1:{self.port}", "--poll-interval", "0.5"],
                                     stdout=subprocess.DEVNULL, stderr=self.err.open("w"), env=env, cwd=ROOT)
        self.at_10: dict[str, float] | None = None
        self.final: dict[str, float] | None = None

    def scrape(self) -> dict[str, float]:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError as e:
            say(f"serve: scrape failed: {e}")
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in self.SHOWN and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                if "run_state" in key and value.startswith("0"):
                    continue
                out[key] = float(value)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def report(self, reference_j: float | None, whole_j: float | None) -> None:
        say("\n-- the real `trainwatch serve` on the same log (/metrics)")
        for label, data in (("at ~10 %", self.at_10), ("at the end", self.final)):
            say(f"{label}:")
            for key, value in sorted((data or {}).items()):
                say(f"  {key} {value:.6g}")
        energy = next((v for k, v in (self.final or {}).items() if k.startswith("trainwatch_energy_joules")), None)
        say(f"serve's energy {joules(energy)} vs this check's attach-time meter {joules(reference_j)} "
            f"({pct(energy, reference_j)}) and the from-launch reference {joules(whole_j)} ({pct(energy, whole_j)})")
        tail = self.err.read_text().strip().splitlines()[-6:] if self.err.exists() else []
        for line in tail:
            say(f"  serve stderr | {line}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=100, help="length of the training loop")
    ap.add_argument("--interval", type=float, default=1.0, help="GPU sampling interval (trainwatch's default)")
    ap.add_argument("--timeout", type=float, default=220, help="give up on the training after this long")
    ap.add_argument("--train-cmd", help="shell command of the training instead of bench/gpu_train.py")
    ap.add_argument("--no-serve", dest="serve", action="store_false",
                    help="do not also run `trainwatch serve` (it needs watchdog and prometheus-client)")
    args = ap.parse_args()
    say(f"== trainwatch GPU check  {time.strftime('%Y-%m-%d %H:%M:%S')}  python {platform.python_version()}  "
        f"kernel {platform.release()}")
    missing = [m for m in ("pynvml", "torch") if importlib.util.find_spec(m) is None]
    if missing:
        say(f"missing modules: {', '.join(missing)} (the parts that need them are reported as unknown)")
    for line in check_lines():
        say(f"check: {line}")
    check = Check(args)
    rc = check.run()
    if OUT:
        out = Path(OUT)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.txt").write_text("\n".join(_report) + "\n")
        for name in ("train.log", "torch_stats.json"):
            if (check.rundir / name).exists():
                shutil.copy(check.rundir / name, out / name)
    return rc


if __name__ == "__main__":
    sys.exit(main())
