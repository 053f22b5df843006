"""DDSP training data rendered from a soundfont, and the dataset layout every source shares.

``make_soundfont_dataset`` writes phrases for one GM program (:mod:`livewave.phrases`) as MIDI
clips of about 25 s (each with a short lead-in of silence and a release tail, so clips are
independent), renders each with the fluidsynth CLI (no reverb or chorus) at the soundfont's
own level (fluidsynth gain 1, float output, scale 1: every dataset of an instrument has the
same absolute level, so a model's MIDI-to-loudness calibration holds on any other rendering;
scaled down only if a peak would pass -1 dBFS, which ``render.scale`` records), and labels
every frame: f0 from the MIDI events (the label timeline), loudness measured on the audio
(:func:`livewave.loudness.frame_loudness`).

The MIDI alone is not quite what fluidsynth plays, so a probe render comes first
(:func:`probe_soundfont`): one note per key, which (1) drops keys that do not sound at their
pitch (FluidR3's violin above 93), (2) measures each key's tuning over the sample's playback
(FluidR3 samples sit up to 25 cents off and drift with their recorded intonation), added to
the f0 labels unless ``tune=False``, and (3) measures when events are heard (fluidsynth's
player acts at the next 64-sample block, and its output lags one more block), so labels and
note times are where the audio has them. ``notes`` times are in the audio; the ``.mid`` keeps
the MIDI times.

Two checks go into ``dataset.json``: ``pitch_check`` (YIN on the audio against the f0 labels
on sustained frames, in cents: do the labels match the sound?) and ``calibration`` (a
least-squares line from note velocity to the note's median loudness, over notes at full
CC11 expression).

Layout (format 1, kind ``livewave-ddsp-data``)::

    DIR/dataset.json   sample_rate, hop (frame k is centred at sample k * hop), clips, source, ...
    DIR/clip_0000.wav  mono float32 at sample_rate, length a multiple of hop
    DIR/clip_0000.npz  f0_hz float32 [F], loudness_db float32 [F], voiced bool [F] (F = len // hop);
                       soundfont data also: velocity float32 [F] (0..1 of the held note, 0 in
                       rests) and notes float64 [N, 4] (onset_s, offset_s, midi_pitch, velocity)
    DIR/clip_0000.mid  (soundfont data) the MIDI the clip was rendered from

``load_dataset`` reads and checks it (what the trainer reads); ``write_clip`` and
``write_meta`` write it (shared with :mod:`livewave.audio_data`). ``dataset.json`` is written
last and atomically, so a folder is either a whole dataset or not one.

Threading: plain blocking functions (subprocesses, file I/O); nothing shared.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = 1
KIND = "livewave-ddsp-data"
FRAME_SECONDS = 0.004
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
CHUNK_SECONDS = 25.0
PEAK_DBFS = -1.0                 # the most a peak may reach; quieter renders are left as they are
PROBE_SECONDS = 3.0
_CLIP_FILE = re.compile(r"^clip_\d{4,}\.(wav|npz|mid)$")


class DatasetError(ValueError):
    """Training data could not be made or read; the message names the file and the problem."""


def hop_for(sample_rate: int) -> int:
    return int(round(FRAME_SECONDS * sample_rate))


# -- the layout -------------------------------------------------------------------------------
def check_out_dir(out) -> Path:
    """Refuse an output folder holding anything but a dataset (or a failed run's clip files),
    so that a typo cannot scatter clips among the user's files. Changes nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if not _CLIP_FILE.match(p.name) and p.name != "dataset.json")
        if others:
            raise DatasetError(f"{out}: folder holds other files ({', '.join(others[:3])}"
                               f"{', ...' if len(others) > 3 else ''}); choose a new or empty folder")
    return out


def prepare_out_dir(out) -> Path:
    """:func:`check_out_dir`, then empty the folder of its old dataset (or create it)."""
    out = check_out_dir(out)
    if out.is_dir():
        for p in out.iterdir():
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_clip(out: Path, name: str, audio: np.ndarray, sample_rate: int, arrays: dict) -> None:
    """``name.wav`` (mono float32) and ``name.npz`` (the frame arrays, compressed)."""
    import soundfile as sf
    sf.write(str(out / f"{name}.wav"), np.asarray(audio, np.float32), sample_rate, subtype="FLOAT")
    np.savez_compressed(out / f"{name}.npz", **arrays)


def write_meta(out: Path, meta: dict) -> None:
    from .checkpoint import atomic_write
    atomic_write(out / "dataset.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n"))


