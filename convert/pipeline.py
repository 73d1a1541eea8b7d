"""``lamina convert``: base checkpoint (+ LoRAs / diff) -> one GGUF, streamed.

The merge plan (``plan.build_plan``) validates every input and fixes every
output shape first; then the GGUF header is written and each tensor is read,
merged, renamed, q/k-permuted, encoded and appended, one at a time. At no point
is the whole model in memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamina.convert.checksums import verify_inputs
from lamina.convert.llama import permute_qk
from lamina.convert.plan import MergedTensor, MergePlan, build_plan, model_name
from lamina.convert.writer import OUTTYPES, GGUFMetadata, PlannedTensor, write_gguf
from lamina.errors import InputError
from lamina.files import atomic_output, check_output_path
from lamina.progress import TaskProgress


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
    model_name: str | None = None  # general.name; default: plan.model_name's rule
    sha256: Path | None = None  # list of expected SHA-256 sums for the input files


@dataclass
class ConvertReport:
    output: Path
    outtype: str
    n_tensors: int
    output_bytes: int
    seconds: float
    type_histogram: dict[str, int]
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def resolve_template(name: str | None) -> tuple[str | None, str | None]:
    """(name, jinja) for --template, validated by the runtime's template table."""
    if name is None:
        return None, None
    try:
        from lamina.templates import get_template
    except ModuleNotFoundError:  # runtime area not installed in this build: name only
        return name, None
    template = get_template(name)  # raises TemplateError naming the valid choices
    return template.name, getattr(template, "jinja", None) or None


def gguf_tensors(plan: MergePlan, progress: TaskProgress | None = None,
                 task: Any | None = None) -> list[PlannedTensor]:
    """Map the merge plan to GGUF names/layout; producers advance the progress bar.

    Fused tensors (Baichuan's W_pack) become their parts here, after every merge,
    so ``lamina merge`` keeps the checkpoint's own layout.
    """
    hp = plan.hparams
    out: list[PlannedTensor] = []
    for t in plan.tensors:
        parts = hp.fam.split(t.name, t.shape) or [(t.name, None, None)]
        for name, lo, hi in parts:
            gguf_name = hp.fam.gguf_tensor_name(name, hp.n_layer)
            if gguf_name is None:
                continue
            rows = None if lo is None else (lo, hi)
            shape = t.shape if rows is None else (hi - lo, *t.shape[1:])
            out.append(PlannedTensor(gguf_name, shape,
                                     source_bytes=t.source_bytes * (shape[0] if shape else 1)
                                     // max(1, t.shape[0] if t.shape else 1),
                                     chunks=_gguf_chunks(t, name, rows, hp, progress, task)))
    factors = hp.rope_freq_factors()
    if factors is not None:
        import gguf

        data = np.asarray(factors, dtype=np.float32)
        out.append(PlannedTensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
                                 data.shape, produce=lambda: data))
    return out


def _gguf_chunks(t: MergedTensor, name: str, rows: tuple[int, int] | None, hp: Any,
                 progress: TaskProgress | None, task: Any | None) -> Any:
    """Row blocks in llama.cpp layout: q/k blocks are whole heads, permuted one by one;
    a NormHead's rows are normalised (each row is whole in every block)."""
    heads = hp.fam.qk_heads(name, hp)
    align = hp.head_dim if heads is not None else 1
    total = t.shape[0] if t.shape else 1
    normalise = name == "lm_head.weight" and hp.norm_head

    def chunks() -> Iterator[np.ndarray]:
        for block in t.chunks(align, rows):
            if heads is not None:
                block = permute_qk(block, block.shape[0] // hp.head_dim)
            if normalise:
                norms = np.linalg.norm(block.astype(np.float32), axis=1, keepdims=True)
                block = block / np.maximum(norms, np.float32(1e-12))
            if progress is not None and task is not None:
                progress.advance(task, t.source_bytes * (block.shape[0] if block.ndim else 1) // total)
            yield block

    return chunks


def convert(opts: ConvertOptions, progress: TaskProgress | None = None) -> ConvertReport:
    """Run the conversion; ``progress`` (bytes) is any :class:`~lamina.progress.TaskProgress`."""
    if opts.outtype not in OUTTYPES:
        raise InputError(
            f"Unknown --outtype '{opts.outtype}'.", hint=f"Choose one of: {', '.join(OUTTYPES)}."
        )
    check_output_path(opts.output, force=opts.force)
    template_name, template_jinja = resolve_template(opts.template)
    start = time.perf_counter()

    plan = build_plan(Path(opts.base), opts.loras, opts.diff, opts.tokenizer)
    try:
        verified = verify_inputs(plan, opts.sha256) if opts.sha256 else []
        task = None
        if progress is not None:
            task = progress.add_task(f"Converting to {opts.outtype}", total=plan.total_bytes)
        tensors = gguf_tensors(plan, progress, task)
        provenance = {**plan.provenance(), "outtype": opts.outtype, "template": template_name}
        if verified:
            provenance["sha256_verified"] = verified
        if plan.diff is not None and plan.diff.checksums:
            provenance["diff_tensor_checksums"] = True
        gmeta = GGUFMetadata(
            model_name=model_name(plan, opts.model_name),
            hparams=plan.hparams,
            vocab=plan.vocab,
            template_name=template_name,
            # No --template: the checkpoint's own Jinja template, if it ships one.
            template_jinja=template_jinja if template_name else plan.vocab.chat_template,
            provenance=provenance,
        )
        with atomic_output(opts.output, force=opts.force) as tmp:
            histogram = write_gguf(tmp, gmeta, tensors, outtype=opts.outtype)
    finally:
        plan.close()
    return ConvertReport(
        output=Path(opts.output),
        outtype=opts.outtype,
        n_tensors=len(tensors),
        output_bytes=Path(opts.output).stat().st_size,
        seconds=time.perf_counter() - start,
        type_histogram=histogram,
        provenance=provenance,
        notes=plan.notes,
    )

