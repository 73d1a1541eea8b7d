"""What the GGUF carries besides weights, and the other output types."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lamina import gguf_io
from tests.convert.conftest import PROMPTS, cpp_logits, llama, sp_ids
from tests.convert.test_errors import run_cli


def _field(reader, key):
    f = reader.fields[key]
    return f.contents() if hasattr(f, "contents") else bytes(f.parts[-1]).decode()


def test_chat_gguf_is_self_contained(chat_gguf, family):
    """The shared fixture: template name + Jinja, full tokenizer, provenance."""
    from gguf import GGUFReader

    from lamina.templates import get_template

    r = GGUFReader(chat_gguf)
    assert _field(r, gguf_io.TEMPLATE_NAME) == "alpaca2"
    assert _field(r, gguf_io.CHAT_TEMPLATE_JINJA) == get_template("alpaca2").jinja
    prov = json.loads(_field(r, gguf_io.PROVENANCE))
    assert [p.rsplit("/", 1)[-1] for p in prov["loras"]] == ["lora_plus", "lora_alpaca"]
    from lamina.demo.checkpoints import sp_vocab_size

    assert len(r.fields["tokenizer.ggml.tokens"].data) == sp_vocab_size(family.extended_tokenizer)
    assert _field(r, "tokenizer.ggml.add_bos_token") is True


@pytest.mark.parametrize("outtype, tol", [("f16", 2e-2), ("bf16", 0.15), ("q8_0", 0.15)])
def test_smaller_outtypes_stay_close_to_f32(outtype, tol, family, variant_gguf, tmp_path, capsys):
    out = tmp_path / f"m.{outtype}.gguf"
    code, text = run_cli(["convert", family.base_hf, "--lora", family.lora_plus_safetensors,
                          "--outtype", outtype, "-o", out, "--json"], capsys)
    assert code == 0, text
    hist = json.loads(text)["tensors"]
    assert hist.get(outtype.upper(), 0) >= 14  # every 2-D weight
    ids = sp_ids(family.extended_tokenizer, PROMPTS[0])
    ref = cpp_logits(llama(variant_gguf("plus")), ids)
    got = cpp_logits(llama(out), ids)
    assert np.abs(got - ref).max() < tol
    assert int(np.argmax(got[-1])) == int(np.argmax(ref[-1]))


def test_tokenizer_option_overrides_the_last_lora(family, tmp_path, capsys):
    from gguf import GGUFReader

    from lamina.demo.checkpoints import sp_vocab_size

    out = tmp_path / "t.gguf"
    code, text = run_cli(["convert", family.base_hf, "--tokenizer", family.extended_tokenizer.parent,
                          "-o", out, "--json"], capsys)
    assert code == 0, text
    # Rows grow to the extended vocab even without a LoRA filling them (mean rows).
    assert "mean row" in text
    r = GGUFReader(out)
    emb = next(t for t in r.tensors if t.name == "token_embd.weight")
    assert int(emb.shape[-1]) == sp_vocab_size(family.extended_tokenizer)


def test_pytorch_bin_base_gives_the_same_tensors_as_safetensors(family, variant_gguf, tmp_path):
    """HF folders with pytorch_model.bin (weights-only loading) convert identically."""
    import shutil

    import torch
    from gguf import GGUFReader

    from lamina.convert.pipeline import ConvertOptions, convert
    from tests.fixtures.synthetic import load_hf

    folder = tmp_path / "bin_base"
    folder.mkdir()
    torch.save(load_hf(family.base_hf).state_dict(), folder / "pytorch_model.bin")
    for name in ("config.json", "tokenizer.model", "tokenizer_config.json"):
        shutil.copyfile(family.base_hf / name, folder / name)
    out = tmp_path / "bin.gguf"
    convert(ConvertOptions(base=folder, output=out, outtype="f32"))
    a = {t.name: np.array(t.data) for t in GGUFReader(out).tensors}
    b = {t.name: np.array(t.data) for t in GGUFReader(variant_gguf("base")).tensors}
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


def test_tied_embeddings_model_converts(family, tmp_path):
    """No lm_head tensor: llama.cpp reuses token_embd, logits still match transformers."""
    from lamina.convert.pipeline import ConvertOptions, convert
    from lamina.demo.checkpoints import TinyLlamaSpec, random_llama, save_hf, sp_vocab_size
    from tests.convert.conftest import hf_logits

    model = random_llama(TinyLlamaSpec(tie_word_embeddings=True, seed=3),
                         sp_vocab_size(family.base_tokenizer))
    folder = save_hf(model, tmp_path / "tied", family.base_tokenizer, shard_size=None)
    out = tmp_path / "tied.gguf"
    convert(ConvertOptions(base=folder, output=out, outtype="f32"))
    ids = sp_ids(family.base_tokenizer, PROMPTS[3])
    assert np.abs(cpp_logits(llama(out), ids) - hf_logits(model, ids)).max() < 1e-3


def test_convert_removes_the_leftover_of_a_killed_run_and_says_so(family, tmp_path, capsys):
    """The cheapest command writing through atomic_output, end to end through the CLI."""
    from tests.test_files import kill_writer, start_writer

    out = tmp_path / "m.gguf"
    proc, leftover = start_writer(out, 2_000_000)
    kill_writer(proc)
    code, text = run_cli(["convert", family.base_hf, "-o", out], capsys)
    assert code == 0, text
    assert "Removed 1 leftover temporary file (1.91 MB) of earlier interrupted runs." in text
    assert not leftover.exists() and list(tmp_path.iterdir()) == [out]
    code, text = run_cli(["convert", family.base_hf, "-o", out, "--force"], capsys)
    assert code == 0 and "leftover" not in text  # nothing left: nothing said