def read_meta(folder: Path, missing: str) -> tuple[dict, Path]:
    """``(dataset.json as a dict, its path)``; ``missing`` says what a folder without one is."""
    mpath = Path(folder) / "dataset.json"
    if not mpath.is_file():
        raise DatasetError(f"{folder}: no dataset.json ({missing})")
    try:
        meta = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{mpath}: cannot read ({exc})") from exc
    if not isinstance(meta, dict):
        raise DatasetError(f"{mpath}: not a livewave training-data file")
    return meta, mpath


def read_clip_audio(wav: Path) -> tuple[np.ndarray, int]:
    """A clip's audio ``float32 [samples, channels]`` and its rate; raises :class:`DatasetError`."""
    import soundfile as sf
    try:
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    except Exception as exc:
        raise DatasetError(f"{wav}: cannot read audio ({exc})") from exc
    return audio, rate


def load_dataset(path) -> tuple[dict, list[dict]]:
    """``(meta, clips)``: ``meta`` is ``dataset.json``; each clip a dict with ``name``,
    ``audio float32 [samples]`` and the frame arrays ``f0_hz``, ``loudness_db`` (float32 [F]),
    ``voiced`` (bool [F]) and, where the data has them, ``velocity`` (float32 [F]) and
    ``notes`` (float64 [N, 4]). Everything is checked; raises :class:`DatasetError`."""
    folder = Path(path)
    meta, mpath = read_meta(folder, "not a livewave data folder")
    kind = meta.get("kind")
    if kind != KIND:
        raise DatasetError(f"{mpath}: not a livewave training-data file (kind {kind!r}, expected {KIND!r})")
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{mpath}: data format {meta.get('format')!r} is not supported "
                           f"(this livewave reads format {FORMAT})")
    sr, hop, names = meta.get("sample_rate"), meta.get("hop"), meta.get("clips")
    if not isinstance(sr, int) or sr <= 0 or not isinstance(hop, int) or hop <= 0:
        raise DatasetError(f"{mpath}: bad sample_rate {sr!r} or hop {hop!r}")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{mpath}: 'clips' must be a non-empty list of names")
    need_labels = meta.get("source") == "soundfont"
    clips = []
    for name in names:
        wav, npz = folder / f"{name}.wav", folder / f"{name}.npz"
        audio, rate = read_clip_audio(wav)
        if rate != sr or audio.shape[1] != 1:
            raise DatasetError(f"{wav}: {rate} Hz with {audio.shape[1]} channels, dataset says mono {sr} Hz")
        audio = audio[:, 0]
        if len(audio) == 0 or len(audio) % hop:
            raise DatasetError(f"{wav}: {len(audio)} samples is not a positive multiple of the hop {hop}")
        try:
            with np.load(npz) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:
            raise DatasetError(f"{npz}: cannot read frame labels ({exc})") from exc
        frames = len(audio) // hop
        want = {"f0_hz": np.float32, "loudness_db": np.float32, "voiced": np.bool_}
        if need_labels:
            want["velocity"] = np.float32
        for key, dtype in want.items():
            a = arrays.get(key)
            if a is None:
                raise DatasetError(f"{npz}: no '{key}' array")
            if a.dtype != dtype or a.shape != (frames,):
                raise DatasetError(f"{npz}: '{key}' is {a.dtype} {list(a.shape)}, expected "
                                   f"{np.dtype(dtype)} [{frames}] for {len(audio)} samples at hop {hop}")
            if a.dtype != np.bool_ and not np.isfinite(a).all():
                raise DatasetError(f"{npz}: '{key}' holds non-finite values")
        if not (arrays["f0_hz"] > 0).all():
            raise DatasetError(f"{npz}: 'f0_hz' must be positive on every frame")
        if need_labels:
            notes = arrays.get("notes")
            if notes is None or notes.ndim != 2 or notes.shape[1] != 4:
                raise DatasetError(f"{npz}: 'notes' must be [N, 4], got "
                                   f"{None if notes is None else list(notes.shape)}")
        clips.append({"name": name, "audio": audio, **arrays})
    return meta, clips


