"""Bad input ends in one clear message (exit code 1, no traceback) and no output file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from lamina.cli import main


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), " ".join((captured.out + captured.err).split())


def assert_fails(args, capsys, out: Path, *phrases: str) -> str:
    code, text = run_cli(args, capsys)
    assert code == 1, text
    assert "Traceback" not in text and "Internal error" not in text, text
    assert text.count("Error:") == 1, text
    for phrase in phrases:
        assert phrase in text, text
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".part")]
    return text


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {Path(os.environ['LAMINA_EVIL_MARKER'])}",))


@pytest.fixture(scope="module")
def other_base_lora(family, tmp_path_factory):
    """A LoRA made with peft for a differently sized LLaMA (hidden 32 instead of 64)."""
    from lamina.demo.checkpoints import TinyLlamaSpec, make_lora, random_llama, sp_vocab_size

    spec = TinyLlamaSpec(hidden_size=32, intermediate_size=96, num_attention_heads=2,
                         num_key_value_heads=1)
    model = random_llama(spec, sp_vocab_size(family.base_tokenizer))
    out = tmp_path_factory.mktemp("other") / "lora_13b_like"
    return make_lora(model, out, r=4, alpha=8, targets=["q_proj", "v_proj"], modules_to_save=None,
                     seed=5, tokenizer_model=None, safe=True)


def test_missing_base_folder(tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert_fails(["convert", tmp_path / "nope", "-o", out], capsys, out, "does not exist")


def test_missing_config(family, tmp_path, capsys):
    base = _copy(family.base_hf, tmp_path / "base")
    (base / "config.json").unlink()
    out = tmp_path / "o.gguf"
    assert_fails(["convert", base, "-o", out], capsys, out, "config.json")


def test_missing_tokenizer(family, tmp_path, capsys):
    base = _copy(family.base_hf, tmp_path / "base")
    (base / "tokenizer.model").unlink()
    out = tmp_path / "o.gguf"
    assert_fails(["convert", base, "-o", out], capsys, out, "tokenizer.model", "--tokenizer")


def test_lora_for_a_different_base(family, other_base_lora, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--lora", other_base_lora, "-o", out], capsys, out,
                 "different base model")


def test_unknown_target_modules(family, tmp_path, capsys):
    lora = _copy(family.lora_alpaca, tmp_path / "lora")
    cfg = json.loads((lora / "adapter_config.json").read_text())
    cfg["target_modules"] = ["query_key_value", "q_proj"]
    (lora / "adapter_config.json").write_text(json.dumps(cfg))
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--lora", family.lora_plus, "--lora", lora,
                  "-o", out], capsys, out, "query_key_value")


def test_bad_adapter_config_json(family, tmp_path, capsys):
    lora = _copy(family.lora_alpaca, tmp_path / "lora")
    (lora / "adapter_config.json").write_text("{not json")
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--lora", lora, "-o", out], capsys, out,
                 "not valid JSON")


def test_truncated_safetensors(family, tmp_path, capsys):
    base = _copy(family.base_hf, tmp_path / "base")
    shard = sorted(base.glob("*.safetensors"))[-1]
    shard.write_bytes(shard.read_bytes()[:-1000])
    out = tmp_path / "o.gguf"
    assert_fails(["convert", base, "-o", out], capsys, out, "truncated")


def test_checksum_mismatch_on_inputs(family, tmp_path, capsys):
    shard = sorted(family.base_hf.glob("*.safetensors"))[0]
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'0' * 64}  {shard.name}\n")
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--sha256", sums, "-o", out], capsys, out,
                 "Checksum mismatch", shard.name)


def test_diff_result_checksum_mismatch(family, tmp_path, capsys):
    diff = _copy(family.extra["diff"], tmp_path / "diff")
    sums = json.loads((diff / "tensor_sha256.json").read_text())
    sums["model.layers.1.mlp.up_proj.weight"] = "ab" * 32
    (diff / "tensor_sha256.json").write_text(json.dumps(sums))
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--diff", diff, "-o", out], capsys, out,
                 "model.layers.1.mlp.up_proj.weight", "checksum")


def test_diff_against_the_wrong_base_fails_its_checksums(family, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.extra["tuned_hf"], "--diff", family.extra["diff"],
                  "-o", out], capsys, out, "does not match its checksum")


def test_existing_output_needs_force(family, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    out.write_bytes(b"precious")
    code, text = run_cli(["convert", family.base_hf, "-o", out], capsys)
    assert code == 1 and "--force" in text and "Traceback" not in text
    assert out.read_bytes() == b"precious"
    code, text = run_cli(["convert", family.base_hf, "-o", out, "--force"], capsys)
    assert code == 0, text
    assert out.read_bytes()[:4] == b"GGUF"


def test_unknown_template(family, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--template", "nope", "-o", out], capsys, out,
                 "nope", "alpaca2")


def test_crafted_pickle_is_refused_without_running_code(family, tmp_path, capsys, monkeypatch):
    import torch

    marker = tmp_path / "pwned"
    monkeypatch.setenv("LAMINA_EVIL_MARKER", str(marker))
    lora = _copy(family.lora_plus, tmp_path / "lora")
    state = torch.load(lora / "adapter_model.bin", weights_only=True)
    state["base_model.model.lm_head.weight"] = Evil()
    torch.save(state, lora / "adapter_model.bin")
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--lora", lora, "-o", out], capsys, out,
                 "Refusing to load", "pickled code")
    assert not marker.exists()


def test_merge_output_folder_exists(family, tmp_path, capsys):
    out = tmp_path / "merged"
    out.mkdir()
    code, text = run_cli(["merge", family.base_hf, "-o", out], capsys)
    assert code == 1 and "already exists" in text and "Traceback" not in text


def test_truncated_bin_adapter(family, tmp_path, capsys):
    lora = _copy(family.lora_plus, tmp_path / "lora")
    weights = lora / "adapter_model.bin"
    weights.write_bytes(weights.read_bytes()[:5000])
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--lora", lora, "-o", out], capsys, out,
                 "Cannot read the PyTorch checkpoint", "truncated")


def test_missing_lora_folder(family, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert_fails(["convert", family.base_hf, "--lora", tmp_path / "nope", "-o", out], capsys, out,
                 "LoRA folder", "does not exist")
