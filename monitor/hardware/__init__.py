"""The machine, not the run: GPUs through NVML (`gpu.py`, the only pynvml import), the process that
writes a log, energy, and the table of GPU peaks."""
