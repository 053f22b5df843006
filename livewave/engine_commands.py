"""The engine process's command channel: the commands, their checks, the settings.

Channels:
- commands (parent -> child, ``multiprocessing`` Pipe): tuples, checked by ``check_command``
  in both processes; a bad command is answered ``("error", message)`` and changes nothing.
    ("load", path)                       checkpoint, loaded off the render side, then crossfaded in
    ("control", name_or_index, value)    answered ("control", name, value as clamped)
    ("gain_db", value)                   answered ("gain_db", value as clamped)
    ("programs", [paths])                the models MIDI program changes select: program n (0-based, as
                                         sent; a keyboard shows n + 1) loads paths[n] (checkpoint.BUILTIN
                                         for the built-in instrument); [] ignores program changes. On a
                                         program change the engine sends ("program", channel, n, path or
                                         None), then loads it like ("load", path)
    ("tuning", hz)                       concert pitch, A4 in Hz; answered ("tuning", value as clamped)
    ("transpose", semitones)             for the next notes; answered ("transpose", value as clamped)
    ("velocity_curve", x)                a note's velocity becomes (v / 127) ** x from the next note;
                                         answered ("velocity_curve", value as clamped)
    ("pan", x)                           where the instrument sits, -1 (left) .. 1 (right) (``stereo_pan``);
                                         answered ("pan", value as set, on CC 10's grid); also sent when a
                                         MIDI CC 10 moved it
    ("reverb", {name: value})            any of send (0..1), decay_s, damping, predelay_ms (``reverb``);
                                         answered ("reverb", every setting as set); also sent when a
                                         MIDI CC 91 moved the send
    ("panic",) ("release_all",)
    ("midi", status, d1[, d2])           a channel message, e.g. from an on-screen keyboard
    ("midi_ports"[, selection])          changes the MIDI input selection (all, none, a number or part
                                         of a name; applied by the hot-plug poller) when given; answered
                                         ("midi_ports", [connected inputs], selection, [available inputs])
    ("devices",)                         answered ("devices", [audio outputs as dicts], name in use)
    ("learn", name)                      the next CC binds to control name ("" cancels); answered
                                         ("learning", name), then ("learned", name, channel, cc)
    ("bind", name, channel, cc) ("unbind", name)   answered ("bindings", {name: [channel, cc]})
    ("record", path[, midi])             record a take (take_recorder): what plays to path (a .wav; never
                                         over an earlier take: path-2.wav ...) and, unless midi is False,
                                         the MIDI to the .mid beside it; answered ("recording", wav, mid
                                         or None)
    ("record_stop",)                     answered ("recorded", summary dict: audio, midi, seconds, events,
                                         dropped_samples, dropped_events, error); also sent when the
                                         engine stops with a take running
    ("ping", token)                      answered ("pong", token)
    ("stop",)                            release all, let the release ring out, close, exit 0
- events (child -> parent, same pipe, sent by the child's command loop only, never by its
  audio thread): ("ready", info), ("fatal", message[, "device"]), ("waiting", message: its
  output device is not there; with ``wait_for_device`` it looks again every
  ``DEVICE_POLL_S`` and says ("ready", info) once it plays), ("loaded", path, model info),
  ("load_failed", path, message), ("report", text), ("error", message), ("stopped", status),
  ("control", name, value) also when a bound MIDI CC moved a control, and the answers above;
  the parent adds ("died", message) and ("restarted", message).
- shared memory (``SharedState``), written by the child, read by the parent without locks.
"""
from __future__ import annotations

import math
import os

import numpy as np

DEFAULT_SETTINGS = {
    "model": None,            # checkpoint path; None = the built-in instrument
    "audio": None,            # output device: number or part of its name; None = system default
    "rate": 48000,
    "block": 64,
    "placement": "callback",  # callback, thread or rtmixer (see audio_io)
    "ahead": 2,
    "input_channels": 0,
    "sample_format": "float32",   # or int16 (see audio_io)
    "midi": "all",            # MIDI input selection, or 'none'
    "midi_api": "auto",       # auto: JACK MIDI when the audio device is JACK's
    "polyphony": 16,
    "bend_range": 2.0,
    "tuning": 440.0,          # A4 in Hz
    "transpose": 0,           # semitones
    "velocity_curve": 1.0,    # a note's velocity: (v / 127) ** this
    "pan": 0.0,               # the instrument, -1 (left) .. 1 (right)
    "channels": "all",        # MIDI channel filter
    "gain": 0.0,              # master gain, dB
    "device": "auto",         # where a neural model runs
    "bindings": {},           # MIDI CC bindings {control name: [channel 0..15, cc]}
    "reverb": {},             # {send, decay_s, damping, predelay_ms}: those given (``reverb``); the rest default
    "wait_for_device": False, # an output device not found: wait for it (saying ("waiting", why)), not fail
}
REVERB_KEYS = ("send", "decay_s", "damping", "predelay_ms")


