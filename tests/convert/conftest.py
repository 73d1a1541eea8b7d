"""Session fixtures for converter tests: reference models (transformers/peft) and GGUFs.

References are the ground truth the issue names: transformers for plain
checkpoints, peft's ``merge_and_unload`` for LoRA merges. Every GGUF here is
f32 so logits can be compared to 1e-3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

PROMPTS = [
    "北京是中国的首都。",
    "The quick brown fox jumps over the lazy dog.",
    "张三在杭州的一家人工智能公司工作。",
    "Mixed 中英文 text with numbers 123.",
]


def llama(path: Path, n_ctx: int = 256) -> Any:
    """llama.cpp with an f32 KV cache and no flash attention: exact enough for parity."""
    import llama_cpp

    return llama_cpp.Llama(str(path), n_ctx=n_ctx, logits_all=True, type_k=0, type_v=0,
                           flash_attn=False, verbose=False, n_threads=2, seed=0)


def hf_logits(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def cpp_logits(llm: Any, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def hf_greedy(model: Any, ids: list[int], n: int = 32) -> list[int]:
    import torch

    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return seq[len(ids):]


def cpp_greedy(llm: Any, ids: list[int], n: int = 32) -> list[int]:
    llm.reset()
    llm.eval(ids)
    out: list[int] = []
    for _ in range(n):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        llm.eval([tok])
    return out


def sp_ids(tokenizer_model: Path, text: str) -> list[int]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_model))
    return [sp.bos_id(), *sp.encode(text)]


@pytest.fixture(scope="session")
def convert_dir(cache_dir: Path) -> Path:
    d = cache_dir / "convert"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def references(family) -> dict[str, Any]:
    """transformers/peft models every GGUF variant is compared with (lazy, cached)."""
    from lamina.demo.checkpoints import merged_with, resized_vocab, sp_vocab_size
    from tests.fixtures.synthetic import load_hf

    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name in cache:
            return cache[name]
        if name in ("base", "meta"):
            model = load_hf(family.base_hf)
        elif name == "diff":
            model = load_hf(family.extra["tuned_hf"])
        elif name in ("plus", "plus_st"):
            base = get("base")
            grown = resized_vocab(base, sp_vocab_size(family.extended_tokenizer), seed=123)
            lora = family.lora_plus if name == "plus" else family.lora_plus_safetensors
            model = merged_with(grown, lora)
        elif name == "plus_alpaca":
            model = merged_with(get("plus"), family.lora_alpaca)
        else:
            raise KeyError(name)
        cache[name] = model
        return model

    return {"get": get}


VARIANTS = {
    # name: (base key, lora keys, diff?, tokenizer attr)
    "base": ("base_hf", [], False, "base_tokenizer"),
    "plus": ("base_hf", ["lora_plus"], False, "extended_tokenizer"),
    "plus_st": ("base_hf", ["lora_plus_safetensors"], False, "extended_tokenizer"),
    "plus_alpaca": ("base_hf", ["lora_plus", "lora_alpaca"], False, "extended_tokenizer"),
    "diff": ("base_hf", [], True, "base_tokenizer"),
    "meta": ("meta", [], False, "base_tokenizer"),
}


def _path(family: Any, key: str) -> Path:
    return family.extra[key] if key in family.extra else getattr(family, key)


@pytest.fixture(scope="session")
def variant_gguf(family, convert_dir: Path):
    """f32 GGUF for one VARIANTS entry, converted once per session."""
    from lamina.convert.pipeline import ConvertOptions, convert

    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            base, loras, diff, _ = VARIANTS[name]
            out = convert_dir / f"{name}-f32.gguf"
            convert(ConvertOptions(base=_path(family, base), output=out,
                                   loras=[getattr(family, lo) for lo in loras],
                                   diff=family.extra["diff"] if diff else None,
                                   outtype="f32", force=True))
            made[name] = out
        return made[name]

    return get


# ------------------------------------------------ BPE families (Qwen2, Llama-3)

#: name -> (family, checkpoint attribute, with the family's LoRA?)
BPE_VARIANTS = {
    "qwen2": ("qwen2", "base", False),
    "qwen2_tied": ("qwen2", "tied", False),
    "qwen2_lora": ("qwen2", "base", True),
    "llama3": ("llama3", "base", False),
    "llama3_lora": ("llama3", "base", True),
}


@pytest.fixture(scope="session")
def bpe_family(cache_dir: Path):
    """get(name) -> tests.fixtures.families.BpeFamily for "qwen2" or "llama3"."""
    from tests.fixtures.families import get_bpe_family

    return lambda name: get_bpe_family(cache_dir, name)


@pytest.fixture(scope="session")
def bpe_gguf(bpe_family, tmp_path_factory):
    """get(variant) -> f32 GGUF of a BPE_VARIANTS entry, converted once per session."""
    from lamina.convert.pipeline import ConvertOptions, convert

    made: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("bpe")

    def get(variant: str) -> Path:
        if variant not in made:
            name, attr, with_lora = BPE_VARIANTS[variant]
            fam = bpe_family(name)
            out = root / f"{variant}.gguf"
            convert(ConvertOptions(base=getattr(fam, attr), output=out, outtype="f32",
                                   loras=[fam.lora] if with_lora else []))
            made[variant] = out
        return made[variant]

    return get


@pytest.fixture(scope="session")
def bpe_reference(bpe_family):
    """get(variant) -> the transformers model (peft-merged for LoRA variants), cached."""
    cache: dict[str, Any] = {}

    def get(variant: str) -> Any:
        if variant not in cache:
            import torch
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            name, attr, with_lora = BPE_VARIANTS[variant]
            fam = bpe_family(name)
            model = AutoModelForCausalLM.from_pretrained(str(getattr(fam, attr)),
                                                         dtype=torch.float32).eval()
            if with_lora:
                model = PeftModel.from_pretrained(model, str(fam.lora)).merge_and_unload().eval()
            cache[variant] = model
        return cache[variant]

    return get


@pytest.fixture(scope="session")
def bpe_tokenizer(bpe_family):
    """get(family name) -> the Hugging Face tokenizer of that family (loaded once)."""
    cache: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in cache:
            from transformers import AutoTokenizer

            cache[name] = AutoTokenizer.from_pretrained(str(bpe_family(name).base))
        return cache[name]

    return get
