"""Bad input for the BPE families: one clear message each, no output left behind."""

from __future__ import annotations

import json
import shutil

from tests.convert.test_errors import assert_fails


def _llama3_copy(bpe_family, tmp_path):
    return shutil.copytree(bpe_family("llama3").base, tmp_path / "llama3")


def test_unknown_architecture_names_the_families_lamina_knows(bpe_family, tmp_path, capsys):
    base = _llama3_copy(bpe_family, tmp_path)
    cfg = json.loads((base / "config.json").read_text())
    cfg.update(model_type="chatglm", architectures=["ChatGLMModel"])
    (base / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "o.gguf"
    assert_fails(["convert", base, "-o", out], capsys, out, "'chatglm'", "ChatGLMModel",
                 "Qwen2", "LLaMA", "Baichuan")


def test_lora_made_for_another_family(bpe_family, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert_fails(["convert", bpe_family("qwen2").tied, "--lora", bpe_family("llama3").lora,
                  "-o", out], capsys, out, "made for a 'llama' model", "Qwen2")


def test_tokenizer_json_without_merges(bpe_family, tmp_path, capsys):
    base = _llama3_copy(bpe_family, tmp_path)
    tok = json.loads((base / "tokenizer.json").read_text())
    tok["model"]["merges"] = []
    (base / "tokenizer.json").write_text(json.dumps(tok))
    out = tmp_path / "o.gguf"
    assert_fails(["convert", base, "-o", out], capsys, out, "no BPE merges")


def test_unknown_pre_tokenizer_names_its_regex(bpe_family, tmp_path, capsys):
    base = _llama3_copy(bpe_family, tmp_path)
    tok = json.loads((base / "tokenizer.json").read_text())
    tok["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{N}{1,5}|\s+"
    (base / "tokenizer.json").write_text(json.dumps(tok))
    out = tmp_path / "o.gguf"
    assert_fails(["convert", base, "-o", out], capsys, out, r"\p{N}{1,5}|\s+", "qwen2",
                 "llama-bpe")


def test_more_tokens_than_embedding_rows(bpe_family, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert_fails(["convert", bpe_family("llama3").base, "--tokenizer",
                  bpe_family("qwen2").tokenizer, "-o", out], capsys, out,
                 "151646 tokens", "rows")


def test_meta_format_merge_refuses_qwen2(bpe_family, tmp_path, capsys):
    out = tmp_path / "merged"
    assert_fails(["merge", bpe_family("qwen2").tied, "-o", out, "--format", "pth"], capsys, out,
                 "Meta's LLaMA layout", "Qwen2")
