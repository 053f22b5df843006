"""livewave's PyQt6 app: a thin client of the engine process (``livewave.engine_process``)."""
