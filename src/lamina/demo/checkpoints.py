"""Tiny random LLaMA-family checkpoints, built locally, shaped like the real ones.

Tests, ``lamina demo`` and the benchmarks need the same artefacts users have:
a LLaMA base in HF format (sharded safetensors or .bin) with a SentencePiece
tokenizer, a "Plus"-like PEFT LoRA that extends the vocabulary and carries full
``embed_tokens``/``lm_head`` in ``modules_to_save``, an "Alpaca"-like LoRA on
top of it, a weight diff (KnowLM style) and Meta's original .pth layout. No
model hub is reachable, so everything here is generated from a seed.

Needs the ``convert`` extra (torch, transformers, peft, sentencepiece).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lamina.demo.corpus import BASE_TEXT, EXTRA_PIECES


@dataclass
class TinyLlamaSpec:
    """Shape of a synthetic LLaMA. Defaults: GQA (4 heads, 2 kv heads), hidden 64."""

    hidden_size: int = 64
    intermediate_size: int = 160
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    vocab_size: int = 1024  # of the base SentencePiece model (a soft limit)
    initializer_range: float = 0.08
    seed: int = 0
    tie_word_embeddings: bool = False


@dataclass
class SyntheticFamily:
    """Paths of one generated family of checkpoints (all inside ``root``)."""

    root: Path
    spec: TinyLlamaSpec
    base_tokenizer: Path  # tokenizer.model (base vocab)
    extended_tokenizer: Path  # tokenizer.model with EXTRA_PIECES appended
    base_hf: Path  # HF folder, sharded safetensors + index
    lora_plus: Path  # PEFT adapter (.bin), extended vocab, modules_to_save
    lora_plus_safetensors: Path  # same adapter saved as .safetensors
    lora_alpaca: Path  # PEFT adapter on top of base+plus (.safetensors)
    extra: dict[str, Path] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        data = {k: str(v) for k, v in asdict(self).items() if isinstance(v, (str, Path))}
        data["spec"] = asdict(self.spec)
        data["extra"] = {k: str(v) for k, v in self.extra.items()}
        return data


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(out_dir: Path, vocab_size: int = 1024) -> Path:
    """Train a LLaMA-style SentencePiece BPE model (byte fallback, digits split)."""
    import sentencepiece as spm

    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    lines = [line for line in BASE_TEXT.splitlines() if line.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 4),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
        hard_vocab_limit=False,
    )
    path = out_dir / "tokenizer.model"
    path.write_bytes(model.getvalue())
    return path


def extend_tokenizer(base_model: Path, out_dir: Path, pieces: list[str] = EXTRA_PIECES) -> Path:
    """Append whole-word Chinese pieces to a SentencePiece model, keeping old ids.

    This mirrors how Chinese-LLaMA extended LLaMA's vocabulary: the original
    pieces keep their ids, new ones are appended as NORMAL pieces.
    """
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    proto = sp_pb2.ModelProto()
    proto.ParseFromString(base_model.read_bytes())
    existing = {p.piece for p in proto.pieces}
    min_score = min(p.score for p in proto.pieces)
    for i, word in enumerate(pieces):
        if word in existing:
            continue
        new = proto.pieces.add()
        new.piece = word
        new.score = min_score - 1.0 - i
        new.type = sp_pb2.ModelProto.SentencePiece.NORMAL
        existing.add(word)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tokenizer.model"
    path.write_bytes(proto.SerializeToString())
    return path


def write_hf_tokenizer_files(folder: Path, tokenizer_model: Path) -> None:
    """Copy tokenizer.model and write the small JSON files HF LLaMA folders carry."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer_model.resolve() != (folder / "tokenizer.model").resolve():
        shutil.copyfile(tokenizer_model, folder / "tokenizer.model")
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2)
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "add_bos_token": True,
                "add_eos_token": False,
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "model_max_length": 1024,
            },
            indent=2,
        )
    )


def sp_vocab_size(tokenizer_model: Path) -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(tokenizer_model)).vocab_size()


# ------------------------------------------------------------------- models


def _llama_config(spec: TinyLlamaSpec, vocab_size: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        rms_norm_eps=spec.rms_norm_eps,
        rope_theta=spec.rope_theta,
        initializer_range=spec.initializer_range,
        tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        torch_dtype="float32",
    )


