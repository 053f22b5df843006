"""A generator played from MIDI, re-rendered by a vocoder: the ``chain`` family.

The source (the default instrument, a DDSP instrument: anything with ``voices`` conditioning)
renders each call's block as usual; that block is the vocoder's audio input (its streamed mel
analysis, model and resampling: ``vocoder_instrument``), and the vocoder's output is what the
engine gets. So any MIDI-played instrument becomes playable through any vocoder, in the app
too, with no audio input open: DDSP to vocoder.

Controls: the source's, then the vocoder's (a vocoder control whose name the source already
uses is prefixed ``vocoder_``). Envelope and polyphony are the source's; the declared lookahead
is the source's plus the vocoder's.

Checkpoint: one file holding both models: config ``{"source": {family, config, card},
"vocoder": {family, config, card}, "name"}``; tensors prefixed ``source/`` and ``vocoder/``.
``make_chain`` writes one from two checkpoints (the source may be ``builtin:default``).
Threading: ``render`` on the render side only.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .generator import Conditioning, Generator, GeneratorInfo


class VocoderChain(Generator):
    def __init__(self, source: Generator, vocoder: Generator, name: str = "", card: dict | None = None):
        if source.info.conditioning != "voices":
            raise ValueError(f"the chain's source must be played from MIDI; {source.info.name} is driven by "
                             f"{source.info.conditioning}")
        if vocoder.info.conditioning != "audio":
            raise ValueError(f"the chain's vocoder must take audio; {vocoder.info.name} takes "
                             f"{vocoder.info.conditioning}")
        self.source, self.vocoder = source, vocoder
        taken = {c.name for c in source.info.controls}
        voc_controls = tuple(replace(c, name=f"vocoder_{c.name}") if c.name in taken else c
                             for c in vocoder.info.controls)
        self.n_source = len(source.info.controls)
        self.info = GeneratorInfo(
            family="chain", name=name or f"{source.info.name} through {vocoder.info.name}", sample_rate=None,
            hop=source.info.hop, polyphonic=source.info.polyphonic, conditioning="voices",
            controls=tuple(source.info.controls) + voc_controls, envelope=source.info.envelope,
            card={"source": source.info.card, "vocoder": vocoder.info.card, **(card or {})})
        self.device = getattr(vocoder, "device", "cpu")

    @classmethod
    def from_checkpoint(cls, config: dict, card: dict, tensors: dict) -> VocoderChain:
        from .generator import family_class
        parts = {}
        for role in ("source", "vocoder"):
            spec = config.get(role)
            if not isinstance(spec, dict) or "family" not in spec:
                raise ValueError(f"the chain has no {role} model")
            if spec["family"] == "chain":
                raise ValueError("a chain cannot hold another chain")
            sub = {k[len(role) + 1:]: v for k, v in tensors.items() if k.startswith(role + "/")}
            parts[role] = family_class(spec["family"]).from_checkpoint(spec.get("config") or {}, spec.get("card") or {},
                                                                       sub)
        return cls(parts["source"], parts["vocoder"], str(config.get("name", ""))[:200], card)

    # -- set-up --------------------------------------------------------------------------------------
    def prepare(self, sample_rate: int, max_block: int, voices: int, device: str = "cpu") -> None:
        self.source.prepare(sample_rate, max_block, voices, device)
        self.vocoder.prepare(sample_rate, max_block, 1, device)
        n_voc = len(self.vocoder.info.controls)
        self.vcond = Conditioning(1, max_block, n_voc, 1)
        self.vcond.controls[:] = self.vocoder.default_controls()
        self.device = getattr(self.vocoder, "device", device)
        self.info = replace(self.info, lookahead=int(self.source.info.lookahead) + int(self.vocoder.info.lookahead))

    def reset(self) -> None:
        self.source.reset()
        self.vocoder.reset()

    # -- render side ------------------------------------------------------------------------------
    def render(self, cond: Conditioning, out: np.ndarray) -> None:
        n = cond.frames
        self.source.render(cond, out)
        vc = self.vcond
        vc.frames, vc.sample_time, vc.audio_in_offset = n, cond.sample_time, 0
        vc.audio_in[:n, 0] = out[:n]
        vc.controls[:] = cond.controls[self.n_source:]
        self.vocoder.render(vc, out)


def make_chain(source_path, vocoder_path, out, name: str | None = None):
    """Write one ``chain`` checkpoint from a source checkpoint (or ``builtin:default``) and a
    vocoder checkpoint; both are loaded (validated) first, then the result is loaded back."""
    from pathlib import Path

    from .checkpoint import BUILTIN, CheckpointError, load_generator, read_checkpoint, save_checkpoint
    if str(source_path) != BUILTIN and read_checkpoint(source_path)[0]["family"] == "midi2mel":
        return _midi2mel_with(source_path, vocoder_path, out, name)
    source, vocoder = load_generator(source_path), load_generator(vocoder_path)
    try:
        chain = VocoderChain(source, vocoder, name or Path(out).stem)
    except ValueError as exc:
        raise CheckpointError(f"{source_path} + {vocoder_path}: {exc}") from None
    config = {"name": chain.info.name}
    tensors = {}
    for role, path in (("source", source_path), ("vocoder", vocoder_path)):
        if str(path) == BUILTIN:
            config[role] = {"family": "default", "config": {}, "card": {}}
            continue
        meta, t = read_checkpoint(path)
        config[role] = {"family": meta["family"], "config": meta["config"], "card": meta["card"]}
        tensors.update({f"{role}/{k}": v for k, v in t.items() if k != "_empty"})
    card = {"instrument": chain.info.name, "made_from": [str(source_path), str(vocoder_path)]}
    save_checkpoint(out, "chain", config, card, tensors)
    load_generator(out)
    return out


def _midi2mel_with(model_path, vocoder_path, out, name: str | None):
    """A MIDI-to-mel checkpoint with ``vocoder_path`` as its vocoder (replacing any it had)."""
    from .checkpoint import CheckpointError, load_generator, read_checkpoint, save_checkpoint
    meta, tensors = read_checkpoint(model_path)
    vmeta, vtensors = read_checkpoint(vocoder_path)
    load_generator(vocoder_path)
    config = {**meta["config"], "vocoder": {"family": vmeta["family"], "config": vmeta["config"],
                                            "card": vmeta["card"]}}
    if name:
        config["name"] = name
    tensors = {k: v for k, v in tensors.items() if not k.startswith("vocoder/") and k != "_empty"}
    tensors.update({f"vocoder/{k}": v for k, v in vtensors.items() if k != "_empty"})
    card = {**meta["card"], "vocoder": vmeta["card"].get("instrument") or vmeta["family"]}
    from pathlib import Path
    tmp = Path(out).with_name(Path(out).name + ".check.safetensors")
    save_checkpoint(tmp, "midi2mel", config, card, tensors)
    try:
        load_generator(tmp)
    except CheckpointError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"{model_path} + {vocoder_path}: {exc}") from None
    tmp.replace(out)
    return out
