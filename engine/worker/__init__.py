"""The worker process: its main loop (main.py) and the session that owns one loaded model (session.py)."""
