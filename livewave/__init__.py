"""livewave: a real-time neural instrument. The engine and library; no Qt here."""
__version__ = "0.1.0"
