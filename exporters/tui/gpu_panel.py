"""The GPUs of the run: power, memory, utilisation and temperature, one line each.

Reads `monitor.hardware.gpu.GpuSample` fields by name; a field the GPU does not report is None and shows "—".
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from exporters.tui.panel import TextPanel

NAME_WIDTH = 32  # at most; the column is as wide as the longest name


def _meter(ratio: float | None, width: int = 6) -> Text:
    if ratio is None:
        return Text("·" * width, "dim")
    full = round(max(0.0, min(1.0, ratio)) * width)
    style = "red3" if ratio >= 0.95 else "green3"
    return Text("▮" * full, style) + Text("▯" * (width - full), "grey35")


def _num(v: float | None, fmt: str, width: int) -> str:
    """Right-aligned in `width`, so an unknown "—" keeps the columns of the other GPUs' lines."""
    return ("—" if v is None else fmt.format(v)).rjust(width)


def _name(g: object) -> str:
    return str(getattr(g, "name", None) or "GPU").removeprefix("NVIDIA ")


def gpu_line(g: object, name_width: int) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f"{getattr(g, 'index', '?')} ", "bold")
    t.append(f"{_name(g):<{name_width}.{name_width}} ")
    if getattr(g, "lost", False):
        return t.append("lost (fell off the bus or driver reset)", "bold red")
    used, total = getattr(g, "memory_used_bytes", None), getattr(g, "memory_total_bytes", None)
    util = getattr(g, "utilization", None)
    t.append(_num(getattr(g, "power_w", None), "{:.0f} W", 6) + "  ")
    memory = f"{_num(used / 2**30 if used is not None else None, '{:.1f}', 0)}/" \
             f"{_num(total / 2**30 if total is not None else None, '{:.0f}', 0)} GiB"
    t.append(memory.rjust(13) + " ")
    t.append_text(_meter(used / total if used is not None and total else None))
    t.append("  " + _num(util * 100 if util is not None else None, "{:.0f} %", 5) + " ")
    t.append_text(_meter(util))
    t.append("  " + _num(getattr(g, "temperature_c", None), "{:.0f} °C", 5))
    throttle = _throttle(getattr(g, "throttle", None))
    if throttle:
        t.append(f"  throttled: {throttle}", "bold orange1")
    return t


def _throttle(value: object) -> str:
    """The sampler may report reasons as text, a collection of names, or just a flag."""
    if not value:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(str(v) for v in value)
    return "yes"


def gpu_text(gpus: Sequence[object], no_gpu: str) -> Text:
    if not gpus:
        return Text.assemble(("GPU  ", "bold"), (no_gpu, "dim"), no_wrap=True, overflow="ellipsis")
    width = min(NAME_WIDTH, max(len(_name(g)) for g in gpus))
    return Text("\n", no_wrap=True, overflow="ellipsis").join(gpu_line(g, width) for g in gpus)


class GpuPanel(TextPanel):
    _count = -1
    def show(self, gpus: Sequence[object], no_gpu: str) -> None:
        self.set_class(not gpus, "-none")  # one borderless line instead of an empty box
        text = gpu_text(gpus, no_gpu)
        self.show_content(text, text, layout=len(gpus) != self._count)  # its height is one line per GPU
        self._count = len(gpus)