# -- fluidsynth -------------------------------------------------------------------------------
def _check_tools(soundfont) -> tuple[str, Path]:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise DatasetError("fluidsynth not found on PATH; install it (e.g. `apt install fluidsynth`)")
    sf2 = Path(soundfont)
    if not sf2.is_file():
        raise DatasetError(f"soundfont {sf2} not found; pass --soundfont PATH "
                           "(e.g. install fluid-soundfont-gm for the default)")
    return exe, sf2


def render_midi(midi, wav, sample_rate: int, soundfont, gain: float = 1.0) -> tuple[np.ndarray, bool]:
    """Render ``midi`` to ``wav`` with the fluidsynth CLI (no reverb or chorus); return the
    mono mix ``float32 [samples]`` and whether the file is float (cannot clip)."""
    import soundfile as sf
    exe, sf2 = _check_tools(soundfont)
    wav = Path(wav)
    wav.unlink(missing_ok=True)
    cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", f"{gain:.6g}", "-r", str(sample_rate),
           "-O", "float", "-F", str(wav), str(sf2), str(midi)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        raise DatasetError(f"{midi}: fluidsynth took over 10 minutes, gave up") from exc
    if r.returncode != 0 or not wav.is_file():
        detail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [f"exit status {r.returncode}"]
        raise DatasetError(f"{midi}: fluidsynth rendered nothing ({detail[0]}); ran: {' '.join(cmd)}")
    info = sf.info(str(wav))
    x, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    return x.mean(axis=1), info.subtype == "FLOAT"


def _render_all(jobs, sample_rate, soundfont) -> tuple[list[np.ndarray], float]:
    """Render ``[(midi, wav)]`` on a few processes at once; re-render quieter if a fixed-point
    file clipped. Returns the audio and the fluidsynth gain used."""
    gain = 1.0
    for _attempt in range(4):
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            out = list(pool.map(render_midi, *zip(*jobs, strict=True), [sample_rate] * len(jobs),
                                [soundfont] * len(jobs), [gain] * len(jobs)))
        clipped = [j[0] for j, (x, is_float) in zip(jobs, out, strict=True)
                   if not is_float and np.abs(x).max() >= 0.999]
        if not clipped:
            return [x for x, _f in out], gain
        gain /= 4.0
    raise DatasetError(f"{clipped[0]}: fluidsynth output clips even at gain {gain * 4:g}")


@dataclass(frozen=True)
class RenderTiming:
    """When fluidsynth makes a MIDI event heard: its player acts at the start of the next
    block of ``block`` samples and the output lags by ``latency`` samples (with fluidsynth 2.3:
    64 and 64..65); ``block = 0`` means a plain constant ``latency``. Call with event times
    (seconds, array) to get the times in the audio."""
    sample_rate: int
    block: int
    latency: int

    def __call__(self, t):
        s = np.asarray(t, dtype=np.float64) * self.sample_rate
        if self.block:
            s = self.block * np.ceil(s / self.block - 1e-9)
        return (s + self.latency) / self.sample_rate

    def describe(self) -> str:
        return (f"events act at the next {self.block}-sample block, heard {self.latency} samples later"
                if self.block else f"events heard {self.latency} samples late")


