"""livewave: a real-time neural instrument. The engine and library; no Qt here."""
__version__ = "0.1.0"

from .numba_cache import use_source_keyed_cache  # noqa: E402

use_source_keyed_cache()      # numba's cache keyed by this package's source (numba_cache)
