"""What the reverb (``livewave.reverb``) costs the render side, for ``benchmarks.run --reverb-only``:
the engine renders 64-sample blocks at 48 kHz with six notes held, in alternating rounds with the
send at 0 (the reverb idle: it returns at once) and at 0.5; medians side by side in one run, and
their ratio. Then a mono engine against a stereo one, and the reverb alone on noise (one tap and
two), per 64-sample block, at 48 and 192 kHz, as a share of the block's duration."""
import time
from pathlib import Path

import numpy as np

from benchmarks.take_cost import held_chord, median_block

ROOT = Path(__file__).resolve().parents[1]


def reverb_cost_table(blocks: int = 3000, rounds: int = 5) -> list[str]:
    lines = ["### What the reverb costs the render side (offline, 48 kHz, 64-sample blocks, six notes held)", "",
             f"{rounds} alternating rounds of {blocks} blocks with the send at 0 (idle) and at 0.5 (decay 2 s); "
             "the median block time of each round, then the median over rounds.", "",
             "| model | median block, reverb off (us) | median block, reverb on (us) | ratio | rounds (off / on, us) |",
             "| --- | ---: | ---: | ---: | --- |"]
    for name in ("default instrument", "violin", "piano-midi2mel"):
        model = None if name == "default instrument" else str(ROOT / "models" / f"{name}.safetensors")
        eng, out = held_chord(model)
        t = {0.0: [], 0.5: []}
        for _ in range(rounds):
            for send in t:
                eng.set_reverb(send=send)
                if send == 0.0:
                    eng.reverb.reset()       # the last round's tail gone: idle (it goes so by itself at -140 dB)
                    assert eng.reverb.idle
                t[send].append(median_block(eng, out, blocks))
        a, b = float(np.median(t[0.0])) * 1e6, float(np.median(t[0.5])) * 1e6
        each = ", ".join(f"{x * 1e6:.1f}/{y * 1e6:.1f}" for x, y in zip(t[0.0], t[0.5], strict=True))
        row = f"| {name} | {a:.1f} | {b:.1f} | {b / a:.3f} | {each} |"
        print(row, flush=True)
        lines.append(row)
    lines += ["", "What stereo and the pan cost the render side: the default instrument's engine with one output "
              "channel (the mono chain), with two (the dry mix copied to the right, a two-channel post chain; "
              "send 0), and with two panned (pan -0.4: the dry mix kept and each side scaled, `stereo_pan`), "
              f"{rounds} alternating rounds of {blocks} blocks:", "",
              "| median block, mono (us) | median block, stereo (us) | ratio | median block, stereo panned (us) "
              "| ratio to stereo |", "| ---: | ---: | ---: | ---: | ---: |"]
    engines = {1: held_chord(None, channels=1), 2: held_chord(None, channels=2),
               "pan": held_chord(None, channels=2, pan=-0.4)}
    t = {k: [] for k in engines}
    for _ in range(rounds):
        for k, (eng, out) in engines.items():
            t[k].append(median_block(eng, out[:, :1] if k == 1 else out, blocks))
    a, b, c = (float(np.median(t[k])) * 1e6 for k in (1, 2, "pan"))
    row = f"| {a:.1f} | {b:.1f} | {b / a:.3f} | {c:.1f} | {c / b:.3f} |"
    print(row, flush=True)
    lines.append(row)
    lines += ["", "The reverb alone (`Reverb.process` on white noise, send 1, decay 2 s), 20000 blocks of 64 samples, "
              "mono (one tap) and stereo (two) in alternating blocks:", "",
              "| rate | output | median per block (us) | p99 (us) | share of the block's duration, median |",
              "| ---: | --- | ---: | ---: | ---: |"]
    from livewave.reverb import Reverb
    for sr in (48000, 192000):
        rooms = {"mono": Reverb(sr, send=1.0), "stereo": Reverb(sr, send=1.0)}
        x = np.random.default_rng(0).standard_normal(64).astype(np.float32) * 0.1
        buf, right = np.empty(64, np.float32), np.empty(64, np.float32)
        t = {k: np.empty(20000) for k in rooms}
        for i in range(20000):
            for k, r in rooms.items():
                buf[:] = x
                right[:] = x
                t0 = time.perf_counter()
                r.process(buf, 64, 64 * i, right if k == "stereo" else None)
                t[k][i] = time.perf_counter() - t0
        for k in rooms:
            med, p99 = float(np.median(t[k])) * 1e6, float(np.percentile(t[k], 99)) * 1e6
            row = f"| {sr} | {k} | {med:.1f} | {p99:.1f} | {100 * med * 1e-6 / (64 / sr):.1f}% |"
            print(row, flush=True)
            lines.append(row)
    return lines + [""]
