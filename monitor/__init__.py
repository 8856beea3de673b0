"""The core: tailing, run state, forecasting, telemetry and the writer loop that publishes snapshots."""
