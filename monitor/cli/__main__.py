"""`python -m monitor.cli`."""

from monitor.cli import entry

entry()
