"""The model browser: the checkpoints in the shipped ``models/`` folder and a user folder,
each with its model card (family, instrument, sample rate, size, device, quality)."""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QFrame, QLabel, QListWidget, QListWidgetItem, QScrollArea, QVBoxLayout, QWidget

from livewave.checkpoint import BUILTIN, CheckpointError, read_checkpoint

SUFFIXES = (".safetensors",)


AUDIO_DRIVEN = ("melgan", "istft", "flow", "hifigan", "melgan_reference")


def card_text(path: Path | None, meta: dict | None, device: str | None = None) -> str:
    """A model card as short rich text for the browser."""
    if path is None:
        return "<b>Built-in instrument</b><br>the default harmonic-plus-noise synth"
    if meta is None:
        return f"<b>{path.name}</b><br>not readable"
    card = meta.get("card", {})
    q = card.get("quality", {})
    tr = card.get("training", {})
    rows = [f"<b>{card.get('instrument') or path.stem}</b> ({meta.get('family', '?')})",
            f"{path.stat().st_size / 1e6:.2f} MB, {card.get('sample_rate', '?')} Hz"]
    family = meta.get("family", "")
    if family in AUDIO_DRIVEN:
        rows.append("a vocoder driven by audio in: it needs an audio input (or use it in a chain)")
    if family == "chain":
        src, voc = card.get("source", {}), card.get("vocoder", {})
        rows.append(f"{src.get('instrument', 'an instrument')} re-rendered by {voc.get('instrument', 'a vocoder')}")
    if family == "midi2mel":
        voc = meta.get("config", {}).get("vocoder")
        through = (f"the vocoder {card.get('vocoder', voc['family'])}" if voc
                   else "no vocoder yet (livewave chain adds one)")
        rows.append(f"played from MIDI, through {through}")
    if card.get("imported"):
        rows.append(f"imported: {card['imported'].get('source', '?')}")
    if tr:
        rows.append(f"trained {tr.get('steps', '?')} steps on {tr.get('device', '?')}")
    if q and "log_mel_l1" in q:
        rows.append(f"held-out log-mel L1 {q['log_mel_l1']['sounding']} (the mean frame: "
                    f"{q['floors']['mean_frame']['sounding']})")
        if q.get("playing"):
            rows.append(f"played from MIDI: {q['playing']['closer_than_default_pct']}% closer to the soundfont "
                        "than the default instrument")
    elif q and "mrstft_model" in q:
        rows.append(f"copy synthesis: STFT distance {q['mrstft_model']} (Griffin-Lim {q['mrstft_griffin_lim']}), "
                    f"log-mel L1 {q['logmel_l1_model']} (Griffin-Lim {q['logmel_l1_griffin_lim']})")
    elif q:
        rows.append(f"{q.get('closer_than_default_pct', '?')}% closer than the default; pitch p95 "
                    f"{q.get('pitch_p95_abs_cents', '?')} cents")
    if device:
        rows.append(f"playing on {device}")
    return "<br>".join(rows)


class ModelBrowser(QWidget):
    """The models, numbered as MIDI program changes select them: the built-in instrument is
    program 1 (0 on the wire), then each model in the list's order."""
    load_requested = pyqtSignal(str)
    programs_changed = pyqtSignal(list)      # the paths, in program order

    def __init__(self, folders: list[Path], parent=None):
        super().__init__(parent)
        self.folders = [Path(f) for f in folders]
        self.list = QListWidget()
        self.card = QLabel()
        self.card.setWordWrap(True)
        self.card.setTextFormat(Qt.TextFormat.RichText)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        # NB: a long card scrolls in its own area (it squeezed the list to three rows and pushed
        # the window wider than a 1180-pixel screen: flow-fluidr3's card, stop 32)
        self.card.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.card_area = QScrollArea()
        self.card_area.setWidget(self.card)
        self.card_area.setWidgetResizable(True)
        self.card_area.setFrameShape(QFrame.Shape.NoFrame)
        self.card_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setMinimumHeight(5 * self.list.fontMetrics().lineSpacing())
        lay.addWidget(QLabel("Models"))
        lay.addWidget(self.list, 3)
        lay.addWidget(self.card_area, 2)
        self.list.currentItemChanged.connect(self.show_card)
        self.list.itemActivated.connect(self._activated)
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        item = QListWidgetItem("1  Built-in instrument")
        item.setData(Qt.ItemDataRole.UserRole, BUILTIN)
        item.setToolTip("MIDI program 1 selects it")
        self.list.addItem(item)
        seen = set()
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for p in sorted(folder.iterdir()):
                if p.suffix in SUFFIXES and p.resolve() not in seen:
                    seen.add(p.resolve())
                    self.add_path(p, announce=False)
        self.programs_changed.emit(self.programs())

    def programs(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(min(128, self.list.count()))]

    def add_path(self, path: Path, announce: bool = True) -> QListWidgetItem:
        found = self.item_for(str(path))
        if found is not None:
            return found
        n = self.list.count() + 1
        it = QListWidgetItem(f"{n}  {path.stem}  ({path.resolve().parent.name})")
        it.setData(Qt.ItemDataRole.UserRole, str(path))
        if n <= 128:
            it.setToolTip(f"MIDI program {n} selects it")
        self.list.addItem(it)
        if announce:
            self.programs_changed.emit(self.programs())
        return it

    def item_for(self, path: str) -> QListWidgetItem | None:
        """The entry of ``path`` (the same file under another spelling counts)."""
        def same(a: str, b: str) -> bool:
            if a == b:
                return True
            if BUILTIN in (a, b):
                return False
            try:
                return Path(a).resolve() == Path(b).resolve()
            except OSError:
                return False
        for i in range(self.list.count()):
            if same(self.list.item(i).data(Qt.ItemDataRole.UserRole), path):
                return self.list.item(i)
        return None

    def show_card(self, item, _prev=None) -> None:
        if item is None:
            return
        path = item.data(Qt.ItemDataRole.UserRole)
        if path == BUILTIN:
            self.card.setText(card_text(None, None))
            return
        try:
            meta = read_checkpoint(path)[0]
        except (CheckpointError, OSError):
            meta = None
        self.card.setText(card_text(Path(path), meta))

    def _activated(self, item) -> None:
        self.load_requested.emit(item.data(Qt.ItemDataRole.UserRole))
