"""The ``livewave`` command line. Sub-commands import what they need lazily.

    livewave                 the instrument (app with the default instrument; with no
                             audio device, renders the shipped demo and says so)
    livewave devices         audio devices and MIDI inputs, numbered
    livewave play            headless live instrument (--isolate: in a watched engine process)
    livewave render IN.mid   offline render through the live path
    livewave resynth IN.wav  a recording re-rendered by a vocoder, offline
    livewave import ...      a reference HiFi-GAN or MelGAN checkpoint as a livewave model
    livewave chain SRC VOC   an instrument played from MIDI, re-rendered by a vocoder
    livewave data soundfont  training data rendered from a soundfont (fluidsynth)
    livewave data audio DIR  training data from your own recordings
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from .config import PLACEMENTS, ConfigError

os.environ.setdefault("JACK_NO_START_SERVER", "1")   # listing devices must never spawn a jackd

DEMO_MIDI = Path(__file__).with_name("data") / "demo.mid"


class UsageError(Exception):
    pass


def _engine(args, sample_rate: int, block: int, input_channels: int = 0, gen=None, screen: bool = False):
    """The engine for a command; ``screen``: the model passes the load-time screen first
    (``load_screen``: refused for NaN/Inf, flagged in the engine's reports for peaks or DC)."""
    from .config import EngineConfig, parse_channels
    from .engine import Engine
    if gen is None and getattr(args, "model", None):
        from .checkpoint import load_generator
        gen = load_generator(args.model)
    cfg = EngineConfig(sample_rate=sample_rate, max_block=max(block, 1024),
                       polyphony=args.polyphony, bend_range=args.bend_range,
                       midi_channels=parse_channels(args.channels), master_gain_db=args.gain,
                       device=args.device, input_channels=input_channels,
                       tuning_hz=440.0 if getattr(args, "tuning", None) is None else args.tuning,
                       transpose=0 if getattr(args, "transpose", None) is None else args.transpose,
                       velocity_curve=1.0 if getattr(args, "velocity_curve", None) is None else args.velocity_curve,
                       pan=0.0 if getattr(args, "pan", None) is None else args.pan,
                       **_reverb_config(args))
    flagged = None
    if screen and gen is not None:
        from .load_screen import ScreenRefused, describe_flags
        from .load_screen import screen as run_screen
        try:
            run_screen(gen, cfg, block=block)
        except ScreenRefused as exc:
            from .checkpoint import CheckpointError
            raise CheckpointError(f"{args.model}: {exc}") from None
        flagged = describe_flags(gen)
    eng = Engine(cfg, gen)
    if flagged:
        eng.reports.append(flagged)
    return eng


REVERB_OPTIONS = (("reverb", "reverb_send"), ("reverb_decay", "reverb_decay_s"), ("reverb_damping", "reverb_damping"),
                  ("reverb_predelay", "reverb_predelay_ms"))


def _reverb_config(args) -> dict:
    """The reverb options given, as EngineConfig fields (the rest keep their defaults)."""
    return {field: getattr(args, opt) for opt, field in REVERB_OPTIONS if getattr(args, opt, None) is not None}


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint (.safetensors); default: the built-in instrument")
    p.add_argument("--rate", type=int, default=48000, help="sample rate in Hz (22050..192000)")
    p.add_argument("--block", type=int, default=None, help="block size in samples")
    p.add_argument("--polyphony", type=int, default=16)
    p.add_argument("--bend-range", type=float, default=2.0, help="pitch-bend range in semitones")
    p.add_argument("--tuning", type=float, default=None, metavar="HZ",
                   help="concert pitch: A4 in Hz, 400..480 (default 440; a take replays at its own)")
    p.add_argument("--transpose", type=int, default=None, metavar="SEMITONES",
                   help="added to every key, -36..36 (default 0; a take replays at its own)")
    p.add_argument("--velocity-curve", type=float, default=None, metavar="X",
                   help="a note's velocity becomes (v/127)^X, 0.25..4: under 1 a light touch plays louder, over 1 it "
                        "takes a harder one (default 1: as played; a take replays with its own)")
    p.add_argument("--pan", type=float, default=None, metavar="X",
                   help="where the instrument sits on a stereo device, -1 (left) .. 1 (right) (default 0: the centre; "
                        "CC 10 moves it live; a take replays with its own)")
    p.add_argument("--channels", default="all", help="MIDI channel filter: all, 1,2,10 or 1-4")
    p.add_argument("--gain", type=float, default=0.0, help="master gain in dB")
    p.add_argument("--reverb", type=float, default=None, metavar="SEND",
                   help="reverb send, 0..1 (default 0: off; CC 91 sets it live)")
    p.add_argument("--reverb-decay", type=float, default=None, metavar="S",
                   help="reverb decay to -60 dB at low frequencies, 0.1..20 s (default 2; a take replays with its own)")
    p.add_argument("--reverb-damping", type=float, default=None, metavar="X",
                   help="the top's decay over the lows', 0.05..1 (default 0.5)")
    p.add_argument("--reverb-predelay", type=float, default=None, metavar="MS", help="0..200 ms (default 10)")
    p.add_argument("--device", default="auto", help="where a neural model runs: auto (CUDA when present), cpu, cuda[:N]")


# -- devices ------------------------------------------------------------------------------
def cmd_devices(args) -> int:
    from .audio_io import AudioDeviceError, list_output_devices
    from .midi_input import MidiPortError, list_input_ports
    print("Audio devices:")
    try:
        devs = list_output_devices()
        for d in devs:
            print(f"  {d['index']:3d}  {d['name']}  [{d['hostapi']}]  in {d['inputs']}, out {d['outputs']}, "
                  f"default {d['default_rate']:.0f} Hz")
        if not devs:
            print("  (none)")
    except AudioDeviceError as exc:
        print(f"  unavailable: {exc}")
    for api in ("alsa", "jack"):
        try:
            ports = list_input_ports(api)
        except MidiPortError:
            continue
        print(f"MIDI inputs ({api}):")
        for i, p in enumerate(ports):
            print(f"  {i:3d}  {p}")
        if not ports:
            print("  (none)")
    return 0


# -- play -----------------------------------------------------------------------------------
def _status_line(eng, out, midi) -> str:
    st = eng.stats
    a = out.stats
    take = eng.take
    rec = f" | REC {take.samples / take.sample_rate:6.1f} s" if take is not None else ""
    return status_text(st.voices, eng.config.polyphony, a.load * 100, a.load_peak * 100, out.latency * 1000,
                       a.xruns, a.ring_underruns, st.generator_faults, len(midi.open_ports) if midi else 0, rec)


def status_text(voices: int, polyphony: int, load_pct: float, peak_pct: float, latency_ms: float, xruns: int,
                underruns: int, faults: int, midi_in: int, extra: str = "") -> str:
    """``play``'s status line (also ``play --isolate``'s, from the engine's shared status)."""
    return (f"voices {voices:2d}/{polyphony} | DSP {load_pct:5.1f}% (peak {peak_pct:5.1f}%) | "
            f"latency {latency_ms:5.1f} ms | xruns {xruns} | underruns {underruns} | faults {faults} | "
            f"midi in {midi_in}{extra}")


def _program_list(text: str | None) -> list[str]:
    """``--programs``: comma-separated model paths ('builtin': the built-in instrument), each
    checked to exist now, so a typo fails before anything opens."""
    from .checkpoint import BUILTIN
    from .config import ConfigError
    if not text:
        return []
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part.lower() in ("builtin", BUILTIN):
            out.append(BUILTIN)
        elif not Path(part).is_file():
            raise ConfigError(f"--programs: no model file {part!r}")
        else:
            out.append(part)
    if len(out) > 128:
        raise ConfigError(f"--programs: {len(out)} models; MIDI has 128 programs")
    return out


def _programs_step(eng, out, loader, programs: list[str]) -> list[str]:
    """The status loop's turn for program changes: a new one asks the loader for its model
    (``model_loader``: loaded and screened off the render side, then crossfaded in); returns
    the lines to print."""
    from .model_loader import program_choice
    msgs = []
    got = eng.poll_program()
    if got is not None:
        ch, n = got
        path, missing = program_choice(programs, ch, n, "in --programs")
        if missing:
            msgs.append(missing)
        else:
            loader.request(path)
            msgs.append(f"program {n + 1} (channel {ch + 1}): loading {Path(path).name}")
    for kind, path, what in loader.poll():
        if kind == "superseded":
            msgs.append(f"{Path(path).name}: not loaded, a later program change came first")
            continue
        if kind == "load_failed":
            msgs.append(f"{what}; {eng.generator.info.name} plays on")
            continue
        lead = out.set_lead_for(what)
        msgs.append(f"playing {what.info.name} ({what.info.family})" + (f"; {lead}" if lead else ""))
    return msgs


def cmd_play(args) -> int:
    from .audio_io import AudioOutput
    from .midi_input import MidiInputs
    block = args.block or 64
    programs = _program_list(args.programs)     # like a bad take name: refused before anything opens
    if args.record:         # a bad take name fails here, before the device and the MIDI are opened
        from .config import ConfigError
        from .take_recorder import free_take_paths
        try:
            args.record_paths = free_take_paths(args.record, midi=not args.no_record_midi)
        except ValueError as exc:
            raise ConfigError(f"--record: {exc}") from exc
        if not args.record_paths[0].parent.is_dir():
            raise ConfigError(f"--record {args.record}: no folder {args.record_paths[0].parent}")
    if args.isolate:
        from .supervised_play import run
        return run(args, block, programs)
    # NB: a thread that wants the GIL waits up to the switch interval (5 ms by default) for the
    # holder to yield; the audio callback must not wait that long for the status loop or a
    # MIDI thread, so make the holders yield far more often than a block lasts.
    sys.setswitchinterval(min(0.00025, 0.25 * block / args.rate))
    from .checkpoint import BUILTIN
    from .generator import preload_families
    # torch (one thread, jit warmed up) and every family's kernels, before the stream opens, for
    # any model this run may play: --model, or one that a program change loads (without it, the
    # first program change imported torch and compiled beside the playing instrument: the violin
    # played 8.8 s after it, with 2 ring underruns; tests/test_live_jack.py)
    models = bool(args.model) or any(p != BUILTIN for p in programs or ())
    unavailable = []
    if models:
        t0 = time.monotonic()
        unavailable = preload_families()
        print(f"livewave: the model families warmed up in {time.monotonic() - t0:.1f} s (torch and the Numba "
              "kernels, before the stream opens)", flush=True)
    eng = _engine(args, args.rate, block, screen=True)
    eng.reports.extend(f"a generator family is unavailable: {m}" for m in unavailable)
    from .generator import missing_input_warning
    warn = missing_input_warning(eng.generator.info, args.input_channels)
    if warn:
        eng.reports.append(warn)
    out = AudioOutput(eng, device=args.audio, sample_rate=args.rate, block=block, policy=args.placement,
                      ahead=args.ahead, input_channels=args.input_channels, sample_format=args.sample_format)
    out.open()
    lead_note = out.set_lead_for(eng.generator)
    if lead_note:
        eng.reports.append(lead_note)
    api = args.midi_api
    if api == "auto":
        api = "jack" if "JACK" in out.device_name else None
    midi = None
    if args.midi != "none":
        midi = MidiInputs(eng, args.midi, api=api).start()
        midi.attach(out)
    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    tty = sys.stdout.isatty()
    where = getattr(eng.generator, "device", "cpu")
    print(f"livewave: playing {eng.generator.info.name} ({eng.generator.info.family}, on {where}) on "
          f"{out.device_name}, {args.rate} Hz, block {block} ({args.placement}); Ctrl-C to stop", flush=True)
    if programs:
        print("livewave: program changes select " + ", ".join(
            f"{i + 1} {'the built-in instrument' if p == BUILTIN else Path(p).name}" for i, p in enumerate(programs)),
            flush=True)
    from .garbage_collector import OffAudioThread
    from .model_watchdog import ModelWatchdog, prepared_fallback
    watchdog = ModelWatchdog(eng, prepared_fallback(eng))
    from .device_watch import DeviceWatch
    device_watch = DeviceWatch(out)
    collector = OffAudioThread().start()        # no collection on the audio side: this loop runs them
    take = _start_take(args, eng) if args.record else None
    loader = None
    if programs:
        from .model_loader import ModelLoader
        loader = ModelLoader(lambda: eng, lambda: block, collector.collect_now).start()
    from . import fault_injection
    armed = fault_injection.armed()            # tests only (LIVEWAVE_FAULTS=1): SIGUSR1 injects it
    if armed:
        signal.signal(signal.SIGUSR1, lambda signum, frame: stop.__setitem__("fault", True))
    out.start()
    t_end = time.monotonic() + args.duration if args.duration else None
    last_line = last_stats = 0.0
    try:
        while not stop["now"] and (t_end is None or time.monotonic() < t_end):
            time.sleep(0.05)
            collector.tick()
            if stop.pop("fault", False):
                fault_injection.inject(eng, armed)
                print(f"livewave: fault injected: {armed}", flush=True)
            quiet = device_watch.check()
            if quiet is not None:
                _device_lost(args, eng, out, midi, take, block, quiet, tty)
            verdict = watchdog.check()
            if verdict is not None and verdict[0] == "hung":
                if out.policy == "callback":
                    print(f"\nlivewave: the model {eng.generator.info.name} stopped answering (one block has taken "
                          f"{verdict[1]:.1f} s). Under --placement callback it renders on the audio device's own "
                          "thread, which cannot be freed, so livewave ends here. Play it again without that model; "
                          "--placement rtmixer or thread play on with the built-in instrument instead.",
                          file=sys.stderr, flush=True)
                    os._exit(3)
                if take is not None:
                    eng.stop_take(timeout_s=0.0)
                    print(("\n" if tty else "") + _take_line(take.finish()), flush=True)
                    take = None
                eng, watchdog = _take_over_from_hung(eng, out, midi, verdict[1])
            elif verdict is not None and watchdog.unload():
                print(f"\nlivewave: the model {eng.generator.info.name} kept failing ({verdict[1]}); its blocks were "
                      "muted and it is unloaded: the built-in instrument plays", flush=True)
            msgs = eng.take_reports() + (list(_drain(midi.reports)) if midi else [])
            if loader is not None:
                msgs += _programs_step(eng, out, loader, programs)
            if eng.stats.last_fault:
                msgs.append(f"generator fault: {eng.stats.last_fault} (block muted, generator reset)")
                eng.stats.last_fault = ""
            failed = take.new_error() if take is not None else None
            if failed:
                msgs.append(f"recording failed: {failed}; the music plays on")
            for m in msgs:
                print(("\r\033[K" if tty else "") + m, flush=True)
            now = time.monotonic()
            if args.stats_json and now - last_stats > 0.25:
                last_stats = now
                _write_stats(args.stats_json, eng, out, midi, block, args.rate)
            if now - last_line > (0.2 if tty else 5.0):
                last_line = now
                line = _status_line(eng, out, midi)
                print(("\r\033[K" + line) if tty else line, end="" if tty else "\n", flush=True)
    finally:
        eng.release_all()                       # Ctrl-C: every note released, then fade out
        time.sleep(eng.release_s + 0.05)
        eng.ring_out()                          # the reverb's room too, then a fade: no click
        if take is not None:                    # the take holds the release's tail too
            eng.stop_take()
            print(("\n" if tty else "") + _take_line(take.finish()), flush=True)
        out.stop()                              # audio first: under JACK, rtmidi calls must not
        if midi:                                # overlap a running Python audio callback
            midi.stop()
        collector.stop()
        if loader is not None:
            loader.stop()
        print(("\n" if tty else "") + "livewave: stopped; all notes released. " + _status_line(eng, out, midi),
              flush=True)
        if args.stats_json:
            _write_stats(args.stats_json, eng, out, midi, block, args.rate, final=True)
    return 0


def _device_lost(args, eng, out, midi, take, block: int, quiet: float, tty: bool) -> None:
    """``livewave play``'s answer to an audio device that stopped taking audio (``device_watch``):
    the take is finished and the statistics written, then the process ends with status 4, without
    a PortAudio call (closing a stream whose device is gone hangs). ``--isolate`` and the app wait
    for the device instead and play again when it is back."""
    print(f"\nlivewave: the audio device {out.device_name} has taken no audio for {quiet:.1f} s (unplugged, or its "
          "server ended). livewave ends here (exit status 4); with --isolate (and in the app) it waits for the "
          "device and plays on when it is back.", file=sys.stderr, flush=True)
    out.abandon()
    try:
        if take is not None:
            eng.stop_take(timeout_s=0.0)
            print(("\n" if tty else "") + _take_line(take.finish()), flush=True)
        if args.stats_json:
            _write_stats(args.stats_json, eng, out, midi, block, args.rate, final=True)
    finally:
        sys.stdout.flush()
        os._exit(4)


def _take_over_from_hung(eng, out, midi, seconds: float):
    """``livewave play``'s answer to a model stuck in a block (ring placements): its render
    thread is left behind and a new engine with the built-in instrument, prepared here with the
    same settings, plays on into the same stream (``AudioOutput.adopt_engine``). Held notes are
    not carried over (the stuck engine's state cannot be read safely): the next ones play.
    Returns the new engine and its watchdog."""
    from .default_instrument import DefaultInstrument
    from .engine import Engine
    from .model_watchdog import ModelWatchdog, prepared_fallback
    name = eng.generator.info.name
    began = eng.stats.render_started
    new = Engine(eng.config, DefaultInstrument())
    new.prepare()
    new.reverb_send[0] = eng.reverb_send[0]
    new.set_pan(float(eng.pan[0]))          # where a keyboard's CC 10 had put it
    new.set_tuning(eng.tuning_hz)
    out.adopt_engine(new)
    out.set_lead_for(new.generator)
    if midi is not None:
        midi.engine = new
    after = time.perf_counter() - began if began else seconds
    print(f"\nlivewave: the model {name} stopped answering (one block had taken {seconds:.1f} s); its render "
          f"thread is left behind and the built-in instrument plays on, {after:.2f} s after that block began. "
          "Notes held then must be played again.", flush=True)
    return new, ModelWatchdog(new, prepared_fallback(new))


def _start_take(args, eng):
    from .config import ConfigError
    from .take_recorder import start_take
    wav, mid = args.record_paths
    try:
        take = start_take(eng, wav, mid)
    except (OSError, RuntimeError) as exc:       # a read-only folder, a full disk: before the stream starts
        raise ConfigError(f"--record {wav}: cannot write it ({exc})") from None
    print(f"livewave: recording to {wav}" + (f" and {mid}" if mid else "")
          + (f", the audio input to {take.input_path}" if take.input_path else ""), flush=True)
    return take


def _take_line(s: dict) -> str:
    line = f"livewave: recorded {s['seconds']:.1f} s to {s['audio']}"
    if s["midi"]:
        line += f" and {s['events']} MIDI events to {s['midi']}"
    if s.get("input"):
        line += f", the audio input to {s['input']}"
    if s["dropped_samples"] or s["dropped_events"]:
        line += (f"; the disk fell behind: {s['dropped_samples']} samples and {s['dropped_events']} events "
                 "were not recorded")
    if s["error"]:
        line += f"; failed: {s['error']}"
    return line


def _write_stats(path, eng, out, midi, block, rate, final=False) -> None:
    """Statistics as JSON (atomically replaced), for tests and monitoring."""
    a = out.stats
    data = {"final": final, "xruns": a.xruns, "ring_underruns": a.ring_underruns, "callbacks": a.callbacks,
            "load": a.load, "load_peak": a.load_peak, "latency_s": out.latency, "render_hangs": a.render_hangs,
            "device_latency_s": out.device_latency, "midi_delay": eng.midi_delay,
            "engine_latency_samples": eng.latency_samples, "generator_faults": eng.stats.generator_faults,
            "midi_messages": midi.messages if midi else 0, "malformed": midi.malformed if midi else 0,
            "midi_late": midi.late if midi else 0, "midi_late_samples": eng.midi_late,
            "midi_overflows": midi.overflows if midi else 0,
            "midi_ports": sorted(midi.open_ports) if midi else [],
            "dropped_events": eng.events.dropped, "voices": eng.stats.voices, "block": block, "rate": rate,
            "model": eng.playing[0].info.name}
    write_json_atomic(path, data)


def write_json_atomic(path, data: dict) -> None:
    """``data`` as JSON at ``path``, replaced in one step (a reader never sees half a file)."""
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _drain(dq):
    while dq:
        yield dq.popleft()


# -- render -----------------------------------------------------------------------------
def cmd_render(args) -> int:
    import soundfile as sf

    from .offline_render import ProgressBar, render_song
    from .smf import read_midi_file
    song = read_midi_file(args.midi_file)
    block = args.block or 256
    if song.take_tuning is not None:            # a take replays at the pitch it was played at
        args.tuning = song.take_tuning[0] if args.tuning is None else args.tuning
        args.transpose = song.take_tuning[1] if args.transpose is None else args.transpose
    if song.take_velocity_curve is not None and args.velocity_curve is None:
        args.velocity_curve = song.take_velocity_curve      # and with the touch it was played with
    if song.take_pan is not None and getattr(args, "pan", None) is None:
        args.pan = song.take_pan                # and where it stood (then CC 10 moves it)
    if song.take_room is not None:              # and in the room it was played in (then CC 91 moves the send)
        for (opt, _), v in zip(REVERB_OPTIONS, song.take_room, strict=True):
            if getattr(args, opt, None) is None:
                setattr(args, opt, v)
    eng = _engine(args, args.rate, block).prepare()
    bar = ProgressBar(args.rate, label=Path(args.midi_file).name) if not args.quiet else None
    t0 = time.perf_counter()
    audio = render_song(eng, song, block=block, progress=bar)
    el = time.perf_counter() - t0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), audio, args.rate, subtype="FLOAT" if out.suffix.lower() == ".wav" else None)
    secs = audio.shape[0] / args.rate
    print(f"livewave: rendered {song.path} ({len(song.events)} events, {secs:.1f} s) to {out} "
          f"at {args.rate} Hz, block {block}: {secs / max(el, 1e-9):.1f}x real time; "
          f"peak {20 * __import__('math').log10(max(1e-9, float(abs(audio).max()))):.1f} dBFS")
    return 0


