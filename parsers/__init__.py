"""Text in, events out: one module per log format, plus detection. Standard library only, no I/O."""
