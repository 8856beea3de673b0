"""`trainwatch simulate`: a realistic nanoGPT run, resolved (`scenario.py`), played out line by line
(`emit.py`, `text.py`) and written live to a file (`write.py`)."""
