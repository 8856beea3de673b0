"""Views of snapshots: text/JSON report, Prometheus collector, notifications and the Textual TUI."""
