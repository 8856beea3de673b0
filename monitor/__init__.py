"""The core and the daemon of trainwatch: from a log file to immutable snapshots.

    log file ─follow─▶ lines ─parsers─▶ events ─model─▶ RunState ─model─▶ Snapshot ─▶ exporters
                                                     hardware (GPU, process, energy) ─┘     (TUI, metrics,
                                                     daemon: one writer thread composes it   report, alerts)

Where is X?

| concern | place |
| --- | --- |
| the types views read (Snapshot, Forecast, IterPoint, GpuSample, Alert, RunTelemetry …) | `snapshot.py` (stdlib only) |
| following a file: offsets, truncation, rotation, inotify or polling; reading it once | `follow/` (`tail`, `lines`, `wake`, `read`) |
| the run state, the forecast, tokens/FLOPs, the snapshot, the backtest replay (pure) | `model/` (`state`, `ingest`, `bulk`, `forecast`, `compute`, `build`, `backtest`) |
| GPUs (NVML), the process writing a log, energy, GPU peaks | `hardware/` (`gpu`, `procs`, `meter`, `peaks`, `simgpu`) |
| alert rules, what fired (on disk), running them on each publish | `alerts/` (`rules`, `store`, `pump`) |
| `trainwatch simulate`: a fake nanoGPT run | `sim/` (`plan`, `emit`, `text`, `presets`, `write`) |
| the writer thread, telemetry, the config file, loading a whole log, systemd units | `daemon/` (`writer`, `telemetry`, `config`, `load`, `preview`, `install`) |
| arguments, commands, exit codes: the one place that wires exporters in | `cli/` |
| durations, sizes, printable text; the user-facing error | `units.py`, `errors.py` |

The import rules between these rooms are contracts in pyproject.toml, checked by `lint-imports`.
"""
