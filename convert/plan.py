"""The merge plan: which patches touch which base tensor, with every shape known up front.

``lamina convert`` (GGUF) and ``lamina merge`` (HF/Meta folder) share this:
the plan is built and validated before a byte is written (so a LoRA made for
another base fails in a second, not after an hour), then each tensor is
produced on demand, one at a time, in HF names and HF layout:

    base tensor -> (pad rows) -> + diff -> LoRA 1 (replace or += delta) -> LoRA 2 ...

Embedding/lm_head rows grow to the largest tokenizer seen (new rows start as
the mean row, as transformers' resize does, and are normally replaced by the
LoRA's ``modules_to_save``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamina.convert.diff import WeightDiff
from lamina.convert.lora import LoraAdapter
from lamina.convert.sources import open_checkpoint
from lamina.convert.tokenizer import (
    TOKENIZER_FILES,
    GGUFVocab,
    find_tokenizer,
    load_vocab,
    vocab_size,
)
from lamina.errors import ChecksumError, InputError, ShapeMismatchError

VOCAB_TENSORS = ("model.embed_tokens.weight", "lm_head.weight")

#: What ``lamina merge`` writes next to the weights: the inputs, and the model's name.
PROVENANCE_FILE = "lamina_provenance.json"


#: Target size of one streamed row chunk, in float32 elements (32 MiB).
CHUNK_ELEMENTS = 8 * 1024 * 1024


@dataclass
class MergedTensor:
    """One output tensor (HF name, HF layout) and how to produce it as float32.

    ``chunks(align)`` yields consecutive row blocks (float32, or float16 for
    tensors copied unchanged from an f16 checkpoint; each a multiple of
    ``align`` rows, about CHUNK_ELEMENTS each) so that even a 500 MB embedding
    is merged and written a few MB at a time; ``chunks(align, (lo, hi))`` yields
    only rows lo..hi (one part of a fused tensor); ``produce()`` returns it whole.
    """

    name: str
    shape: tuple[int, ...]
    source_bytes: int
    chunks: Callable[..., Iterator[np.ndarray]]

    def produce(self) -> np.ndarray:
        parts = list(self.chunks(1))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


@dataclass
class MergePlan:
    base: Any  # HFCheckpoint | MetaCheckpoint
    loras: list[LoraAdapter]
    diff: WeightDiff | None
    vocab: GGUFVocab
    tokenizer_model: Path
    tensors: list[MergedTensor]
    notes: list[str] = field(default_factory=list)

    @property
    def hparams(self) -> Any:
        return self.base.hparams

    @property
    def total_bytes(self) -> int:
        return sum(t.source_bytes for t in self.tensors)

    def provenance(self) -> dict[str, Any]:
        return {
            "base": str(self.base.folder), "base_format": self.base.kind,
            "loras": [str(lo.folder) for lo in self.loras],
            "diff": str(self.diff.folder) if self.diff else None,
            "tokenizer": str(self.tokenizer_model),
        }

    def close(self) -> None:
        self.base.close()
        for lo in self.loras:
            lo.close()
        if self.diff:
            self.diff.close()


def model_name(plan: MergePlan, explicit: str | None = None) -> str:
    """The model's name (GGUF ``general.name``, ``lamina merge``'s provenance): the one rule.

    ``lamina convert``, ``build`` and ``merge`` all take it from here, so the
    same inputs carry the same name whichever command wrote them (``build``
    once named a file after its base alone). An explicit name (``--name``)
    wins. Otherwise it is the base's name and the patches' folder names, joined
    by '+': ``llama-7b+chinese-llama-plus-lora-7b+chinese-alpaca-plus-lora-7b``
    (the diff, if any, last). A base written by ``lamina merge`` is named by
    the name recorded there, so merging first and converting later names the
    model as converting at once does.
    """
    if explicit is not None:
        name = explicit.strip()
        if not name:
            raise InputError("The model name given with --name is empty.",
                             hint="Give a name, or leave --name out to name the model after "
                                  "its inputs (base+lora+...).")
        return name
    parts = [_recorded_name(plan.base.folder) or _folder_name(plan.base.folder)]
    parts += [_folder_name(lo.folder) for lo in plan.loras]
    if plan.diff is not None:
        parts.append(_folder_name(plan.diff.folder))
    return "+".join(parts)


def _folder_name(folder: Path) -> str:
    """A folder's own name, also when it was given as '.' or '..'."""
    return Path(folder).name or Path(folder).resolve().name


