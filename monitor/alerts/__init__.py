"""Alerts: pure, edge-triggered rules over snapshots (`rules.py`), what already fired on disk
(`store.py`), and the pump that runs them on each publish and hands alerts to a sender (`pump.py`)."""