def random_llama(spec: TinyLlamaSpec, vocab_size: int, seed: int | None = None) -> Any:
    """A randomly initialised LlamaForCausalLM in float32 (eval mode)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(spec.seed if seed is None else seed)
    model = LlamaForCausalLM(_llama_config(spec, vocab_size))
    with torch.no_grad():
        # Non-trivial norms so that layers do not all look alike.
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
    return model.float().eval()


def save_hf(model: Any, folder: Path, tokenizer_model: Path, shard_size: str | None = "200KB",
            safe: bool = True) -> Path:
    """Save an HF folder the way users download them (sharded, with tokenizer)."""
    folder.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"safe_serialization": safe}
    if shard_size:
        kwargs["max_shard_size"] = shard_size
    model.save_pretrained(str(folder), **kwargs)
    write_hf_tokenizer_files(folder, tokenizer_model)
    return folder


def _randomize_lora(peft_model: Any, seed: int, scale: float = 0.05) -> None:
    """PEFT initialises lora_B to zero; make both factors random so merges matter."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
            elif "modules_to_save" in name:
                param.add_(torch.randn(param.shape, generator=gen) * 0.02)


def make_lora(base_model: Any, out_dir: Path, *, r: int, alpha: int, targets: list[str],
              modules_to_save: list[str] | None, seed: int, tokenizer_model: Path | None,
              safe: bool) -> Path:
    """Create a PEFT LoRA adapter on ``base_model`` with peft itself, and save it."""
    import copy

    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=targets,
        modules_to_save=modules_to_save,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(copy.deepcopy(base_model), cfg)
    _randomize_lora(peft_model, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out_dir), safe_serialization=safe)
    if tokenizer_model is not None:
        write_hf_tokenizer_files(out_dir, tokenizer_model)
    return out_dir


def merged_with(base_model: Any, lora_dir: Path) -> Any:
    """Reference merge with peft's own ``merge_and_unload`` (used as ground truth)."""
    import copy

    from peft import PeftModel

    model = PeftModel.from_pretrained(copy.deepcopy(base_model), str(lora_dir))
    return model.merge_and_unload().eval()


def build_family(root: Path, spec: TinyLlamaSpec | None = None) -> SyntheticFamily:
    """Generate the whole family (base, Plus LoRA, Alpaca LoRA) under ``root``."""
    spec = spec or TinyLlamaSpec()
    root.mkdir(parents=True, exist_ok=True)
    base_tok = train_tokenizer(root / "tok_base", spec.vocab_size)
    ext_tok = extend_tokenizer(base_tok, root / "tok_extended")
    base_vocab = sp_vocab_size(base_tok)
    ext_vocab = sp_vocab_size(ext_tok)

    base = random_llama(spec, base_vocab)
    base_hf = save_hf(base, root / "base_hf", base_tok)

    # "Plus": vocabulary grows, full embeddings/lm_head travel in modules_to_save.
    resized = resized_vocab(base, ext_vocab, seed=spec.seed + 11)
    all_linear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    lora_plus = make_lora(resized, root / "lora_plus", r=8, alpha=32, targets=all_linear,
                          modules_to_save=["embed_tokens", "lm_head"], seed=spec.seed + 1,
                          tokenizer_model=ext_tok, safe=False)
    lora_plus_st = make_lora(resized, root / "lora_plus_st", r=8, alpha=32, targets=all_linear,
                             modules_to_save=["embed_tokens", "lm_head"], seed=spec.seed + 1,
                             tokenizer_model=ext_tok, safe=True)

    # "Alpaca" on top of base+plus, attention-only targets, different rank/alpha.
    base_plus = merged_with(resized, lora_plus)
    lora_alpaca = make_lora(base_plus, root / "lora_alpaca", r=4, alpha=8,
                            targets=["q_proj", "k_proj", "v_proj", "o_proj"],
                            modules_to_save=["embed_tokens", "lm_head"], seed=spec.seed + 2,
                            tokenizer_model=ext_tok, safe=True)
    # KnowLM-style weight diff (with per-tensor checksums) and Meta's original layout.
    tuned = perturbed(base, seed=spec.seed + 21)
    tuned_hf = save_hf(tuned, root / "tuned_hf", base_tok)
    diff = make_diff(base, tuned, root / "diff", base_tok)
    meta = save_meta(base, root / "meta" / "7B", base_tok, n_shards=2)
    family = SyntheticFamily(root=root, spec=spec, base_tokenizer=base_tok,
                             extended_tokenizer=ext_tok, base_hf=base_hf, lora_plus=lora_plus,
                             lora_plus_safetensors=lora_plus_st, lora_alpaca=lora_alpaca,
                             extra={"tuned_hf": tuned_hf, "diff": diff, "meta": meta})
    (root / "family.json").write_text(json.dumps(family.manifest(), indent=2, ensure_ascii=False))
    return family


def perturbed(model: Any, seed: int, scale: float = 0.02) -> Any:
    """A "fine-tuned" copy of ``model``: every weight nudged by seeded noise."""
    import copy

    import torch

    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in out.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale)
    return out.eval()


