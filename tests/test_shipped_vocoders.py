"""The shipped vocoder and the instruments played from MIDI through it, measured again on fresh
held-out phrases (seeds the training and the cards never saw): what models/README.md claims."""
import numpy as np
import pytest
from shipped import MODELS, shipped

pytestmark = pytest.mark.skipif(not shipped("istft"), reason="no shipped iSTFT vocoder")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    from livewave.roll_data import make_roll_dataset
    root = tmp_path_factory.mktemp("fresh")
    make_roll_dataset(root / "piano", 0, 0.25, sample_rate=22050, seed=2024, log=lambda *_: None)
    return root


def test_the_shipped_vocoder_beats_griffin_lim_on_the_stft_distance(fresh, tmp_path):
    from livewave.vocoder_evaluation import evaluate_vocoder
    q = evaluate_vocoder(MODELS / "istft-fluidr3.safetensors", fresh / "piano", log=lambda *_: None)
    assert q["mrstft_model"] < 0.8 * q["mrstft_griffin_lim"]
    assert q["lags_model"] == [-256]                       # where the instrument plays it: one hop late


@pytest.mark.parametrize("name", ["piano-midi2mel"])
def test_the_shipped_piano_played_from_midi_is_closer_to_fluidr3_than_the_default(fresh, name):
    from livewave.midi_to_mel_training import evaluate_playing
    q = evaluate_playing(MODELS / f"{name}.safetensors", fresh / "piano", max_seconds=15.0)
    assert np.isfinite(q["spectral_distance_model"])
    assert q["closer_than_default_pct"] > 30.0
