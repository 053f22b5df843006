import os
import sys
from pathlib import Path

os.environ.setdefault("JACK_NO_START_SERVER", "1")
sys.path.insert(0, str(Path(__file__).parent))