class EngineError(RuntimeError):
    """The engine process could not be started, or died; the message says what it reported."""


class DeviceUnavailable(EngineError):
    """The engine process did not start because its audio device is not there (or refused the
    settings): another model would not help; the same device later may."""


class CommandError(ValueError):
    """A command the engine does not take; the message names it and what was expected."""


# -- commands -----------------------------------------------------------------------------
def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _finite(name: str, x) -> float:
    if not _is_number(x) or not math.isfinite(float(x)):
        raise CommandError(f"{name}: value {x!r} is not a finite number")
    return float(x)


def _byte(name: str, what: str, x, lo: int = 0, hi: int = 127) -> int:
    if not _is_int(x) or not lo <= int(x) <= hi:
        raise CommandError(f"{name}: {what} {x!r} is not an integer in {lo}..{hi}")
    return int(x)


_ARITY = {"load": (1, 1, "path"), "control": (2, 2, "name or index, value"), "gain_db": (1, 1, "dB"),
          "panic": (0, 0, ""), "release_all": (0, 0, ""), "midi": (2, 3, "status, data1[, data2]"),
          "midi_ports": (0, 1, "[selection]"), "devices": (0, 0, ""), "learn": (1, 1, "control name"),
          "bind": (3, 3, "control name, channel, cc"), "unbind": (1, 1, "control name"),
          "ping": (1, 1, "token"), "stop": (0, 0, ""), "fault": (1, 1, "kind (tests only)"),
          "record": (1, 2, "path of a .wav[, midi: bool]"), "record_stop": (0, 0, ""), "tuning": (1, 1, "A4 in Hz"),
          "transpose": (1, 1, "semitones"), "programs": (1, 1, "list of model paths"),
          "reverb": (1, 1, "{send, decay_s, damping, predelay_ms}"), "velocity_curve": (1, 1, "exponent"),
          "pan": (1, 1, "-1 (left) .. 1 (right)")}
COMMANDS = tuple(_ARITY)


def check_command(cmd) -> tuple:
    """Validate a command tuple and return it with plain Python values (numpy scalars and
    path objects converted). Raises ``CommandError``; nothing engine-specific is checked here
    (that a control name exists is the engine's to say)."""
    if not isinstance(cmd, (tuple, list)) or not cmd or not isinstance(cmd[0], str):
        raise CommandError(f"a command is a tuple starting with its name, e.g. ('ping', 1); got {cmd!r:.80}")
    name, args = cmd[0], tuple(cmd[1:])
    if name not in _ARITY:
        raise CommandError(f"unknown command {name!r:.40} (commands: {', '.join(COMMANDS)})")
    lo, hi, sig = _ARITY[name]
    if not lo <= len(args) <= hi:
        n = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise CommandError(f"{name} takes {n} argument{'s' if hi != 1 else ''} ({sig}); got {len(args)}")
    if name in ("load", "record"):
        if not isinstance(args[0], (str, os.PathLike)) or not str(args[0]):
            raise CommandError(f"{name}: path {args[0]!r:.80} is not a file path")
        if len(args) > 1 and not isinstance(args[1], (bool, np.bool_)):
            raise CommandError(f"record: midi {args[1]!r:.40} is not True or False")
        return (name, str(os.fspath(args[0])), *(bool(a) for a in args[1:]))
    if name == "control":
        key = args[0]
        if _is_int(key):
            key = int(key)
        elif not isinstance(key, str):
            raise CommandError(f"control: {key!r:.40} is neither a control name nor an index")
        return (name, key, _finite(name, args[1]))
    if name in ("gain_db", "tuning", "velocity_curve", "pan"):
        return (name, _finite(name, args[0]))
    if name == "programs":
        paths = args[0]
        if not isinstance(paths, (list, tuple)) or len(paths) > 128 or \
                not all(isinstance(p, (str, os.PathLike)) and str(p) for p in paths):
            raise CommandError(f"programs: {paths!r:.60} is not a list of at most 128 model paths")
        return (name, [str(os.fspath(p)) for p in paths])
    if name == "reverb":
        return (name, reverb_settings(args[0], CommandError))
    if name == "transpose":
        if not _is_int(args[0]):
            raise CommandError(f"transpose: {args[0]!r:.40} is not a whole number of semitones")
        return (name, int(args[0]))
    if name == "midi":
        status = _byte(name, "status", args[0], 0x80, 0xEF)
        d1 = _byte(name, "data1", args[1])
        d2 = _byte(name, "data2", args[2]) if len(args) > 2 else 0
        return (name, status, d1, d2)
    if name == "midi_ports":
        if args and not isinstance(args[0], str):
            raise CommandError(f"midi_ports: selection {args[0]!r:.40} is not a string")
        return (name, *args)
    if name in ("learn", "bind", "unbind"):
        if not isinstance(args[0], str) or (name != "learn" and not args[0]):
            raise CommandError(f"{name}: {args[0]!r:.40} is not a control name")
        if name == "bind":
            return (name, args[0], _byte(name, "channel", args[1], 0, 15), _byte(name, "cc", args[2]))
        return (name, args[0])
    if name == "fault":
        if not isinstance(args[0], str):
            raise CommandError(f"fault: kind {args[0]!r:.40} is not a string")
        return (name, args[0])
    if name == "ping":
        tok = args[0]
        if not (tok is None or isinstance(tok, (str, bool)) or _is_number(tok)):
            raise CommandError(f"ping: token {tok!r:.40} must be a number, a string or None")
        return (name, tok.item() if isinstance(tok, np.generic) else tok)
    return (name,)


