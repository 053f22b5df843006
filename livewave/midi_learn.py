"""MIDI learn and control bindings: a MIDI CC (channel, number) drives a generator control.

Threading:
- control side (a command loop, a CLI): ``bind``, ``unbind``, ``learn``, ``poll_learned``,
  ``table_for``. A table maps [channel, cc] to a control index of one generator, with the
  control ranges; tables are built here and published as a whole tuple (one reference
  store), never changed in place.
- render side: ``on_cc`` at each CC's sample, with the generator that plays at that moment.
  It applies a binding only through the table built for that very generator (a swap installs
  a new generator whose control indices differ; its table is built when the swap is asked
  for, so a CC in the block of the swap lands right), and it records the last CC seen (for
  learning) in a small int64 array: no allocation, no lock.

Bindings are by control name, so they survive a model change when the new model has a
control of that name (and are kept, inactive, when it has not). The knob's position carries
over: at a swap the new model's bound controls start where their knobs last were
(``carry_over``, render side), not at the model's defaults. The CC's 0..127 maps
linearly onto the control's range. ``MASTER`` ("volume") names the master volume, whatever
the model: a CC bound to it spans ``MASTER_RANGE`` dB. The MIDI controllers that carry structure (bank select,
data entry, (N)RPN numbers, channel-mode messages) are never learned.
"""
from __future__ import annotations

import numpy as np

MASTER = "volume"              # the master volume (post chain), learnable like any control
MASTER_RANGE = (-60.0, 6.0)    # dB a bound CC spans (the app's volume slider)
_MASTER_ROW = -2               # its entry in a table (controls are >= 0, unbound -1)

# bank select, data entry MSB/LSB, data increment/decrement, NRPN/RPN numbers, channel mode
NOT_LEARNABLE = frozenset((0, 32, 6, 38, 96, 97, 98, 99, 100, 101, *range(120, 128)))


class BindingError(ValueError):
    pass