def _recorded_name(folder: Path) -> str | None:
    """The name ``lamina merge`` recorded in ``folder``, if it wrote this folder.

    Provenance is a courtesy, not an input: an unreadable or odd file means
    "no recorded name", never an error.
    """
    path = Path(folder) / PROVENANCE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    return name.strip()


def build_plan(base_dir: Path, loras: list[Path] | None = None, diff: Path | None = None,
               tokenizer: Path | None = None) -> MergePlan:
    """Open every input, check that they fit together, and plan each output tensor."""
    base = open_checkpoint(Path(base_dir))
    adapters = [LoraAdapter(Path(p)) for p in (loras or [])]
    wdiff = WeightDiff(Path(diff)) if diff is not None else None
    hp = base.hparams
    # Old HF conversions carry rotary inv_freq buffers: derived data, not weights.
    names = [n for n in base.names() if not n.endswith("rotary_emb.inv_freq")]
    name_set = set(names)
    for ad in adapters:
        ad.validate_targets(name_set, hp.fam.name, base.config.get("model_type"))
    if wdiff is not None:
        wdiff.validate(name_set)

    # Tokenizer: --tokenizer, else the last input that carries one.
    tok_path: Path | None = base.tokenizer_model()
    stage_vocab: list[int | None] = []
    for stage in ([wdiff] if wdiff is not None else []) + adapters:
        t = find_tokenizer(stage.folder)
        stage_vocab.append(vocab_size(t) if t else None)
        tok_path = t or tok_path
    if tokenizer is not None:
        tdir = Path(tokenizer)
        tok_path = tdir if tdir.is_file() else find_tokenizer(tdir)
        if tok_path is None:
            raise InputError(f"No tokenizer found in '{tokenizer}'.",
                             hint="--tokenizer takes the folder holding tokenizer.model or "
                                  "tokenizer.json (or the file).")
    if tok_path is None:
        raise InputError(
            f"No tokenizer ({' or '.join(TOKENIZER_FILES)}) found in '{base.folder}' or in "
            "any LoRA/diff folder.",
            hint="Pass the folder holding the model's tokenizer with --tokenizer.",
        )
    vocab = load_vocab(tok_path, config_dir=base.folder)
    notes: list[str] = []

    tensors: list[MergedTensor] = []
    final_rows: int | None = None
    for name in names:
        shape = base.shape(name)
        steps: list[tuple[str, Any]] = []
        cur = list(shape)
        is_vocab = name in VOCAB_TENSORS
        stages: list[Any] = ([wdiff] if wdiff is not None else []) + adapters
        for stage, tok_rows in zip(stages, stage_vocab, strict=True):
            if is_vocab and tok_rows and tok_rows > cur[0]:
                steps.append(("pad", tok_rows))
                cur[0] = tok_rows
            if isinstance(stage, WeightDiff):
                dshape = stage.shape(name)
                if dshape != tuple(cur):
                    raise ShapeMismatchError(
                        f"The diff's '{name}' has shape {dshape}, the base's {tuple(cur)}.",
                        hint="The diff was made against a different base model.")
                steps.append(("diff", stage))
                continue
            full = stage.full_shape(name)
            if full is not None:
                if len(full) != len(cur) or (not is_vocab and full != tuple(cur)) or \
                        full[1:] != tuple(cur[1:]):
                    raise ShapeMismatchError(
                        f"LoRA '{stage.folder}' replaces '{name}' with shape {full}, but the "
                        f"model's is {tuple(cur)}.",
                        hint="The adapter was made for a different base model.")
                steps.append(("replace", stage))
                cur = list(full)
            dshape = stage.delta_shape(name)
            if dshape is not None:
                if dshape != tuple(cur):
                    raise ShapeMismatchError(
                        f"LoRA '{stage.folder}' changes '{name}' by a {dshape} update, but the "
                        f"model's tensor is {tuple(cur)}.",
                        hint="The adapter was made for a different base model (e.g. 13B vs 7B).")
                steps.append(("delta", stage))
        if is_vocab and vocab.size > cur[0]:
            if vocab.kind == "bpe":
                # Rows for BPE tokens cannot be invented: the model never saw them.
                raise ShapeMismatchError(
                    f"The tokenizer '{vocab.source}' has {vocab.size} tokens but '{name}' has "
                    f"only {cur[0]} rows.",
                    hint="The tokenizer belongs to another model: use the one that came with "
                         "the base (or with the LoRA that grew the vocabulary).")
            steps.append(("pad", vocab.size))
            cur[0] = vocab.size
        if is_vocab:
            if final_rows is not None and cur[0] != final_rows:
                raise ShapeMismatchError(
                    f"embed_tokens and lm_head end with different vocab sizes ({final_rows} vs "
                    f"{cur[0]}).", hint="A LoRA's modules_to_save replaced only one of them.")
            final_rows = cur[0]
            if any(s[0] == "pad" for s in steps) and not any(s[0] == "replace" for s in steps):
                notes.append(f"{name}: rows grown to {cur[0]}; new rows start as the mean row.")
        nbytes = base.nbytes(name) + (wdiff.nbytes(name) if wdiff is not None else 0)
        tensors.append(MergedTensor(name, tuple(cur), nbytes, _chunker(base, name, tuple(cur), steps)))

    if final_rows is not None:
        hp.n_vocab = final_rows
    return MergePlan(base=base, loras=adapters, diff=wdiff, vocab=vocab, tokenizer_model=tok_path,
                     tensors=tensors, notes=notes)