def probe_soundfont(program: int, lo: int, hi: int, sample_rate: int, soundfont, tmp) -> tuple[np.ndarray, RenderTiming]:
    """``(curves, timing)``: how the soundfont tunes each key of ``lo..hi``, and when fluidsynth
    makes an event heard (from the first sound of each probe note, each from exact silence).

    ``curves`` are cents against equal temperament over the time since the note is heard,
    ``float64 [128, steps]`` with step j at ``j * hop`` samples after it (over
    :data:`PROBE_SECONDS`), NaN rows for keys not probed or with no clear pitch within 6
    semitones. Measured with YIN on one note per key at velocity 90: fluidsynth plays a key's
    sample the same way each time, and the sampled intonation drifts by tens of cents on some
    FluidR3 instruments; some keys sit a semitone off."""
    import mido

    from .phrases import TEMPO, TICKS_PER_BEAT
    from .pitch_tracker import yin
    # the odd millisecond in the step moves the notes across fluidsynth's blocks
    note_ms, step_ms, lead_ms = int(PROBE_SECONDS * 1000), int(PROBE_SECONDS * 1000) + 401, 200
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=TEMPO),
                            mido.Message("program_change", program=program)])
    for i, key in enumerate(range(lo, hi + 1)):      # all sound off 100 ms before each note
        track.append(mido.Message("note_on", note=key, velocity=90, time=lead_ms if i == 0 else 100))
        track.append(mido.Message("note_off", note=key, velocity=64, time=note_ms))
        track.append(mido.Message("control_change", control=120, value=0, time=step_ms - note_ms - 100))
    track.append(mido.MetaMessage("end_of_track", time=100 + step_ms))
    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(track)
    mid.save(str(Path(tmp) / "probe.mid"))
    x, _float = render_midi(Path(tmp) / "probe.mid", Path(tmp) / "probe.wav", sample_rate, soundfont)
    timing = _fit_timing(x, sample_rate, [(lead_ms + i * step_ms) / 1000 for i in range(hi - lo + 1)])
    hop = hop_for(sample_rate)
    steps = int(round(PROBE_SECONDS * sample_rate / hop))
    curves = np.full((128, steps), np.nan)
    settle = int(round(0.1 * sample_rate / hop))
    for i, key in enumerate(range(lo, hi + 1)):
        f = 440.0 * 2.0 ** ((key - 69) / 12)
        a = int(round(timing((lead_ms + i * step_ms) / 1000) * sample_rate))
        seg = x[a:a + (steps + 16) * hop]
        if len(seg) < (steps + 16) * hop or f * 1.41 >= 0.45 * sample_rate:
            continue
        f0, _per = yin(seg, sample_rate, hop, fmin=f / 1.42, fmax=f * 1.41)
        f0 = f0[:steps]
        ok = np.flatnonzero(f0 > 0)
        if ok.size < 0.6 * (steps - settle) or (f0[settle:] > 0).mean() < 0.6:
            continue
        cents = np.interp(np.arange(steps), ok, 1200.0 * np.log2(f0[ok] / f))
        med = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(cents, 2, mode="edge"), 5), axis=1)
        if abs(np.median(med[settle:])) < 100:
            curves[key] = med
    return curves, timing


def _fit_timing(x: np.ndarray, sample_rate: int, onsets: list[float]) -> RenderTiming:
    """Fluidsynth's block timing if every probe note starts where it predicts (to 2 samples),
    else the median delay."""
    first = []
    for t in onsets:
        a = int(t * sample_rate)
        nz = np.flatnonzero(x[a:a + int(0.05 * sample_rate)] != 0)
        if nz.size:
            first.append((t * sample_rate, a + int(nz[0])))
    if not first:
        return RenderTiming(sample_rate, 0, 0)
    s, heard = np.array(first).T
    lag = heard - 64 * np.ceil(s / 64 - 1e-9)
    if np.ptp(lag) <= 2 and 0 <= np.median(lag) < 0.05 * sample_rate:
        return RenderTiming(sample_rate, 64, int(np.median(lag)))
    return RenderTiming(sample_rate, 0, max(0, int(np.median(heard - s))))


