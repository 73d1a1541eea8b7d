"""Tiny random LLaMA checkpoints, built locally, shaped like the real ones.

``lamina demo`` needs what users download: a LLaMA base in HF format (sharded
safetensors or .bin) with a SentencePiece tokenizer, a "Plus"-like PEFT LoRA that
extends the vocabulary and carries full ``embed_tokens``/``lm_head`` in
``modules_to_save``, and an "Alpaca"-like LoRA on top of it. No model hub is
reachable, so everything here is generated from a seed. The tests build their
other layouts (weight diff, Meta .pth) from these pieces in ``tests/fixtures``.

Needs the ``convert`` extra (torch, transformers, peft, sentencepiece).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.convert.tokenizer import write_hf_tokenizer_files
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


