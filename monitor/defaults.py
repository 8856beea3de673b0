"""One table of defaults: what trainwatch does when neither a flag nor the config file says otherwise,
and where its files live (the XDG base directories). Every module that needs one of these reads it here.
Standard library only."""

from __future__ import annotations

import os
from collections.abc import Mapping

LISTEN_HOST = "127.0.0.1"  # never all interfaces unless told (`--listen 0.0.0.0:10464`)
LISTEN_PORT = 10464
"""Not in 9100–9999: the Prometheus wiki's exporter port list has allocated all of that range (since 2023),
so any number there belongs to some registered exporter. 10464 is also clear of the ports found on
training boxes: the Prometheus stack (9090–9094), node (9100), DCGM (9400), nvidia_gpu_exporter (9835),
OpenTelemetry's Prometheus exporter (9464), mtail (3903), kubelet/kube-proxy (10248–10259), Zabbix
(10050/10051), TensorBoard (6006), Jupyter (8888), torch.distributed (29400/29500), and below Linux's
ephemeral range (32768–60999), so an outgoing connection never holds it."""
LISTEN = f"{LISTEN_HOST}:{LISTEN_PORT}"

POLL_INTERVAL_S = 1.0
"""Seconds between reads when no event comes: the latency on filesystems without inotify, and the
cost of following an idle file (two stat calls per file per interval)."""
PUBLISH_INTERVAL_S = 0.25
"""At most 4 publishes a second: a line after a quiet spell is published at once (scrapes see it within
milliseconds), but a run printing 1,000 lines a second does not rebuild its snapshot 1,000 times."""
GPU_INTERVAL_S = 1.0
NOTIFY_BEFORE_S = 600.0  # the "finishing soon" lead time
MAX_RUNS = 100


def xdg_dir(kind: str, env: Mapping[str, str] = os.environ) -> str:
    """trainwatch's folder in `$XDG_CONFIG_HOME` (kind "config") or `$XDG_STATE_HOME` ("state").

    The XDG spec: a relative value is invalid and must be ignored (`~/.config`, `~/.local/state` then).
    """
    fallback = {"config": (".config",), "state": (".local", "state")}[kind]
    base = env.get(f"XDG_{kind.upper()}_HOME", "")
    if not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, *fallback)
    return os.path.join(base, "trainwatch")
