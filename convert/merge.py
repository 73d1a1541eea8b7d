"""``lamina merge``: the same merge as ``convert``, written back as an HF or Meta folder.

For people who continue in transformers (fine-tuning, evaluation) rather than
llama.cpp. The HF output is streamed: safetensors headers are computed from
the merge plan, then each tensor is merged and written a row block at a time,
so memory stays near one block. The Meta ``.pth`` output is a pickle, which
torch can only write from a complete state dict; it needs RAM for the model.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamina.convert.checksums import verify_inputs
from lamina.convert.llama import LLAMA, permute_qk
from lamina.convert.plan import PROVENANCE_FILE, MergedTensor, MergePlan, build_plan, model_name
from lamina.convert.tokenizer import write_hf_tokenizer_files
from lamina.errors import InputError
from lamina.files import atomic_output_dir, check_output_path
from lamina.progress import TaskProgress

FORMATS = ("safetensors", "pth")
#: output dtype names -> (safetensors dtype tag, bytes per element)
DTYPES = {"float16": ("F16", 2), "bfloat16": ("BF16", 2), "float32": ("F32", 4)}
SHARD_BYTES = 2 * 1024**3


@dataclass
class MergeOptions:
    base: Path
    output: Path
    loras: list[Path] = field(default_factory=list)
    diff: Path | None = None
    tokenizer: Path | None = None
    format: str = "safetensors"
    dtype: str | None = None  # default: the base model's dtype
    force: bool = False
    sha256: Path | None = None
    shard_bytes: int = SHARD_BYTES
    model_name: str | None = None  # recorded in lamina_provenance.json; see plan.model_name


@dataclass
class MergeReport:
    output: Path
    format: str
    dtype: str
    n_tensors: int
    output_bytes: int
    seconds: float
    files: list[str]
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def encode(data: np.ndarray, dtype: str) -> np.ndarray:
    """float32 -> the output dtype's little-endian bytes (bf16 rounds to nearest even)."""
    if dtype == "float32":
        return np.ascontiguousarray(data, dtype="<f4")
    if dtype == "float16":
        return np.ascontiguousarray(data, dtype="<f2")
    bits = np.ascontiguousarray(data, dtype="<f4").view("<u4")
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return rounded.astype("<u2")


def _base_dtype(plan: MergePlan) -> str:
    for t in plan.tensors:
        if len(t.shape) == 2:
            d = plan.base.dtype(t.name)
            return d if d in DTYPES else "float16"
    return "float16"


def merge(opts: MergeOptions, progress: TaskProgress | None = None) -> MergeReport:
    """Merge LoRAs/diff into the base and write an HF (or Meta .pth) folder."""
    if opts.format not in FORMATS:
        raise InputError(f"Unknown --format '{opts.format}'.",
                         hint=f"Choose one of: {', '.join(FORMATS)}.")
    if opts.dtype is not None and opts.dtype not in DTYPES:
        raise InputError(f"Unknown --dtype '{opts.dtype}'.",
                         hint=f"Choose one of: {', '.join(DTYPES)}.")
    check_output_path(opts.output, force=opts.force, is_dir=True)
    start = time.perf_counter()
    plan = build_plan(Path(opts.base), opts.loras, opts.diff, opts.tokenizer)
    try:
        if opts.format == "pth" and plan.hparams.fam is not LLAMA:
            raise InputError(f"--format pth writes Meta's LLaMA layout; this is a "
                             f"{plan.hparams.fam.name} model.",
                             hint="Use --format safetensors (a Hugging Face folder).")
        verified = verify_inputs(plan, opts.sha256) if opts.sha256 else []
        dtype = opts.dtype or _base_dtype(plan)
        task = None
        if progress is not None:
            task = progress.add_task(f"Merging to {opts.format}", total=plan.total_bytes)
        provenance = {"name": model_name(plan, opts.model_name), **plan.provenance(),
                      "format": opts.format, "dtype": dtype}
        if verified:
            provenance["sha256_verified"] = verified
        with atomic_output_dir(opts.output, force=opts.force) as tmp:
            if opts.format == "safetensors":
                files = _write_hf(tmp, plan, dtype, opts.shard_bytes, progress, task)
            else:
                files = _write_meta(tmp, plan, dtype, progress, task)
            _write_tokenizer(tmp, plan)
            (tmp / PROVENANCE_FILE).write_text(
                json.dumps(provenance, indent=2, ensure_ascii=False), encoding="utf-8")
    finally:
        plan.close()
    out = Path(opts.output)
    return MergeReport(output=out, format=opts.format, dtype=dtype, n_tensors=len(plan.tensors),
                       output_bytes=sum(f.stat().st_size for f in out.iterdir() if f.is_file()),
                       seconds=time.perf_counter() - start, files=files,
                       provenance=provenance, notes=plan.notes)