def _usable_run(curves: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The longest run of keys in ``lo..hi`` that the probe found sounding near their pitch."""
    ok = [lo <= k <= hi and np.isfinite(curves[k]).all() for k in range(128)]
    best, start = (lo, lo - 1), None
    for k in range(129):
        if k < 128 and ok[k]:
            start = k if start is None else start
        elif start is not None:
            if k - start > best[1] - best[0] + 1:
                best = (start, k - 1)
            start = None
    return best


# -- the soundfont dataset --------------------------------------------------------------------
def check_render_request(program: int, low, high, sample_rate: int, minutes: float, soundfont) -> tuple[int, int]:
    """The key range to render (``low``/``high`` or the program's), after checking the rate, the
    length and that fluidsynth and the soundfont are there; raises :class:`DatasetError`."""
    from .phrases import program_range
    try:
        lo, hi = program_range(program, low, high)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    if not 8000 <= sample_rate <= 96000:
        raise DatasetError(f"sample rate {sample_rate} Hz is outside fluidsynth's 8000..96000")
    if not 0.05 <= minutes <= 24 * 60:
        raise DatasetError(f"--minutes {minutes} is outside 0.05..1440")
    _check_tools(soundfont)
    return lo, hi


def make_soundfont_dataset(out, program: int, minutes: float, sample_rate: int = 16000, seed: int = 0,
                           low: int | None = None, high: int | None = None, soundfont=DEFAULT_SOUNDFONT,
                           tune: bool = True, log=print) -> dict:
    """Render ``minutes`` of phrases for GM ``program`` into the folder ``out``; returns the meta.

    The keys of the range are probed first (:func:`probe_soundfont`): the range shrinks to
    the keys that sound at their pitch, and with ``tune`` each key's measured tuning is added
    to the f0 labels of its notes (the MIDI alone says where the soundfont's samples should
    be, not where they are)."""
    from .loudness import frame_loudness
    from .phrases import generate_clip, gm_name
    lo, hi = check_render_request(program, low, high, sample_rate, minutes, soundfont)
    out = prepare_out_dir(out)
    hop = hop_for(sample_rate)
    n_clips = max(1, round(minutes * 60 / CHUNK_SECONDS))
    samples = int(round(minutes * 60 / n_clips * sample_rate / hop)) * hop
    names = [f"clip_{i:04d}" for i in range(n_clips)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="livewave-render-") as tmp:
        curves, timing = probe_soundfont(program, lo, hi, sample_rate, soundfont, tmp)
        probe_s = time.perf_counter() - t0
        ulo, uhi = _usable_run(curves, lo, hi)
        if uhi - ulo < 5:
            found = f"only keys {ulo}..{uhi}" if uhi >= ulo else "none"
            raise DatasetError(f"{soundfont}: program {program} ({gm_name(program)}) on keys {lo}..{hi}: "
                               f"{found} sound at their pitch; phrases need at least 6 keys")
        if (ulo, uhi) != (lo, hi):
            log(f"livewave: keys {lo}..{hi} asked, but only {ulo}..{uhi} sound at their pitch in "
                f"{Path(soundfont).name}; using {ulo}..{uhi}")
            lo, hi = ulo, uhi
        rng = np.random.default_rng(seed)
        phrases = [generate_clip(program, samples / sample_rate, rng, lo, hi) for _ in names]
        jobs = []
        for name, clip in zip(names, phrases, strict=True):
            clip.write(out / f"{name}.mid")
            jobs.append((out / f"{name}.mid", Path(tmp) / f"{name}.wav"))
        rendered, gain = _render_all(jobs, sample_rate, soundfont)
    render_s = time.perf_counter() - t0 - probe_s
    audio = []
    for name, x in zip(names, rendered, strict=True):
        if len(x) < samples // 2:
            raise DatasetError(f"{name}.mid: fluidsynth rendered {len(x) / sample_rate:.2f} s, expected "
                               f"{samples / sample_rate:.2f} s")
        if np.abs(x).max() < 1e-4:
            raise DatasetError(f"{name}.mid: fluidsynth rendered silence (does {soundfont} have GM "
                               f"program {program}?)")
        audio.append(np.pad(x[:samples], (0, max(0, samples - len(x)))))
    # NB: a fixed level, not peak normalisation: a quiet dataset normalised to its own peak would
    # read 10 dB louder than the training data for the same MIDI (measured on a 20 s held-out clip).
    scale = min(1.0, 10.0 ** (PEAK_DBFS / 20.0) / max(float(np.abs(x).max()) for x in audio))
    tuning = np.nan_to_num(curves)
    checks, raw_checks, cal = [], [], []
    for name, clip, x in zip(names, phrases, audio, strict=True):
        x = (x * scale).astype(np.float32)
        frames = samples // hop
        labels = clip.timeline.frames(sample_rate, hop, frames, key_cents=tuning if tune else None, heard=timing)
        other = clip.timeline.frames(sample_rate, hop, frames, key_cents=None if tune else tuning, heard=timing)
        notes = clip.notes.copy()
        notes[:, :2] = timing(notes[:, :2])
        loud = frame_loudness(x, sample_rate, hop)
        write_clip(out, name, x, sample_rate, {"f0_hz": labels["f0_hz"], "loudness_db": loud,
                                                "voiced": labels["voiced"], "velocity": labels["velocity"],
                                                "expression": labels["expression"], "notes": notes})
        f0, sustained = _tracked(x, sample_rate, hop, notes, labels["f0_hz"])
        checks.append(1200.0 * np.log2(f0[sustained] / labels["f0_hz"][sustained]))
        raw_checks.append(1200.0 * np.log2(f0[sustained] / other["f0_hz"][sustained]))
        cal.append(_note_levels(loud, sample_rate, hop, labels, notes))
    cents, other_cents = np.abs(np.concatenate(checks)), np.abs(np.concatenate(raw_checks))
    drift = np.percentile(curves[lo:hi + 1], 95, axis=1) - np.percentile(curves[lo:hi + 1], 5, axis=1)
    meta = {"format": FORMAT, "kind": KIND, "sample_rate": sample_rate, "frame_seconds": FRAME_SECONDS,
            "hop": hop, "source": "soundfont", "program": program, "instrument": gm_name(program),
            "soundfont": str(Path(soundfont).resolve()), "seed": seed,
            "minutes": round(n_clips * samples / sample_rate / 60, 4), "pitch_range": [lo, hi],
            "clips": names, "calibration": _calibrate(np.concatenate(cal)),
            "pitch_check": _cents_summary(cents),
            "key_tuning": {"applied_to_f0": tune, "velocity": 90, "probe_seconds": PROBE_SECONDS,
                           "median_cents": {str(k): _r(np.median(curves[k]), 1) for k in range(lo, hi + 1)},
                           "drift_cents": {str(k): _r(d, 1) for k, d in zip(range(lo, hi + 1), drift, strict=True)},
                           "pitch_check_" + ("untuned" if tune else "tuned"): _cents_summary(other_cents)},
            "render": {"timing": timing.describe(), "fluidsynth_gain": gain, "scale": _r(scale, 6), "peak_dbfs": PEAK_DBFS,
                       "seconds": _r(render_s, 2), "probe_seconds": _r(probe_s, 2)}}
    write_meta(out, meta)
    c, pc = meta["calibration"], meta["pitch_check"]
    log(f"livewave: wrote {n_clips} clip{'s' * (n_clips > 1)} ({meta['minutes'] * 60:.1f} s) of "
        f"{meta['instrument']} (program {program}, keys {lo}..{hi}) at {sample_rate} Hz to {out}; "
        f"rendered {meta['minutes'] * 60 / max(render_s, 1e-9):.0f}x real time (after a {probe_s:.1f} s "
        f"probe of the keys); pitch check "
        f"{pc['median_abs_cents']} cents median, {pc['p95_abs_cents']} p95 over {pc['frames']} frames; "
        f"loudness = {c['velocity_db'][0]:.1f} + {c['velocity_db'][1]:.1f} * velocity/127 dB "
        f"(rms error {c['rms_error_db']:.1f} dB, {c['notes']} notes)")
    return meta


def _r(x, digits: int = 3) -> float:
    return round(float(x), digits)


def _sustained(frames: int, sample_rate: int, hop: int, notes: np.ndarray, after: float, before: float):
    """``bool [frames]``: inside a note, at least ``after`` s past its onset and ``before`` s
    ahead of its offset; plus the note index of each frame (-1 outside)."""
    t = np.arange(frames) * hop / sample_rate
    idx = np.full(frames, -1)
    for i, (on, off, _p, _v) in enumerate(notes):
        idx[(t >= on + after) & (t < off - before)] = i
    return idx >= 0, idx


def _cents_summary(cents: np.ndarray) -> dict:
    if not cents.size:
        return {"median_abs_cents": None, "p95_abs_cents": None, "frames": 0, "over_50_cents": None}
    return {"median_abs_cents": _r(np.median(cents)), "p95_abs_cents": _r(np.percentile(cents, 95)),
            "frames": int(cents.size), "over_50_cents": _r(np.mean(cents > 50), 4)}


def _tracked(x, sample_rate, hop, notes, f0_label) -> tuple[np.ndarray, np.ndarray]:
    """YIN's f0 on the frames to compare: sustained (80 ms past a note's onset, 40 ms ahead of
    its offset) and voiced by YIN. YIN runs note by note, searching within 6 semitones of the
    note's labels: the check is whether the sound has the labelled pitch, not YIN's octave
    choice (keys that sound in the wrong octave are already refused by the probe)."""
    from .pitch_tracker import yin
    frames = len(f0_label)
    f0 = np.zeros(frames, dtype=np.float32)
    mask, idx = _sustained(frames, sample_rate, hop, notes, after=0.08, before=0.04)
    pad = 16
    for i in np.unique(idx[mask]):
        k = np.flatnonzero(idx == i)
        k0, k1 = max(0, k[0] - pad), min(frames, k[-1] + 1 + pad)
        lab = f0_label[k]
        fmin, fmax = lab.min() / 1.42, min(lab.max() * 1.41, 0.45 * sample_rate)
        if fmax <= fmin:
            continue
        est, _per = yin(x[k0 * hop:k1 * hop], sample_rate, hop, fmin=fmin, fmax=fmax)
        f0[k] = est[k - k0]
    return f0, mask & (f0 > 0)


def _note_levels(loud, sample_rate, hop, labels, notes) -> np.ndarray:
    """``[notes, 2]`` (velocity 1..127, median loudness dB) over each note after its first
    50 ms, for notes held at full expression with at least 3 frames there."""
    _mask, idx = _sustained(len(loud), sample_rate, hop, notes, after=0.05, before=0.0)
    rows = []
    for i, (_on, _off, _p, vel) in enumerate(notes):
        sel = idx == i
        if sel.sum() >= 3 and (labels["expression"][sel] == 1.0).all():
            rows.append((vel, float(np.median(loud[sel]))))
    return np.array(rows, dtype=np.float64).reshape(-1, 2)


def _calibrate(levels: np.ndarray) -> dict:
    if len(levels) < 3 or np.ptp(levels[:, 0]) == 0:
        raise DatasetError(f"only {len(levels)} notes to calibrate loudness against velocity; "
                           "render more minutes")
    design = np.stack([np.ones(len(levels)), levels[:, 0] / 127.0], axis=1)
    coef, *_ = np.linalg.lstsq(design, levels[:, 1], rcond=None)
    rms = float(np.sqrt(np.mean((design @ coef - levels[:, 1]) ** 2)))
    return {"velocity_db": [_r(coef[0]), _r(coef[1])], "model": "loudness_db = a + b * velocity / 127",
            "rms_error_db": _r(rms), "notes": len(levels)}
