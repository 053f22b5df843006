"""The checkpoints in ``models/`` of one family (the DDSP tests must not pick up a vocoder)."""
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "models"


def shipped(family: str = "ddsp") -> list[Path]:
    from livewave.checkpoint import read_checkpoint
    return [p for p in sorted(MODELS.glob("*.safetensors")) if read_checkpoint(p)[0]["family"] == family]