def make_diff(base_model: Any, tuned_model: Any, out_dir: Path,
              tokenizer_model: Path | None = None) -> Path:
    """Write ``tuned - base`` as an HF folder (KnowLM/CaMA diff format).

    Also writes ``tensor_sha256.json`` with the checksum of every recovered
    tensor (base + diff in float32, as ``lamina convert --diff`` computes it).
    """
    import numpy as np
    from safetensors.torch import save_file

    from lamina.convert.diff import TENSOR_CHECKSUMS
    from lamina.convert.plan import tensor_sha256

    base_sd = base_model.state_dict()
    diff_sd = {k: (v.float() - base_sd[k].float()).contiguous()
               for k, v in tuned_model.state_dict().items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    tuned_model.config.save_pretrained(str(out_dir))
    save_file(diff_sd, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    sums = {k: tensor_sha256(np.add(base_sd[k].float().numpy(), d.numpy(), dtype=np.float32))
            for k, d in diff_sd.items()}
    (out_dir / TENSOR_CHECKSUMS).write_text(json.dumps(sums, indent=1))
    if tokenizer_model is not None:
        write_hf_tokenizer_files(out_dir, tokenizer_model)
    return out_dir


def save_meta(model: Any, folder: Path, tokenizer_model: Path, n_shards: int = 2) -> Path:
    """Save ``model`` in Meta's original layout: consolidated.0N.pth shards + params.json.

    Each weight is split across shards along its model-parallel axis, q/k rows
    are in Meta's (llama.cpp's) rotary layout, and tokenizer.model sits in the
    parent folder, as in Meta's download.
    """
    import shutil

    import torch

    from lamina.convert.llama import permute_qk
    from lamina.convert.meta import hf_to_meta_name

    cfg = model.config
    n_kv = cfg.num_key_value_heads
    shards: list[dict[str, Any]] = [{} for _ in range(n_shards)]
    for name, tensor in model.state_dict().items():
        if name.endswith("rotary_emb.inv_freq"):
            continue
        data = tensor.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            data = permute_qk(data, cfg.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            data = permute_qk(data, n_kv)
        meta_name, axis = hf_to_meta_name(name)
        t = torch.from_numpy(data.copy())
        parts = [t] * n_shards if axis is None else list(torch.chunk(t, n_shards, dim=axis))
        for shard, part in zip(shards, parts, strict=True):
            shard[meta_name] = part.clone()
    folder.mkdir(parents=True, exist_ok=True)
    for i, shard in enumerate(shards):
        torch.save(shard, folder / f"consolidated.{i:02d}.pth")
    params = {"dim": cfg.hidden_size, "n_layers": cfg.num_hidden_layers,
              "n_heads": cfg.num_attention_heads, "n_kv_heads": n_kv,
              "norm_eps": cfg.rms_norm_eps, "vocab_size": -1, "multiple_of": 32,
              "rope_theta": float((getattr(cfg, "rope_parameters", None) or {}).get(
                  "rope_theta", getattr(cfg, "rope_theta", 10000.0))),
              "max_seq_len": cfg.max_position_embeddings}
    (folder / "params.json").write_text(json.dumps(params))
    shutil.copyfile(tokenizer_model, folder.parent / "tokenizer.model")
    return folder


def resized_vocab(model: Any, new_vocab: int, seed: int) -> Any:
    """Copy of ``model`` with embeddings/lm_head grown to ``new_vocab`` (random new rows)."""
    import copy

    import torch

    out = copy.deepcopy(model)
    old = out.get_input_embeddings().weight.shape[0]
    out.resize_token_embeddings(new_vocab, mean_resizing=False)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        emb = out.get_input_embeddings().weight
        emb[old:] = torch.randn(emb[old:].shape, generator=gen) * 0.08
        head = out.get_output_embeddings().weight
        if head.data_ptr() != emb.data_ptr():
            head[old:] = torch.randn(head[old:].shape, generator=gen) * 0.08
    return out.eval()


def load_hf(folder: Path) -> Any:
    """Load an HF folder as float32 LlamaForCausalLM (reference side of parity tests)."""
    import torch
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()


def cache_key() -> str:
    """Changes whenever this module or the corpus changes, so caches rebuild."""
    import hashlib

    from lamina.convert import meta

    h = hashlib.sha256()
    here = Path(__file__).parent
    for path in (here / "checkpoints.py", here / "corpus.py", Path(meta.__file__)):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    fam = build_family(Path(sys.argv[1] if len(sys.argv) > 1 else "synthetic"))
    print(json.dumps(fam.manifest(), indent=2, ensure_ascii=False))
    os._exit(0)
