"""``lamina convert``: base checkpoint (+ LoRAs / diff) -> one GGUF, streamed.

The pipeline is a chain of per-tensor functions: read one base tensor, apply
the patches, map its name, permute q/k, encode and append. At no point is the
whole model in memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamina.convert.llama import LlamaHParams, gguf_tensor_name, permute_qk, qk_heads
from lamina.convert.sources import CheckpointFiles, hf_weight_files
from lamina.convert.tokenizer import find_tokenizer_model, load_spm_vocab
from lamina.convert.writer import OUTTYPES, GGUFMetadata, PlannedTensor, write_gguf
from lamina.errors import InputError
from lamina.files import atomic_output, check_output_path


@dataclass
class ConvertOptions:
    base: Path
    output: Path
    loras: list[Path] = field(default_factory=list)
    diff: Path | None = None
    tokenizer: Path | None = None
    template: str | None = None
    outtype: str = "f16"
    force: bool = False
    model_name: str | None = None


@dataclass
class ConvertReport:
    output: Path
    outtype: str
    n_tensors: int
    output_bytes: int
    seconds: float
    type_histogram: dict[str, int]
    provenance: dict[str, Any]


def _to_numpy(tensor: Any) -> np.ndarray:
    import torch

    return tensor.detach().to(torch.float32).numpy()


def convert(opts: ConvertOptions, progress: Any | None = None) -> ConvertReport:
    """Run the conversion; ``progress`` is an optional Rich Progress."""
    if opts.outtype not in OUTTYPES:
        raise InputError(
            f"Unknown --outtype '{opts.outtype}'.", hint=f"Choose one of: {', '.join(OUTTYPES)}."
        )
    base = Path(opts.base)
    if not base.is_dir():
        raise InputError(f"The base model folder '{base}' does not exist.")
    check_output_path(opts.output, force=opts.force)
    start = time.perf_counter()

    hp = LlamaHParams.from_hf_config(base)
    files = CheckpointFiles(hf_weight_files(base))
    tok_dir = Path(opts.tokenizer) if opts.tokenizer else base
    tok_model = find_tokenizer_model(tok_dir)
    if tok_model is None:
        raise InputError(
            f"No tokenizer.model found in '{tok_dir}'.",
            hint="Pass the folder holding the SentencePiece tokenizer with --tokenizer.",
        )
    vocab = load_spm_vocab(tok_model)

    plan: list[PlannedTensor] = []
    for meta in files:
        gguf_name = gguf_tensor_name(meta.name, hp.n_layer)
        if gguf_name is None:
            continue

        def produce(name: str = meta.name) -> np.ndarray:
            data = _to_numpy(files.get(name))
            heads = qk_heads(name, hp)
            if heads is not None:
                data = permute_qk(data, heads)
            return data

        plan.append(PlannedTensor(gguf_name, tuple(meta.shape), produce))

    provenance = {"base": str(base), "loras": [], "diff": None, "outtype": opts.outtype}
    gmeta = GGUFMetadata(
        model_name=opts.model_name or base.name,
        hparams=hp,
        vocab=vocab,
        template_name=opts.template,
        provenance=provenance,
    )
    with atomic_output(opts.output, force=opts.force) as tmp:
        histogram = write_gguf(tmp, gmeta, plan, outtype=opts.outtype)
    files.close()
    return ConvertReport(
        output=Path(opts.output),
        outtype=opts.outtype,
        n_tensors=len(plan),
        output_bytes=Path(opts.output).stat().st_size,
        seconds=time.perf_counter() - start,
        type_histogram=histogram,
        provenance=provenance,
    )
