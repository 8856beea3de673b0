"""Coverage-guided fuzzing of the log path with atheris (libFuzzer), run by hand, outside the project's venv.

    python3.11 -m venv /work/fuzzvenv && /work/fuzzvenv/bin/pip install atheris prometheus-client==0.26.0
    PYTHONPATH=. /work/fuzzvenv/bin/python bench/fuzz_atheris.py TARGET [CORPUS_DIR] -max_total_time=300 \
        -timeout=10 -rss_limit_mb=2048

Targets (each input is one fuzzer byte string):
- `log`: bytes, cut into chunks of fuzzer-chosen sizes → LineSplitter → Ingest with a fuzzer-chosen
  parser (nanogpt, llmc, modded, nanochat, hf, auto), fed once as backfill (the bulk path for big
  batches) and once as live lines → snapshot.build → the report's text and strict JSON → the
  Prometheus text exposition, parsed back. Nothing may raise; every JSON number must be finite.
- `config`: text → parsers.pyconfig.literal_value and parse_assignment. Nothing may raise; a value is
  None, a bool, a finite number ≤ 1e30, a string of ≤ 4,096 chars, or a short list/tuple of those.
- `bulk`: iteration lines (fuzzer-chosen numbers and fillers) read on attach through the bulk path and
  line by line: the same last iteration, loss, iteration count and run status.
`--seeds DIR` writes seed inputs from tests/fixtures and shared/corpus logs into DIR first.
libFuzzer's own flags follow the target; a crash leaves `crash-<sha1>` with the input in the cwd.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports():
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from exporters import report
    from exporters.prometheus import TrainwatchCollector
    from monitor.daemon.load import new_ingest
    from monitor.follow.lines import LineSplitter
    from monitor.model.build import build_snapshot
    from monitor.model.ingest import Ingest
    from monitor.model.state import RunState
    from monitor.snapshot import Snapshot
    from parsers.detect import PARSERS, make_parser
    from parsers.pyconfig import MAX_STR_CHARS, literal_value, parse_assignment

FORMATS = [*PARSERS, "auto"]
NOW = 1.8e9


def _refuse(name: str) -> None:
    raise AssertionError(f"report JSON holds {name}")


def fuzz_log(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    fmt = FORMATS[fdp.ConsumeIntInRange(0, len(FORMATS) - 1)]
    chunk = fdp.ConsumeIntInRange(1, 4096)
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    head = body[:65536]
    ingest = new_ingest(head, format=None if fmt == "auto" else fmt, user={})
    live = Ingest(make_parser(None if fmt == "auto" else fmt, head.decode("utf-8", "replace")), RunState())
    splitter = LineSplitter()
    lines: list[str] = []
    for i in range(0, len(body), chunk):
        lines += splitter.feed(body[i:i + chunk])
    last = splitter.flush()
    if last is not None:
        lines.append(last)
    ingest.feed_lines(lines, None)
    for i, line in enumerate(lines):
        live.feed_lines([line], NOW + i)
    for ing in (ingest, live):
        snap = build_snapshot(ing.state, run="fuzz", log="fuzz.log", now=NOW + len(lines) + 1, lines=ing.lines,
                              parse_errors=ing.parse_errors)
        report.to_text(snap)
        json.loads(report.to_json(snap), parse_constant=_refuse)
        _exposition(snap)


def _exposition(snap: Snapshot) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrainwatchCollector(lambda: (snap,), version="fuzz"))
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert any(f.name == "trainwatch_run_info" for f in families)


def _check_value(v: object, depth: int = 0) -> None:
    assert depth <= 25, "nesting"
    if v is None or isinstance(v, bool):
        return
    if isinstance(v, (int, float)):
        assert math.isfinite(v) and abs(v) <= 1e30, v
    elif isinstance(v, str):
        assert len(v) <= MAX_STR_CHARS, len(v)
    elif isinstance(v, (list, tuple)):
        assert len(v) <= 64
        for x in v:
            _check_value(x, depth + 1)
    else:
        raise AssertionError(f"unexpected value type {type(v)}")


def fuzz_config(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))
    _check_value(literal_value(text))
    kv = parse_assignment(text)
    if kv is not None:
        _check_value(kv[1])
    kv = parse_assignment("max_iters = " + text)
    if kv is not None:
        _check_value(kv[1])


def fuzz_bulk(data: bytes) -> None:
    """Bulk and line-by-line reading of the same attach must agree on what views show."""
    fdp = atheris.FuzzedDataProvider(data)
    it = fdp.ConsumeIntInRange(0, 10**6)
    lines = ["Overriding: max_iters = 5000", "Overriding: eval_interval = " + str(fdp.ConsumeIntInRange(1, 600))]
    for _ in range(fdp.ConsumeIntInRange(300, 800)):
        kind = fdp.ConsumeIntInRange(0, 40)
        if kind == 0:
            text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 60))
            lines.append(text.replace("\n", " "))  # a line from LineSplitter never holds a newline
            continue
        it += fdp.ConsumeIntInRange(1, 3) if kind > 2 else fdp.ConsumeIntInRange(-5, 50)
        loss = ("nan" if kind == 1 else f"{fdp.ConsumeFloatInRange(0.0, 12.0):.4f}")
        ms = fdp.ConsumeFloatInRange(0.0, 5000.0) if kind in (2, 3) else 100 + fdp.ConsumeFloatInRange(0.0, 5.0)
        lines.append(f"iter {max(it, 0)}: loss {loss}, time {ms:.2f}ms, mfu {fdp.ConsumeFloatInRange(-100, 60):.2f}%")
    bulk = Ingest(make_parser("nanogpt"), RunState(format="nanogpt"))
    bulk.feed_lines(lines, None)
    slow = Ingest(make_parser("nanogpt"), RunState(format="nanogpt"))
    for line in lines:
        slow.feed_lines([line], None)
    a, b = bulk.state, slow.state
    got = (a.last.iter if a.last else None, str(a.last.loss) if a.last else None, a.iteration_lines, a.status)
    want = (b.last.iter if b.last else None, str(b.last.loss) if b.last else None, b.iteration_lines, b.status)
    assert got == want, f"bulk {got} != line by line {want}"


TARGETS = {"log": fuzz_log, "config": fuzz_config, "bulk": fuzz_bulk}


def write_seeds(out: Path) -> None:
    """Pieces of real logs (≤ 8 kB each) as a starting corpus for `log`."""
    out.mkdir(parents=True, exist_ok=True)
    sources = [*sorted((ROOT / "tests" / "fixtures").rglob("*.log")),
               *sorted((ROOT.parent / "shared" / "corpus").rglob("*.log"))]
    for n, path in enumerate(sources):
        data = path.read_bytes()
        for k, at in enumerate((0, len(data) // 2, max(0, len(data) - 8192))):
            (out / f"{n:03d}-{k}-{path.stem[:40]}").write_bytes(bytes([n % len(FORMATS), 0, 64]) + data[at:at + 8192])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--seeds":
        write_seeds(Path(sys.argv[2]))
        return
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: fuzz_atheris.py {{{','.join(TARGETS)}}} [CORPUS] [libFuzzer flags]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