class ControlBindings:
    def __init__(self):
        self.bindings: dict[str, tuple[int, int]] = {}      # control name -> (channel 0..15, cc)
        self.learning: str | None = None                     # control waiting for a CC
        self.last_cc = np.zeros(4, np.int64)                 # render side: serial, channel, cc, value
        self._learn_serial = 0
        self._tables: tuple = ()                             # ((generator, map, lo, hi), ...)
        self.master_db = 0.0                                 # render side: the last volume a CC set...
        self.master_serial = 0                               # ...and how many times it set one
        self.cc_values = np.full((16, 128), -1, np.int16)    # render side: each CC's last value (-1: none yet)

    # -- control side ---------------------------------------------------------------------
    @staticmethod
    def check(name, channel, cc) -> tuple[str, int, int]:
        if not isinstance(name, str) or not name:
            raise BindingError(f"a binding needs a control name, got {name!r:.40}")
        for what, x, hi in (("channel", channel, 15), ("cc", cc, 127)):
            if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not 0 <= int(x) <= hi:
                raise BindingError(f"binding of {name!r}: {what} {x!r} is not an integer in 0..{hi}")
        if int(cc) in NOT_LEARNABLE:
            raise BindingError(f"binding of {name!r}: CC {cc} carries MIDI structure (bank select, data entry, "
                               "(N)RPN or channel mode) and cannot drive a control")
        return name, int(channel), int(cc)

    def bind(self, name: str, channel: int, cc: int, generators=()) -> None:
        """Bind (replacing the control's binding and any other control on that CC), then
        rebuild the tables of ``generators`` (the one playing and any pending)."""
        name, channel, cc = self.check(name, channel, cc)
        for other, b in list(self.bindings.items()):
            if b == (channel, cc) and other != name:
                del self.bindings[other]
        self.bindings[name] = (channel, cc)
        self.publish(generators)

    def unbind(self, name: str, generators=()) -> None:
        self.bindings.pop(name, None)
        self.publish(generators)

    def set_all(self, bindings: dict, generators=()) -> None:
        """Replace every binding (checked first: a bad one changes nothing)."""
        checked = {}
        for name, b in (bindings or {}).items():
            if not isinstance(b, (tuple, list)) or len(b) != 2:
                raise BindingError(f"binding of {name!r} is {b!r:.40}; need (channel, cc)")
            n, ch, cc = self.check(name, *b)
            checked[n] = (ch, cc)
        self.bindings = checked
        self.publish(generators)

    def table_for(self, generator) -> tuple:
        controls = generator.info.controls
        index = {c.name: i for i, c in enumerate(controls)}
        table = np.full((16, 128), -1, np.int16)
        lo = np.array([c.minimum for c in controls], np.float64)
        hi = np.array([c.maximum for c in controls], np.float64)
        bound = []
        for name, (ch, cc) in self.bindings.items():
            if name in index:
                table[ch, cc] = index[name]
                bound.append((ch, cc, index[name]))
            elif name == MASTER:
                table[ch, cc] = _MASTER_ROW
        return (generator, table, lo, hi, np.array(bound, np.int64).reshape(-1, 3))

    def publish(self, generators) -> None:
        """Tables for these generators (None entries skipped), published in one store."""
        self._tables = tuple(self.table_for(g) for g in generators if g is not None)

    def covers(self, generator) -> bool:
        return any(t[0] is generator for t in self._tables)

    def learn(self, name: str | None) -> None:
        """The next learnable CC binds to ``name`` (None or "" cancels)."""
        self.learning = name or None
        self._learn_serial = int(self.last_cc[0])

    def poll_learned(self, generators=()) -> tuple[str, int, int] | None:
        """Control side, periodically while learning: bind the CC that arrived since ``learn``
        and return (name, channel, cc); None while none did."""
        serial = int(self.last_cc[0])
        if self.learning is None or serial == self._learn_serial:
            return None
        self._learn_serial = serial
        ch, cc = int(self.last_cc[1]), int(self.last_cc[2])
        if cc in NOT_LEARNABLE:
            return None
        name, self.learning = self.learning, None
        self.bind(name, ch, cc, generators)
        return name, ch, cc

    # -- render side ------------------------------------------------------------------------
    def on_cc(self, generator, controls: np.ndarray, ch: int, cc: int, value: int, post=None) -> bool:
        """``post``: the post chain whose gain a CC bound to ``MASTER`` sets (None: only noted).
        True if a binding took the CC (the engine then leaves its GM meaning, e.g. CC 91's reverb
        send, alone)."""
        last = self.last_cc
        last[1] = ch
        last[2] = cc
        last[3] = value
        last[0] += 1              # NB: the serial last, so a reader that sees it sees the rest
        self.cc_values[ch, cc] = value
        for gen, table, lo, hi, _ in self._tables:
            if gen is generator:
                i = table[ch, cc]
                if i >= 0:
                    controls[i] = lo[i] + (hi[i] - lo[i]) * (value / 127.0)
                elif i == _MASTER_ROW:
                    db = MASTER_RANGE[0] + (MASTER_RANGE[1] - MASTER_RANGE[0]) * (value / 127.0)
                    if post is not None:
                        post.set_gain_db(db)
                    self.master_db = db
                    self.master_serial += 1
                return i != -1
        return False

    def carry_over(self, generator, controls: np.ndarray) -> None:
        """Render side, at the swap that installs ``generator``: its bound controls take their
        knobs' last positions (no allocation: the bound list was built with the table)."""
        values = self.cc_values
        for gen, _, lo, hi, bound in self._tables:
            if gen is generator:
                for k in range(bound.shape[0]):
                    v = values[bound[k, 0], bound[k, 1]]
                    if v >= 0:
                        i = bound[k, 2]
                        controls[i] = lo[i] + (hi[i] - lo[i]) * (v / 127.0)
                return