def reverb_settings(d, error=CommandError) -> dict:
    """A dict of reverb settings (``REVERB_KEYS``, any subset) with finite numbers, clamped to
    their ranges (``reverb``), else ``error``."""
    if not isinstance(d, dict) or not all(k in REVERB_KEYS for k in d):
        raise error(f"reverb: {d!r:.60} is not a dict of {', '.join(REVERB_KEYS)}")
    for k, v in d.items():
        if not _is_number(v) or not math.isfinite(float(v)):
            raise error(f"reverb: {k} {v!r:.40} is not a finite number")
    from .config import REVERB_DEFAULTS, clamp_room, send_value
    out = {k: float(v) for k, v in d.items()}
    if "send" in out:
        out["send"] = send_value(out["send"])
    room = clamp_room(*(out.get(k, REVERB_DEFAULTS[k]) for k in REVERB_KEYS[1:]))
    for k, v in zip(REVERB_KEYS[1:], room, strict=True):
        if k in out:
            out[k] = v
    return out


def check_settings(settings: dict | None) -> dict:
    """Defaults filled in, unknown keys and wrong types refused (EngineError)."""
    out = dict(DEFAULT_SETTINGS)
    for k, v in (settings or {}).items():
        if k not in DEFAULT_SETTINGS:
            raise EngineError(f"unknown engine setting {k!r} (settings: {', '.join(DEFAULT_SETTINGS)})")
        out[k] = v
    for k in ("rate", "block", "ahead", "input_channels", "polyphony", "transpose"):
        if not _is_int(out[k]):
            raise EngineError(f"engine setting {k}={out[k]!r} must be an integer")
        out[k] = int(out[k])
    for k in ("bend_range", "gain", "tuning", "velocity_curve", "pan"):
        if not _is_number(out[k]):
            raise EngineError(f"engine setting {k}={out[k]!r} must be a number")
        out[k] = float(out[k])
    from .config import ConfigError, EngineConfig
    try:                     # the pitch settings' ranges: EngineConfig's own check
        EngineConfig(tuning_hz=out["tuning"], transpose=out["transpose"], velocity_curve=out["velocity_curve"],
                     pan=out["pan"]).validate()
    except ConfigError as exc:
        raise EngineError(f"engine setting: {exc}") from None
    if out["model"] is not None:
        out["model"] = str(os.fspath(out["model"]))
    if out["audio"] is not None and not _is_int(out["audio"]):
        out["audio"] = str(out["audio"])
    for k in ("placement", "midi", "midi_api", "channels", "device", "sample_format"):
        out[k] = str(out[k])
    out["reverb"] = reverb_settings(out["reverb"], EngineError)
    if not isinstance(out["bindings"], dict):
        raise EngineError(f"engine setting bindings={out['bindings']!r:.60} must be {{control: [channel, cc]}}")
    for k, v in out["bindings"].items():
        if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v)):
            raise EngineError(f"engine setting bindings: {k!r} -> {v!r:.40} is not [channel, cc]")
    out["bindings"] = {str(k): [int(v[0]), int(v[1])] for k, v in out["bindings"].items()}
    out["wait_for_device"] = bool(out["wait_for_device"])
    return out


def describe_generator(gen, path: str | None = None) -> dict:
    """A generator's ``info`` as plain values (picklable, JSON-able): what the GUI builds its
    model panel from."""
    info = gen.info
    controls = [{"name": c.name, "min": float(c.minimum), "max": float(c.maximum), "default": float(c.default),
                 "unit": c.unit, "cc": c.cc, "description": c.description} for c in info.controls]
    return {"path": path, "family": info.family, "name": info.name, "sample_rate": info.sample_rate,
            "lookahead": int(info.lookahead), "polyphonic": bool(info.polyphonic), "controls": controls,
            "card": dict(info.card or {}), "device": str(getattr(gen, "device", "cpu"))}
