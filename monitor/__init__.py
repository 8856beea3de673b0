"""The core and the daemon of trainwatch: from a log file to immutable snapshots.

    log file ─follow─▶ lines ─parsers─▶ events ─model─▶ RunState ─model─▶ Snapshot ─▶ exporters
                              hardware (GPU, process, energy) ─────────────┘          (TUI, metrics,
                              daemon: the one writer thread that composes it all       report, alerts)

Where is X?
- the types every view reads (Snapshot, Forecast, IterPoint, GpuSample, Alert, RunTelemetry, GpuSpec, PlanCheck):
  `snapshot.py`, standard library only;
- following a file (offsets, truncation, rotation, inotify or polling), reading one once: `follow/`;
- run state, forecast, tokens and FLOPs, the final-loss prediction, building the snapshot, the backtest
  replay, what a run will need (`model/plan.py`), a Slurm job's end state and time limit (`model/job.py`; all
  pure): `model/`;
- GPUs through NVML, the process writing a log, energy, the GPU table: `hardware/`;
- alert rules, what already fired (on disk), running them on each publish: `alerts/`;
- `trainwatch simulate`, a fake nanoGPT run: `sim/`;
- the writer thread, telemetry, the config file, loading a whole log, systemd units, asking Slurm for jobs
  (`slurm.py`): `daemon/`;
- arguments, commands, exit codes, the one place that wires exporters in: `cli/`;
- durations, sizes, printable text (`units.py`); the error a user can fix (`errors.py`); the sane range of
  every number from a log or a user (`limits.py`); every default and the XDG directories (`defaults.py`).

The import rules between these rooms are contracts in pyproject.toml, checked by `lint-imports`.
"""
