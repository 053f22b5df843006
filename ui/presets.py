"""Presets: the model, its control values, master volume, MIDI bindings, the reverb and the pan, as JSON.

    {"kind": "livewave-preset", "format": 1, "model": "models/violin.safetensors",
     "controls": {"breath": 1.2, ...}, "gain_db": -3.0, "midi_bindings": {"breath": [0, 2]},
     "reverb": {"send": 0.3, "decay_s": 2.4, "damping": 0.45, "predelay_ms": 15.0}, "pan": -0.25}

``midi_bindings`` maps a control to (MIDI channel, CC number). ``reverb`` (``livewave.reverb``)
may be left out (a preset saved before it existed): loading one leaves the reverb as it is;
its values are clamped to their ranges as the engine clamps them. So is ``pan`` (-1 left .. 1
right, ``livewave.stereo_pan``), put on CC 10's grid. A preset file is written
atomically (``checkpoint.atomic_write``); a bad one is refused with the reason
(``PresetError``), and whatever plays goes on playing.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from livewave.checkpoint import atomic_write
from livewave.config import pan_value

KIND = "livewave-preset"
FORMAT = 1


class PresetError(ValueError):
    pass


def make_preset(model: str | None, controls: dict, gain_db: float, bindings: dict | None = None,
                reverb: dict | None = None, pan: float | None = None) -> dict:
    p = {"kind": KIND, "format": FORMAT, "model": model or None,
         "controls": {str(k): float(v) for k, v in controls.items()}, "gain_db": float(gain_db),
         "midi_bindings": {str(k): [int(c), int(n)] for k, (c, n) in (bindings or {}).items()}}
    if reverb is not None:
        p["reverb"] = {k: float(reverb[k]) for k in sorted(reverb)}
    if pan is not None:
        p["pan"] = pan_value(pan)
    return p


def check_preset(p, where: str = "preset") -> dict:
    if not isinstance(p, dict) or p.get("kind") != KIND:
        raise PresetError(f"{where}: not a livewave preset (kind {p.get('kind') if isinstance(p, dict) else None!r})")
    if p.get("format") != FORMAT:
        raise PresetError(f"{where}: preset format {p.get('format')!r}; this livewave reads format {FORMAT}")
    model = p.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise PresetError(f"{where}: model {model!r} is not a path")
    controls = p.get("controls", {})
    if not isinstance(controls, dict):
        raise PresetError(f"{where}: controls must be an object of name: value")
    for k, v in controls.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PresetError(f"{where}: control {k!r} has value {v!r}, not a finite number")
    gain = p.get("gain_db", 0.0)
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not math.isfinite(gain):
        raise PresetError(f"{where}: gain_db {gain!r} is not a finite number")
    bindings = p.get("midi_bindings", {})
    if not isinstance(bindings, dict):
        raise PresetError(f"{where}: midi_bindings must be an object of name: [channel, cc]")
    for k, b in bindings.items():
        if (not isinstance(b, list) or len(b) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in b)
                or not (0 <= b[0] <= 15 and 0 <= b[1] <= 127)):
            raise PresetError(f"{where}: binding of {k!r} is {b!r}; need [channel 0..15, cc 0..127]")
    reverb = p.get("reverb")
    if reverb is not None:
        from livewave.engine_commands import CommandError, reverb_settings
        try:
            reverb = reverb_settings(reverb)
        except CommandError as exc:
            raise PresetError(f"{where}: {exc}") from None
    pan = p.get("pan")
    if pan is not None and (isinstance(pan, bool) or not isinstance(pan, (int, float)) or not math.isfinite(pan)):
        raise PresetError(f"{where}: pan {pan!r} is not a finite number (-1 left .. 1 right)")
    return make_preset(model, controls, gain, {k: tuple(b) for k, b in bindings.items()}, reverb, pan)


def save_preset(path, preset: dict) -> Path:
    preset = check_preset(preset)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(preset, indent=2) + "\n"))


def load_preset(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PresetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return check_preset(data, str(path))
