"""Phase from the source (``source_phase``, ``ISTFTConfig(phase="source")``): the harmonic
reference is the FFT of a harmonic tone in its main lobes, the streamed source spectrum is the
offline one at any split and hears nothing later, the blend keeps the network's phase where the
source is silent, a source-phase model holds a tone in tune where an absolute one cannot, and it
trains teacher-forced and converts from an absolute model."""
import numpy as np
import pytest
import torch
from test_istft_vocoder import _steady_tone_model, tiny, two_tones
from test_vocoder_instrument import stream_through

from livewave.checkpoint import load_generator, read_checkpoint, save_checkpoint
from livewave.held_note import peak_cents
from livewave.source_phase import FLOOR, SourceSpectrum, blend, harmonic_reference, partial_phase, source_spectrum
from livewave.vocoder_instrument import ISTFTVocoderInstrument


@pytest.mark.parametrize("f0, p0", [(261.6, 0.7), (55.0, -2.0), (1234.5, 3.0)])
def test_the_harmonic_reference_is_the_fft_of_a_harmonic_tone_in_its_main_lobes(f0, p0):
    sr, n = 22050, 512
    t = np.arange(n) - n / 2                           # the phase is given at the segment's centre
    x = sum(np.cos(k * (p0 + 2 * np.pi * f0 * t / sr) + partial_phase(k)) / k
            for k in range(1, 200) if k * f0 < 0.48 * sr)    # each partial's fixed offset
    want = np.fft.rfft(x * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))) / n
    got = np.zeros((2, n // 2 + 1), np.complex128)
    harmonic_reference(np.array([f0]), np.array([p0]), np.array([1.0]), 1, n, float(sr), got, 1)
    assert not got[0].any()
    loud = np.abs(want) > 0.1 * np.abs(want).max()
    assert loud.sum() >= 3
    assert np.abs(np.angle(got[1][loud] / want[loud])).max() < 0.05        # radians
    assert np.abs(np.abs(got[1][loud]) / np.abs(want[loud]) - 1).max() < 0.1


def test_the_streamed_source_spectrum_is_the_offline_one_and_hears_nothing_later():
    n_fft, hop = 128, 64
    x = np.random.default_rng(0).standard_normal(64 * 40 + 13).astype(np.float32)
    off = source_spectrum(torch.from_numpy(x)[None], n_fft, hop)[0].T.numpy()
    assert off.shape == (40, n_fft // 2 + 1)
    for split in ([1] * 300 + [x.size - 300], [17] * 151 + [x.size - 17 * 151], [x.size]):
        s = SourceSpectrum(n_fft, hop, max(split))
        parts, i = [], 0
        for b in split:
            parts.append(s.push(x[i:i + b]).copy())
            i += b
        assert np.abs(np.concatenate(parts) - off).max() < 1e-4
    # frame t's window ends at (t + 1) * hop; the first frames see silence before the signal
    later = x.copy()
    later[21 * hop:] = 0.0
    cut = source_spectrum(torch.from_numpy(later)[None], n_fft, hop)[0].T.numpy()
    assert np.array_equal(cut[:21], off[:21]) and not np.array_equal(cut[21], off[21])
    first = np.fft.rfft(np.concatenate([np.zeros(n_fft - hop), x[:hop]]) * np.hanning(n_fft + 1)[:-1])
    assert np.abs(off[0] - first).max() < 1e-3
    # a training crop read n_fft - hop samples early has the same frames as the whole signal
    lead = n_fft - hop
    crop = source_spectrum(torch.from_numpy(x[10 * hop - lead:20 * hop])[None], n_fft, hop, lead)[0].T.numpy()
    assert np.abs(crop - off[10:20]).max() < 1e-4


def test_the_blend_takes_the_source_where_it_sounds_and_the_networks_phase_where_it_does_not():
    own = torch.full((1, 5, 2), 0.3)
    src = torch.zeros(1, 5, 2, dtype=torch.complex64)
    src[0, 1, 0] = 2.0 * np.exp(1.1j)
    src[0, 2, 0] = 2.0 * 0.1 * FLOOR * np.exp(-2.0j)   # far under the floor of its frame's peak
    ph = blend(src, own)
    assert ph[0, 1, 0] == pytest.approx(1.1, abs=1e-3)
    assert ph[0, 2, 0] == pytest.approx(0.3, abs=0.2)
    assert ph[0, 0, 0] == pytest.approx(0.3, abs=1e-6)
    assert torch.allclose(ph[0, :, 1], own[0, :, 1])    # a silent frame: the network's own phases


@pytest.mark.parametrize("f", [440.0, 300.0, 1000.0])
def test_a_source_phase_plays_a_steady_mel_at_the_sources_pitch(f):
    """The same frames every hop: an absolute phase puts the tone on a multiple of the frame rate
    (test_istft_vocoder); with the source's phases it comes out at the source's pitch."""
    sr = 22050
    m = _steady_tone_model("source", f)
    t = np.arange(200 * 256) / sr
    x = torch.from_numpy((0.3 * np.cos(2 * np.pi * f * t)).astype(np.float32))[None]
    mel = torch.zeros(1, 20, 200)
    with torch.no_grad():
        y = m(mel, source=source_spectrum(x, 512, 256))[0, 0].numpy()
        bad = m(mel)[0, 0].numpy()                              # no source: the network's own phases
    assert abs(peak_cents(y, f, sr)) < 2.0
    assert abs(peak_cents(bad, f, sr)) > 10.0 or f == 1000.0 and abs(peak_cents(bad, f, sr)) > 5.0


def test_a_source_phase_model_streams_exactly_and_an_integrated_one_takes_no_source():
    m = tiny(phase="source")
    mel = torch.randn(2, 20, 61)
    src = torch.randn(2, 65, 61, dtype=torch.complex64)
    with torch.no_grad():
        off = m(mel, source=src)
        assert not torch.equal(off, m(mel))
        for split in ([1] * 61, [5, 1, 17, 38], [61]):
            m.reset()
            parts, i = [], 0
            for s in split:
                parts.append(m.step(mel[:, :, i:i + s], src[:, :, i:i + s]))
                i += s
            assert (torch.cat(parts, 2) - off).abs().max() < 1e-5
        with pytest.raises(ValueError, match="integrated"):
            tiny(phase="integrated").spectrum(mel, source=src)
        with pytest.raises(ValueError, match="source spectrum"):
            m.spectrum(mel, source=src[:, :, :5])


def test_the_audio_in_family_takes_its_inputs_phases_block_size_independently(tmp_path):
    c = _steady_tone_model("source", 300.0).config
    m = _steady_tone_model("source", 300.0)
    v = ISTFTVocoderInstrument(m, {"n_mels": 20, "hop": 256}, name="src")
    assert v.takes_source and c.phase == "source"
    config, tensors = v.checkpoint_parts()
    path = save_checkpoint(tmp_path / "s.safetensors", "istft", config, {"instrument": "src"}, tensors)
    t = np.arange(96000) / 48000
    x = (0.4 * np.sin(2 * np.pi * 300.0 * t)).astype(np.float32)
    a = stream_through(load_generator(path), x, 17)
    b = stream_through(load_generator(path), x, 512)
    assert np.abs(a - b).max() <= 1e-5
    assert abs(peak_cents(a, 300.0, 48000)) < 2.0
    # offline copy synthesis with the audio the mel came from is the same phase source
    from livewave.mel_analysis import analyse
    x22 = (0.4 * np.sin(2 * np.pi * 300.0 * np.arange(44100) / 22050)).astype(np.float32)
    gen = load_generator(path)
    mel = analyse(x22, 22050, n_fft=1024, hop=256, n_mels=20)
    assert abs(peak_cents(gen.offline(mel, x22), 300.0, 22050)) < 2.0


def test_training_with_a_source_phase_converts_an_absolute_model_and_resumes_exactly(tmp_path):
    from livewave.vocoder_training import VocoderTrainConfig, train_vocoder
    two_tones(tmp_path)
    cfg = dict(family="istft", batch=2, crop_frames=8, device="cpu", n_mels=20, istft_hop=64, istft_n_fft=128,
               istft_channels=16, istft_blocks=2, gan_start=100, checkpoint_every=2, learning_rate=1e-3)
    train_vocoder(tmp_path, tmp_path / "abs.safetensors", VocoderTrainConfig(steps=2, **cfg), progress=False)
    tuned = dict(cfg, istft_phase="source", init=str(tmp_path / "abs.safetensors"))
    train_vocoder(tmp_path, tmp_path / "a.safetensors", VocoderTrainConfig(steps=4, **tuned), progress=False)
    train_vocoder(tmp_path, tmp_path / "b.safetensors", VocoderTrainConfig(steps=2, **tuned), progress=False)
    train_vocoder(tmp_path, tmp_path / "b.safetensors", VocoderTrainConfig(steps=4, **tuned), progress=False)
    meta, ta = read_checkpoint(tmp_path / "a.safetensors")
    _, tb = read_checkpoint(tmp_path / "b.safetensors")
    assert all(np.array_equal(ta[k], tb[k]) for k in ta)
    assert meta["config"]["istft"]["phase"] == "source"
    assert meta["card"]["training"]["fine_tuned_from"]["phase"] == "converted from absolute to source"
    _, t0 = read_checkpoint(tmp_path / "abs.safetensors")
    assert any(not np.array_equal(ta[k], t0[k]) for k in ta)       # it trained
    assert load_generator(tmp_path / "a.safetensors").takes_source
    # an integrated model cannot become a source one
    train_vocoder(tmp_path, tmp_path / "int.safetensors",
                  VocoderTrainConfig(steps=1, **dict(cfg, istft_phase="integrated")), progress=False)
    with pytest.raises(ValueError, match="integrated"):
        train_vocoder(tmp_path, tmp_path / "c.safetensors",
                      VocoderTrainConfig(steps=1, **dict(tuned, init=str(tmp_path / "int.safetensors"))),
                      progress=False)


def test_a_source_phase_models_synthesis_is_the_exact_inverse_of_the_source_stft():
    """Given the source's own magnitudes and phases, the model's synthesis gives the source back,
    one hop late (its output delay): Hann analysis, Hann synthesis, the overlap-added squares
    divided out. An absolute model's synthesis (Hann scaled to sum to 1) would leave the
    squares' ripple at the frame rate on it."""
    n_fft = 128
    m = tiny(n_fft, phase="source")
    x = torch.from_numpy(np.random.default_rng(1).standard_normal(64 * 50).astype(np.float32))[None]
    s = source_spectrum(x, n_fft, 64)
    with torch.no_grad():
        y = m.render_spectrum(s.abs(), torch.angle(s))[0, 0]
    assert (y[64:] - x[0, :-64]).abs().max() < 1e-4
    a = tiny(n_fft, phase="absolute")
    with torch.no_grad():
        ya = a.render_spectrum(s.abs(), torch.angle(s))[0, 0]
    assert (ya[64 + n_fft:] - x[0, n_fft:-64]).abs().max() > 0.1
    with pytest.raises(ValueError, match="2 hops"):
        tiny(256, phase="source")


def test_a_source_phase_vocoder_is_also_scored_from_the_mel_alone(tmp_path):
    """Copy synthesis with the original's phases is how it plays audio in, but not a fair fight
    with Griffin-Lim (the mel alone): the evaluation scores both, and the card says which is which."""
    from test_vocoder_training import tones

    from livewave.vocoder_evaluation import evaluate_vocoder, write_vocoder_card_markdown
    from livewave.vocoder_training import VocoderTrainConfig, train_vocoder
    data = tones(tmp_path / "data", seconds=1.0)
    model = tmp_path / "voc.safetensors"
    train_vocoder(data, model, VocoderTrainConfig(
        family="istft", istft_phase="source", steps=2, checkpoint_every=2, gan_start=100, batch=2, crop_frames=8,
        sample_rate=16000, n_mels=32, n_fft=256, istft_hop=64, istft_n_fft=128, istft_channels=16, istft_blocks=2,
        device="cpu"), progress=False)
    q = evaluate_vocoder(model, data, log=lambda *_: None)
    assert q["phase"] == "source"
    for k in ("mrstft_model_own_phase", "logmel_l1_model_own_phase"):
        assert np.isfinite(q[k]) and q[k] > 0
    assert q["mrstft_model_own_phase"] != q["mrstft_model"]
    assert len(q["held_note_cents_model_own_phase"]) == len(q["held_note_spur_db_model"]) == len(q["held_note_hz"])
    from livewave.checkpoint import read_checkpoint
    meta, tensors = read_checkpoint(model)
    save_checkpoint(model, "istft", meta["config"], {**meta["card"], "quality": q}, tensors)
    md = write_vocoder_card_markdown(model).read_text()
    assert "from the mel alone" in md and "not a like-for-like comparison" in md and "How clean" in md
    # onsets after silence, with the level bound and without (onset_burst): audio in never louder
    assert set(q["onsets"]) == set(q["onsets_network_alone"]) and len(q["onsets"]) == 4
    for name, (peak, rms) in q["onsets"].items():
        assert np.isfinite(peak) and rms <= 1.05 and rms <= q["onsets_network_alone"][name][1] + 1e-6
    assert "Onsets after silence" in md and "network alone" in md


def test_the_spur_measure_reads_a_sideband_a_frame_rate_from_the_note():
    from livewave.held_note import spur_db
    sr, f = 22050, 300.0
    t = np.arange(2 * sr) / sr
    clean = np.sin(2 * np.pi * f * t)
    assert spur_db(clean, f, sr) < -60.0
    side = clean + 0.5 * np.sin(2 * np.pi * (f + sr / 256) * t)
    assert spur_db(side, f, sr) == pytest.approx(-6.0, abs=0.3)
    assert spur_db(0.5 * clean + np.sin(2 * np.pi * (f - sr / 256) * t), f, sr) == pytest.approx(6.0, abs=0.3)


def test_a_stream_starts_from_silence_not_from_the_convolutions_zero_padding():
    """``prime``: after a reset the convolutions' history is the mel floor (silence), as the
    engine starts; zero padding is a log-mel of 0 in every band, which the shipped model once met
    with a bin at magnitude 657 for a note in its second frame. Primed, the stream equals the
    offline render of the same frames after that many silent ones, from its second hop (the
    first hop of the offline render also holds the last silent frame's tail, which a reset
    drops: silence from a trained model, not from random weights)."""
    m = tiny(phase="source")
    silent = torch.full((1, 20, 1), float(np.log(1e-5)))
    mel = torch.randn(1, 20, 9)
    with torch.no_grad():
        m.prime(silent, frames=40)
        first = m.step(mel)
        m.reset()
        assert torch.equal(m.step(mel), first)                       # reset restores the primed history
        whole = m(torch.cat([silent.expand(-1, -1, 40), mel], 2))[..., 40 * 64:]
        assert (first[..., 64:] - whole[..., 64:]).abs().max() < 1e-5
        m._primed = ()
        m.reset()
        assert (m.step(mel) - first).abs().max() > 1e-4              # zero padding is another history


def test_the_harmonic_reference_never_lines_all_its_partials_up_into_a_pulse():
    """A 110 Hz reference frame (irfft of its bins) has a crest factor far under the pulse that
    aligned phases make (all partials peaking together), and under Schroeder's phases, which
    leave the loud low partials of a 1/k spectrum nearly aligned (source_phase's docstring)."""
    sr, n = 22050, 512
    got = np.zeros((1, n // 2 + 1), np.complex128)
    harmonic_reference(np.array([110.0]), np.array([0.0]), np.array([1.0]), 1, n, float(sr), got, 0)
    frame = np.fft.irfft(got[0], n)
    t = np.arange(n) - n / 2
    window = np.hanning(n + 1)[:-1]
    ks = range(1, 97)
    pulse = sum(np.cos(2 * np.pi * k * 110.0 * t / sr) / k for k in ks) * window
    schroeder = sum(np.cos(2 * np.pi * k * 110.0 * t / sr + np.pi * k * k / 96) / k for k in ks) * window
    crest = lambda y: np.abs(y).max() / np.sqrt(np.mean(y ** 2))       # noqa: E731
    assert crest(frame) < 0.5 * crest(pulse), (crest(frame), crest(pulse))
    assert crest(frame) < 0.8 * crest(schroeder), (crest(frame), crest(schroeder))
    offsets = np.array([partial_phase(k) for k in range(1, 97)])
    assert offsets.min() >= 0.0 and offsets.max() < 2 * np.pi
    assert np.histogram(offsets, bins=4, range=(0, 2 * np.pi))[0].min() >= 16    # scattered over the circle