# -- resynth ----------------------------------------------------------------------------
def read_audio(path, rate: int):
    """Any file soundfile reads, any channel count: mixed to mono float32 ``[frames, 1]`` at
    ``rate`` (soxr, high quality). Non-finite samples become 0 (counted in the message)."""
    import numpy as np
    import soundfile as sf
    import soxr
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise ConfigError(f"{path}: not an audio file soundfile can read ({exc})") from None
    if x.shape[0] == 0:
        raise ConfigError(f"{path}: the file holds no samples")
    x = x.mean(axis=1)
    bad = ~np.isfinite(x)
    if bad.any():
        print(f"livewave: {path}: {int(bad.sum())} samples were NaN or Inf and are played as silence",
              file=sys.stderr)
        x[bad] = 0.0
    if sr != rate:
        x = soxr.resample(x, sr, rate, quality="HQ").astype(np.float32)
    return x[:, None]


def cmd_resynth(args) -> int:
    """An audio-driven model (a vocoder) re-renders a recording: the live path with the file
    as its input, offline."""
    import soundfile as sf

    from .checkpoint import load_generator
    from .offline_render import ProgressBar, render_audio
    block = args.block or 256
    if not args.model:
        raise ConfigError("resynth needs --model: a vocoder checkpoint (the built-in instrument is played from MIDI)")
    gen = load_generator(args.model)
    info = gen.info
    if info.conditioning != "audio":
        raise ConfigError(f"{args.model}: resynth needs a model driven by audio (a vocoder); this one is a "
                          f"{info.family} model played from MIDI")
    rate = args.rate or max(22050, int(info.sample_rate))     # the engine's lowest rate is 22050
    x = read_audio(args.input, rate)
    eng = _engine(args, rate, block, input_channels=1, gen=gen).prepare()
    bar = ProgressBar(rate, label=Path(args.input).name) if not args.quiet else None
    t0 = time.perf_counter()
    y = render_audio(eng, x, block=block, progress=bar)
    el = time.perf_counter() - t0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # mono, as the recording came in (mixed to mono); stereo where --reverb put a room around it
    y = y[:, :2] if eng.config.reverb_send > 0 and y.shape[1] >= 2 else y[:, 0]
    sf.write(str(out), y, rate, subtype="FLOAT" if out.suffix.lower() == ".wav" else None)
    secs = y.shape[0] / rate
    print(f"livewave: resynthesised {args.input} ({secs:.1f} s) with {info.name} ({info.family}) to {out} at "
          f"{rate} Hz, block {block}: {secs / max(el, 1e-9):.1f}x real time; latency compensated "
          f"{eng.latency_samples} samples")
    return 0


