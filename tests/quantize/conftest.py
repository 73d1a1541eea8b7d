"""Fixtures for the quantize tests: a K-quant-sized LLaMA with peaked predictions.

K-quants need rows that are multiples of 256, so the default tiny family
(hidden 64) does not exercise them; this model has hidden 256. A randomly
initialised model predicts an almost flat next-token distribution, where any
rounding flips the argmax, so quality thresholds would measure noise. Instead
the output layer is set to a bigram model of the evaluation text (logit of v
after t proportional to P(v | t)) and the embeddings are scaled so the
residual stream carries the current token: the model then has confident,
text-dependent predictions like a trained LM, built deterministically in a
few seconds. The attention and MLP layers stay random and still matter.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURE_VERSION = "v1"


@dataclass
class QuantFixture:
    hf: Path  # HF folder (base checkpoint)
    f32: Path
    f16: Path
    root: Path


def _bigram_llama(root: Path) -> Path:
    import numpy as np
    import sentencepiece as spm
    import torch

    from lamina.demo.checkpoints import (
        TinyLlamaSpec,
        random_llama,
        save_hf,
        sp_vocab_size,
        train_tokenizer,
    )
    from lamina.demo.corpus import BASE_TEXT
    from lamina.quantize.sample_text import SAMPLE_TEXT

    spec = TinyLlamaSpec(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, initializer_range=0.02,
                         seed=7)
    tok = train_tokenizer(root / "tok", spec.vocab_size)
    vocab = sp_vocab_size(tok)
    ids = spm.SentencePieceProcessor(model_file=str(tok)).encode(SAMPLE_TEXT + "\n" + BASE_TEXT)
    counts = np.zeros((vocab, vocab))
    np.add.at(counts, (np.asarray(ids[:-1]), np.asarray(ids[1:])), 1.0)
    probs = (counts + 1e-3) / (counts + 1e-3).sum(axis=1, keepdims=True)  # P[t, v]

    model = random_llama(spec, vocab)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb.mul_(25.0)  # the current token dominates the residual stream
        unit = emb / emb.pow(2).mean(dim=1, keepdim=True).sqrt()
        head = (20.0 / spec.hidden_size) * torch.tensor(probs.T, dtype=torch.float32) @ unit
        model.lm_head.weight.copy_(head)
        model.model.norm.weight.fill_(1.0)
    return save_hf(model, root / "hf", tok)


def _small_llama(root: Path) -> Path:
    """One 256-wide layer: the cheapest model every quantization type accepts.

    The grid-searching types (IQ1_*, IQ2_*) cost seconds per million weights,
    so the every-type test runs on this one.
    """
    from lamina.demo.checkpoints import (
        TinyLlamaSpec,
        random_llama,
        save_hf,
        sp_vocab_size,
        train_tokenizer,
    )

    spec = TinyLlamaSpec(hidden_size=256, intermediate_size=256, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, seed=3)
    tok = train_tokenizer(root / "tok", 600)
    return save_hf(random_llama(spec, sp_vocab_size(tok)), root / "hf", tok)


def build_quant_fixture(root: Path, small: bool = False) -> QuantFixture:
    from lamina.convert.pipeline import ConvertOptions, convert

    marker = root.with_name(root.name + ".done")
    fx = QuantFixture(hf=root / "hf", f32=root / "model-f32.gguf", f16=root / "model-f16.gguf",
                      root=root)
    if marker.exists() and fx.f32.exists() and fx.f16.exists():
        return fx
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    (_small_llama if small else _bigram_llama)(root)
    for path, outtype in ((fx.f32, "f32"), (fx.f16, "f16")):
        convert(ConvertOptions(base=fx.hf, output=path, outtype=outtype, force=True))
    marker.write_text("ok")
    return fx


@pytest.fixture(scope="session")
def qfix(cache_dir: Path) -> QuantFixture:
    return build_quant_fixture(cache_dir / f"quantize-{FIXTURE_VERSION}")


@pytest.fixture(scope="session")
def qfix_small(cache_dir: Path) -> QuantFixture:
    return build_quant_fixture(cache_dir / f"quantize-small-{FIXTURE_VERSION}", small=True)


@pytest.fixture(scope="session")
def quantized(qfix: QuantFixture, tmp_path_factory: pytest.TempPathFactory):
    """Quantize the f16 fixture once per type (shared by the tests that only read)."""
    from lamina.quantize.quantizer import quantize

    out_dir = tmp_path_factory.mktemp("quantized")
    cache: dict[str, Path] = {}

    def get(qtype: str, source: Path | None = None) -> Path:
        key = f"{qtype}-{(source or qfix.f16).name}"
        if key not in cache:
            path = out_dir / f"{key}.gguf"
            quantize(source or qfix.f16, path, qtype)
            cache[key] = path
        return cache[key]

    return get
