"""The composition root: the single writer thread that follows logs and publishes snapshots
(`writer.py`), telemetry, the config file, and the systemd installer. Never imports exporters."""