def _chunker(base: Any, name: str, shape: tuple[int, ...],
             steps: list[tuple[str, Any]]) -> Callable[..., Iterator[np.ndarray]]:
    # A modules_to_save replacement makes everything before it irrelevant.
    replaced = [i for i, (kind, _) in enumerate(steps) if kind == "replace"]
    source = steps[replaced[-1]][1] if replaced else None
    tail = steps[replaced[-1] + 1:] if replaced else steps
    whole = (len(shape) < 2 or any(kind == "pad" for kind, _ in tail)
             or (source is None and not getattr(base, "chunked", True)))

    # Untouched tensors keep their stored float16 (one conversion less each way).
    passthrough = source is None and not tail

    def read(lo: int | None, hi: int | None) -> np.ndarray:
        if source is not None:
            return source.full_tensor(name, lo, hi)
        return base.get(name, lo, hi, native=passthrough)

    def chunks(align: int, part: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
        factors = {id(arg): arg.factors(name) for kind, arg in tail if kind == "delta"}
        # A whole-tensor checksum cannot be checked on one part of it.
        hashers = {id(arg): hashlib.sha256() for kind, arg in tail
                   if kind == "diff" and arg.expected(name) and part is None}
        first, rows = part if part is not None else (0, shape[0] if shape else 1)
        spans: list[tuple[int | None, int | None]]
        if whole and part is None:
            spans = [(None, None)]
        elif whole:  # Meta shards are read whole; a part is one slice of them
            spans = [part]
        else:
            per_row = max(1, int(np.prod(shape[1:])))
            step = max(align, CHUNK_ELEMENTS // per_row // align * align)
            spans = [(lo, min(rows, lo + step)) for lo in range(first, rows, step)]
        for lo, hi in spans:
            data = read(lo, hi)  # a private array: merged in place below
            for kind, arg in tail:
                if kind == "pad":
                    data = pad_rows(data, arg)
                elif kind == "diff":
                    data += arg.rows(name, lo, hi)
                    if id(arg) in hashers:
                        hashers[id(arg)].update(np.ascontiguousarray(data, dtype="<f4").tobytes())
                elif kind == "delta":
                    data += factors[id(arg)].delta(None if lo is None else (lo, hi))
            yield data
        for kind, arg in tail:
            if kind == "diff" and id(arg) in hashers:
                check_digest(name, hashers[id(arg)].hexdigest(), arg.expected(name),
                             f"the diff '{arg.folder.name}'")
                arg.checked += 1

    return chunks


def pad_rows(data: np.ndarray, rows: int) -> np.ndarray:
    """Grow a [vocab, n_embd] matrix to ``rows``; new rows are the mean of the old ones."""
    if data.shape[0] >= rows:
        return data
    extra = np.broadcast_to(data.mean(axis=0, keepdims=True), (rows - data.shape[0], data.shape[1]))
    return np.concatenate([data, extra], axis=0).astype(np.float32, copy=False)


def tensor_sha256(data: np.ndarray) -> str:
    """Checksum of a tensor's values: SHA-256 of its C-order little-endian float32 bytes."""
    return hashlib.sha256(np.ascontiguousarray(data, dtype="<f4").tobytes()).hexdigest()


def check_digest(name: str, got: str, expected: str, what: str) -> None:
    if got != expected:
        raise ChecksumError(
            f"Tensor '{name}' recovered with {what} does not match its checksum "
            f"(expected {expected[:12]}..., got {got[:12]}...).",
            hint="The base model or the diff is not the one the diff was made for, or a file "
            "is corrupt: check the downloads with `lamina checksum`.")
