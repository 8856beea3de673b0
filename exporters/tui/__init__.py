"""The Textual TUI: `trainwatch LOG...` and `trainwatch demo`. Only `app.run_tui` is meant to be called from outside."""