def _advance(progress: TaskProgress | None, task: Any | None, t: MergedTensor, rows: int) -> None:
    if progress is not None and task is not None:
        total_rows = t.shape[0] if t.shape else 1
        progress.advance(task, t.source_bytes * rows // max(1, total_rows))


def _write_hf(folder: Path, plan: MergePlan, dtype: str, shard_bytes: int,
              progress: TaskProgress | None, task: Any | None) -> list[str]:
    tag, width = DTYPES[dtype]
    shards: list[list[MergedTensor]] = [[]]
    size = 0
    for t in plan.tensors:
        nbytes = int(np.prod(t.shape)) * width
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += nbytes
    names: list[str] = []
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards, 1):
        fname = ("model.safetensors" if len(shards) == 1
                 else f"model-{i:05d}-of-{len(shards):05d}.safetensors")
        total += _write_safetensors(folder / fname, shard, dtype, tag, width, progress, task)
        names.append(fname)
        weight_map.update({t.name: fname for t in shard})
    if len(shards) > 1:
        (folder / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
        names.append("model.safetensors.index.json")
    config = dict(plan.base.config)
    config["vocab_size"] = plan.hparams.n_vocab
    config["torch_dtype"] = dtype
    config.pop("dtype", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    gen = plan.base.folder / "generation_config.json"
    if gen.is_file():
        shutil.copyfile(gen, folder / "generation_config.json")
    # Remote-code models (Baichuan) name their modelling/tokenizer code in config.json's
    # auto_map: the merged folder needs the same files to load.
    code = [f for f in sorted(plan.base.folder.glob("*.py")) if f.is_file()]
    for f in code:
        shutil.copyfile(f, folder / f.name)
    return [*names, "config.json", *(f.name for f in code)]


def _write_safetensors(path: Path, tensors: list[MergedTensor], dtype: str, tag: str, width: int,
                       progress: TaskProgress | None, task: Any | None) -> int:
    """Stream one safetensors file: header from the plan's shapes, then row blocks."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for t in tensors:
        n = int(np.prod(t.shape)) * width
        header[t.name] = {"dtype": tag, "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for t in tensors:
            for block in t.chunks(1):
                encode(block, dtype).tofile(fh)
                _advance(progress, task, t, block.shape[0] if block.ndim else 1)
    return offset


def _write_meta(folder: Path, plan: MergePlan, dtype: str, progress: TaskProgress | None,
                task: Any | None) -> list[str]:
    import torch

    from lamina.convert.meta import hf_to_meta_name

    torch_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                   "float32": torch.float32}[dtype]
    hp = plan.hparams
    state: dict[str, Any] = {}
    for t in plan.tensors:
        data = t.produce()
        heads = hp.fam.qk_heads(t.name, hp)
        if heads is not None:
            data = permute_qk(data, heads)  # Meta's layout is llama.cpp's interleaved one
        state[hf_to_meta_name(t.name)[0]] = torch.from_numpy(np.ascontiguousarray(data)).to(torch_dtype)
        _advance(progress, task, t, t.shape[0] if t.shape else 1)
    torch.save(state, folder / "consolidated.00.pth")
    params = {"dim": hp.n_embd, "n_layers": hp.n_layer, "n_heads": hp.n_head,
              "n_kv_heads": hp.n_head_kv, "norm_eps": hp.rms_norm_eps, "vocab_size": hp.n_vocab,
              "rope_theta": hp.rope_theta, "max_seq_len": hp.n_ctx, "multiple_of": 256}
    (folder / "params.json").write_text(json.dumps(params, indent=2))
    return ["consolidated.00.pth", "params.json"]


#: Tokenizer files of a Hugging Face folder that travel with a BPE tokenizer.json.
BPE_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                       "chat_template.jinja", "vocab.json", "merges.txt", "added_tokens.json")


def _write_tokenizer(folder: Path, plan: MergePlan) -> None:
    src = plan.tokenizer_model.parent
    if plan.vocab.kind == "bpe":
        for name in BPE_TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, folder / name)
        return
    extras = ("tokenizer_config.json", "special_tokens_map.json")
    if all((src / n).is_file() for n in extras):
        shutil.copyfile(plan.tokenizer_model, folder / "tokenizer.model")
        for name in extras:
            shutil.copyfile(src / name, folder / name)
    else:
        write_hf_tokenizer_files(folder, plan.tokenizer_model)
