"""File → lines: following a log (offsets, partial lines, truncation, rotation) and waking on change.

The only package that imports watchdog (`wake.py`).
"""