def cmd_chain(args) -> int:
    from .checkpoint import load_generator
    from .vocoder_chain import make_chain
    out = make_chain(args.source, args.vocoder, args.output, name=args.name)
    info = load_generator(out).info
    print(f"livewave: wrote {out}: {info.name} ({len(info.controls)} controls); play it with "
          f"livewave play --model {out}")
    return 0


def cmd_import(args) -> int:
    from .vocoder_import import import_hifigan, import_melgan
    if args.kind == "hifigan":
        out = import_hifigan(args.weights, args.config, args.output, name=args.name,
                             trust_torchscript=args.trust_torchscript)
    else:
        out = import_melgan(args.weights, args.output, n_mels=args.n_mels, ngf=args.ngf,
                            n_residual_layers=args.n_residual_layers, sample_rate=args.rate, args_yml=args.args,
                            name=args.name, trust_torchscript=args.trust_torchscript)
    from .checkpoint import load_generator
    info = load_generator(out).info
    lag = int(info.card.get("stream_lag_frames") or 0)
    print(f"livewave: imported {args.weights} as {out} ({info.family}, {info.sample_rate} Hz, hop {info.hop}); "
          f"it streams exactly with {lag} frames of lookahead ({lag * info.hop / info.sample_rate * 1e3:.0f} ms)")
    return 0


