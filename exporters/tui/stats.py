"""Stats: loss, tokens, epochs, FLOPs, MFU, energy and cost: the numbers `report` prints, laid out to glance at."""

from __future__ import annotations

import math

from rich.text import Text

from exporters.plan_report import plan_line
from exporters.tui.panel import TextPanel
from exporters.tui.progress import iter_time
from monitor.snapshot import Snapshot
from monitor.units import duration, human

LABEL_WIDTH = 8


def _loss(v: float | None) -> Text:
    if v is None:
        return Text("—", "dim")
    return Text(f"{v:.4f}", "bold red" if not math.isfinite(v) else "")


def _of(done: float | None, total: float | None, unit: str = "") -> str:
    if done is None:
        return "—"
    return human(done, unit) + (f" / {human(total, unit)}" if total is not None else "")


def _row(t: Text, label: str, *parts: str | Text) -> None:
    if t:
        t.append("\n")
    t.append(f"{label:<{LABEL_WIDTH}}", "bold")
    for p in parts:
        t.append_text(p) if isinstance(p, Text) else t.append(p)


def _dim(text: str) -> Text:
    return Text(text, "dim")


def stats_text(s: Snapshot) -> Text:
    fc = s.forecast
    t = Text(no_wrap=True, overflow="ellipsis")
    _row(t, "loss", "train ", _loss(s.train_loss), "  val ", _loss(s.val_loss), "  best ", _loss(s.best_val))
    fl = s.final_loss
    if s.state != "finished":
        _row(t, "final", fl.line() if fl.p50 is not None else _dim(f"— ({fl.reason})" if fl.reason else "—"),
             _dim("  schedule guessed") if fl.p50 is not None and "assumed" in fl.schedule else "")
    _row(t, "tokens", _of(s.tokens_seen, s.tokens_total),
         _dim(f"  {human(fc.tokens_per_s)}/s") if fc.tokens_per_s else "")
    if s.epochs is not None:
        _row(t, "epochs", f"{s.epochs:.2f}" + (f" / {s.epochs_total:.2f}" if s.epochs_total is not None else ""))
    else:
        _row(t, "epochs", _dim("— (--dataset-tokens or --data-dir)"))
    _row(t, "compute", _of(s.flops_done, s.flops_total, "FLOP"))
    # The log's figure is nanoGPT's, always against an A100's 312 TFLOPS, whatever the GPU.
    real = Text("—", "dim") if s.mfu is None else Text(f"{100 * s.mfu:.1f} % of peak", "bold")
    logged = _dim(f"  log: {100 * s.mfu_logged:.1f} % (A100)") if s.mfu_logged is not None else ""
    _row(t, "MFU", real, logged)
    _row(t, "energy", *_energy(s))
    if s.cost is not None:
        _row(t, "cost", f"{s.cost:.2f}" if s.cost >= 0.01 else "< 0.01")
    _row(t, "time", f"{duration(s.elapsed_s)} so far",
         _dim(f"  {iter_time(fc.iter_s)}/iter") if fc.iter_s is not None else "")
    if s.plan is not None:
        _row(t, "plan", Text(plan_line(s.plan), "yellow" if s.plan.verdict == "slower" else ""))
    _row(t, "saves", f"{s.checkpoints} checkpoints", _dim(f"  {s.lines:,} lines"),
         Text(f"  {s.parse_errors} unparsed", "yellow") if s.parse_errors else "")
    return t


def _energy(s: Snapshot) -> list[str | Text]:
    e = s.energy
    if e.joules is None:
        return [_dim("— (no NVML; --power-watts W)")]
    parts: list[str | Text] = [human(e.joules / 3600, "Wh")]
    if s.energy_forecast_j is not None:
        parts.append(f" → {human(s.energy_forecast_j / 3600, 'Wh')} at end")
    parts.append(_dim(f"  ({e.source})"))
    return parts


class StatsPanel(TextPanel):
    def show(self, s: Snapshot) -> None:
        text = stats_text(s)
        self.show_content(text, text)