def cmd_screen(args) -> int:
    """The load-time screen of each model, printed; ``--write-card`` keeps the figures in the
    checkpoint's card and its page (``MODEL.md``)."""
    from .checkpoint import CheckpointError, load_generator, read_checkpoint, save_checkpoint
    from .config import EngineConfig
    from .load_screen import PHASES, ScreenRefused, screen
    refused = unreadable = 0
    for path in args.models:
        try:
            gen = load_generator(path)
        except CheckpointError as exc:     # NB: one bad file among many: the others are still screened
            print(f"livewave: error: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        try:
            report = screen(gen, EngineConfig(sample_rate=args.rate, device=args.device))
        except ScreenRefused as exc:
            print(f"{path}: refused: {exc}")
            refused += 1
            continue
        figures = "; ".join(
            f"{p}: peak {'silent' if report[p]['peak_dbfs'] is None else format(report[p]['peak_dbfs'], '+.2f') + ' dBFS'}"
            f", DC {report[p]['dc']:+.5f}" for p in PHASES)
        print(f"{path}: {figures}; " + ("flagged: " + "; ".join(report["flags"]) if report["flags"] else "clean"))
        if args.write_card:
            from .train_cli import card_page_writer
            meta, tensors = read_checkpoint(path)
            save_checkpoint(path, meta["family"], meta["config"], {**meta["card"], "load_screen": report}, tensors)
            writer = card_page_writer(meta["family"])
            if writer is not None:
                print(f"  written to its card and {writer(path)}")
            else:
                print("  written to its card (no card page for this family)")
    return 2 if unreadable else 1 if refused else 0


# -- data -------------------------------------------------------------------------------
def cmd_data_soundfont(args) -> int:
    from .soundfont_data import DatasetError, make_soundfont_dataset
    try:
        if args.polyphonic:
            from .roll_data import make_roll_dataset
            make_roll_dataset(args.out, args.program, args.minutes, sample_rate=args.rate or 22050, seed=args.seed,
                              low=args.low, high=args.high, soundfont=args.soundfont, pedal=not args.no_pedal)
        else:
            make_soundfont_dataset(args.out, args.program, args.minutes, sample_rate=args.rate or 16000,
                                   seed=args.seed, low=args.low, high=args.high, soundfont=args.soundfont,
                                   tune=not args.no_tuning)
    except DatasetError as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_data_synth(args) -> int:
    from .synthetic_sounds import make_synthetic_dataset
    try:
        make_synthetic_dataset(args.out, args.minutes, sample_rate=args.rate, seed=args.seed)
    except (ValueError, OSError) as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_data_audio(args) -> int:
    from .audio_data import make_audio_dataset
    from .soundfont_data import DatasetError
    try:
        make_audio_dataset(args.indir, args.out, sample_rate=args.rate, fmin=args.fmin, fmax=args.fmax)
    except DatasetError as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _usage(parser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _add_data_parsers(sub) -> None:
    da = sub.add_parser("data", help="make training data (DDSP instruments, MIDI-to-mel, vocoders)")
    dsub = da.add_subparsers(dest="data_command")
    da.set_defaults(func=lambda args: _usage(da))
    s = dsub.add_parser("soundfont", help="render varied phrases of one GM program with fluidsynth")
    s.add_argument("--program", type=int, required=True, help="GM program, 0-based (violin 40, flute 73)")
    s.add_argument("--minutes", type=float, required=True, help="minutes of audio to render")
    s.add_argument("--out", required=True, help="dataset folder (new, empty, or an earlier dataset)")
    s.add_argument("--rate", type=int, default=None,
                   help="sample rate in Hz (default: 16000, or 22050 with --polyphonic: the vocoders' rate)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--polyphonic", action="store_true",
                   help="polyphonic phrases with the sustain pedal, labelled with their notes: data for "
                        "MIDI-to-mel models (livewave train midi2mel) and vocoders")
    s.add_argument("--no-pedal", action="store_true", help="with --polyphonic: never use the sustain pedal")
    s.add_argument("--low", type=int, default=None, help="lowest MIDI key (default: the program's range)")
    s.add_argument("--high", type=int, default=None, help="highest MIDI key")
    s.add_argument("--soundfont", default="/usr/share/sounds/sf2/FluidR3_GM.sf2")
    s.add_argument("--no-tuning", action="store_true",
                   help="f0 labels from the MIDI alone, without the soundfont's measured key tuning")
    s.set_defaults(func=cmd_data_soundfont)
    sy = dsub.add_parser("synth", help="synthetic sounds after silence (sawtooths, squares, noise, sines): vocoder "
                                       "training data beside FluidR3's, for the inputs its instruments never make")
    sy.add_argument("--minutes", type=float, required=True, help="minutes of audio (clips of 3 s)")
    sy.add_argument("--out", required=True, help="folder to write synth_NNN.wav into")
    sy.add_argument("--rate", type=int, default=22050, help="sample rate in Hz (the vocoders' 22050)")
    sy.add_argument("--seed", type=int, default=11)
    sy.set_defaults(func=cmd_data_synth)
    a = dsub.add_parser("audio", help="label your own recordings of one monophonic instrument")
    a.add_argument("indir", help="folder of .wav/.flac/.aif/.aiff/.ogg files (searched recursively)")
    a.add_argument("--out", required=True, help="dataset folder (new, empty, or an earlier dataset)")
    a.add_argument("--rate", type=int, default=16000, help="sample rate in Hz")
    a.add_argument("--fmin", type=float, default=40.0, help="lowest pitch to track, Hz")
    a.add_argument("--fmax", type=float, default=2000.0, help="highest pitch to track, Hz")
    a.set_defaults(func=cmd_data_audio)


# -- main job ----------------------------------------------------------------------------
def cmd_default(args) -> int:
    """The app when there is a display and an audio device; else the demo, rendered."""
    from .audio_io import AudioDeviceError, resolve_output_device
    try:
        resolve_output_device(None)
        have_audio = True
    except AudioDeviceError as exc:
        have_audio = False
        reason = str(exc)
    if have_audio:
        ns = build_parser().parse_args(["play"])
        return cmd_play(ns)
    out = Path(args.output or "out/demo.wav")
    print(f"livewave: {reason}.\nlivewave: rendering the shipped demo ({DEMO_MIDI.name}) through the same "
          f"engine instead, to {out}")
    ns = build_parser().parse_args(["render", str(DEMO_MIDI), "-o", str(out)])
    return cmd_render(ns)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livewave", description="A real-time neural instrument.")
    p.add_argument("-o", "--output", help="where the demo render goes when there is no audio device")
    sub = p.add_subparsers(dest="command")
    d = sub.add_parser("devices", help="list audio devices and MIDI inputs")
    d.set_defaults(func=cmd_devices)
    pl = sub.add_parser("play", help="headless live instrument")
    pl.add_argument("--audio", help="output device: number or part of its name (default: system default)")
    pl.add_argument("--midi", default="all", help="MIDI input: number, part of its name, 'all' or 'none'")
    pl.add_argument("--midi-api", default="auto", choices=["auto", "alsa", "jack", "coremidi", "winmm"])
    pl.add_argument("--placement", default="callback", choices=PLACEMENTS,
                    help="render in the audio callback, or on a thread some blocks ahead whose blocks a "
                         "Python callback (thread) or rtmixer's C callback (rtmixer) plays")
    pl.add_argument("--ahead", type=int, default=2, help="blocks of lead for --placement thread or rtmixer")
    pl.add_argument("--sample-format", default="float32", choices=("float32", "int16"),
                    help="what the device is handed (int16: converted at the last step, clipped, never wrapped)")
    pl.add_argument("--input-channels", type=int, default=0,
                    help="open the device duplex with this many inputs (for audio-driven models)")
    pl.add_argument("--isolate", action="store_true",
                    help="run the engine in a process of its own, watched by this one: a model that holds the GIL, "
                         "crashes or is killed costs a restart (about a second of silence, then the built-in "
                         "instrument), not the set")
    pl.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    pl.add_argument("--stats-json", help="write final statistics to this file")
    pl.add_argument("--record", metavar="TAKE.wav",
                    help="record what plays to this WAV (32-bit float) and the MIDI played to TAKE.mid, which "
                         "`livewave render` turns back into the same audio; an existing take is never overwritten "
                         "(TAKE-2.wav, ...)")
    pl.add_argument("--no-record-midi", action="store_true", help="with --record: the audio only")
    pl.add_argument("--programs", default=None, metavar="PATH,PATH,...",
                    help="the models MIDI program changes select, in order: program 1 (0 on the wire) is the first; "
                         "'builtin' names the built-in instrument. Without it program changes are ignored")
    _add_engine_options(pl)
    pl.set_defaults(func=cmd_play)
    r = sub.add_parser("render", help="render a MIDI file offline through the live path")
    r.add_argument("midi_file")
    r.add_argument("-o", "--output", required=True, help="output audio file (.wav, .flac)")
    r.add_argument("-q", "--quiet", action="store_true")
    _add_engine_options(r)
    r.set_defaults(func=cmd_render)
    rs = sub.add_parser("resynth", help="re-render a recording through an audio-driven model (a vocoder)")
    rs.add_argument("input", help="audio file: any rate or channel count (mixed to mono, resampled)")
    rs.add_argument("-o", "--output", required=True, help="output audio file (.wav, .flac)")
    rs.add_argument("-q", "--quiet", action="store_true")
    _add_engine_options(rs)
    rs.set_defaults(func=cmd_resynth, rate=None)
    im = sub.add_parser("import", help="convert a reference HiFi-GAN or MelGAN generator checkpoint")
    isub = im.add_subparsers(dest="kind", required=True)
    h = isub.add_parser("hifigan", help="a generator file of the HiFi-GAN reference code (g_XXXXXXXX) and its "
                                       "config JSON")
    h.add_argument("weights")
    h.add_argument("--config", required=True, help="the config JSON it was trained with (V1, V2, V3, ...)")
    h.add_argument("-o", "--output", required=True, help="livewave checkpoint to write (.safetensors)")
    h.add_argument("--name")
    h.add_argument("--trust-torchscript", action="store_true",
                   help="open a TorchScript file (torch.jit.load runs the code inside it; only for files you trust)")
    h.set_defaults(func=cmd_import)
    mg = isub.add_parser("melgan", help="a generator state dict of the MelGAN reference code (netG.pt)")
    mg.add_argument("weights")
    mg.add_argument("--args", help="its args.yml (n_mel_channels, ngf, n_residual_layers)")
    mg.add_argument("--n-mels", type=int, default=80)
    mg.add_argument("--ngf", type=int, default=32)
    mg.add_argument("--n-residual-layers", type=int, default=3)
    mg.add_argument("--rate", type=int, default=22050, help="the sample rate it was trained at")
    mg.add_argument("-o", "--output", required=True, help="livewave checkpoint to write (.safetensors)")
    mg.add_argument("--name")
    mg.add_argument("--trust-torchscript", action="store_true",
                   help="open a TorchScript file (torch.jit.load runs the code inside it; only for files you trust)")
    mg.set_defaults(func=cmd_import)
    ch = sub.add_parser("chain", help="one model of an instrument played from MIDI re-rendered by a vocoder")
    ch.add_argument("source", help="a DDSP (or other MIDI-played) checkpoint, or builtin:default")
    ch.add_argument("vocoder", help="a vocoder checkpoint (melgan, flow, hifigan, ...)")
    ch.add_argument("-o", "--output", required=True, help="the chain checkpoint to write (.safetensors)")
    ch.add_argument("--name")
    ch.set_defaults(func=cmd_chain)
    sc = sub.add_parser("screen", help="play models 1 s of silence and 1 s of notes, as the engine does at load, "
                        "and print what they output before the limiter")
    sc.add_argument("models", nargs="+", help="checkpoints (.safetensors)")
    sc.add_argument("--rate", type=int, default=48000, help="sample rate in Hz")
    sc.add_argument("--device", default="cpu", help="where a neural model runs: cpu, cuda[:N], auto")
    sc.add_argument("--write-card", action="store_true",
                    help="keep the figures in each checkpoint's card and its page (MODEL.md)")
    sc.set_defaults(func=cmd_screen)
    _add_data_parsers(sub)
    from .train_cli import add_parsers as add_training
    add_training(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .audio_io import AudioDeviceError
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .midi_input import MidiPortError
    from .smf import MidiFileError
    try:
        if getattr(args, "func", None) is None:
            return cmd_default(args)
        return args.func(args)
    except (AudioDeviceError, CheckpointError, ConfigError, MidiPortError, MidiFileError) as exc:
        print(f"livewave: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
