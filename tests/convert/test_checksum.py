"""``lamina checksum`` and ``--sha256``: the checks the model cards ask users to do by hand."""

from __future__ import annotations

import hashlib
import json
import shutil

from lamina.convert.checksums import parse_checksum_list
from tests.convert.test_errors import run_cli


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_list_formats_are_all_understood(tmp_path):
    h1, h2, h3, m = "a" * 64, "b" * 64, "c" * 64, "d" * 32
    text = "\n".join([
        f"{h1}  consolidated.00.pth",
        f"{h2} *adapter_model.bin",
        f"SHA256 (tokenizer.model) = {h3}",
        f"| Chinese-Alpaca-Plus-7B | adapter_model.bin | {h3} |",
        f"{m}  params.json",
        "# a comment without sums",
    ])
    (tmp_path / "list").write_text(text)
    got = parse_checksum_list(tmp_path / "list")
    assert got == {"consolidated.00.pth": [h1], "adapter_model.bin": [h2, h3],
                   "tokenizer.model": [h3], "params.json": [m]}


def test_checksum_dir_with_its_own_list(family, tmp_path, capsys):
    folder = shutil.copytree(family.lora_alpaca, tmp_path / "lora")
    weights = folder / "adapter_model.safetensors"
    (folder / "SHA256SUMS").write_text(f"{_sha(weights)}  {weights.name}\n")
    code, text = run_cli(["checksum", folder, "--json"], capsys)
    assert code == 0, text
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(text)["files"]}
    assert rows["adapter_model.safetensors"]["status"] == "ok"
    assert rows["tokenizer.model"]["status"] == "unlisted"
    assert rows["tokenizer.model"]["digest"] == _sha(folder / "tokenizer.model")


def test_checksum_mismatch_fails_after_showing_the_table(family, tmp_path, capsys):
    target = family.base_hf / "tokenizer.model"
    sums = tmp_path / "checklist.chk"
    sums.write_text(f"{'0' * 32}  tokenizer.model\n")  # Meta's MD5 checklist format
    code, text = run_cli(["checksum", target, "--sha256", sums], capsys)
    assert code == 1
    assert "mismatch" in text and "Checksum mismatch for tokenizer.model" in text
    md5 = hashlib.md5(target.read_bytes()).hexdigest()
    sums.write_text(f"{md5}  tokenizer.model\n")
    code, text = run_cli(["checksum", target, "--sha256", sums], capsys)
    assert code == 0 and " ok " in text


def test_convert_records_verified_inputs(family, tmp_path, capsys):
    shards = sorted(family.base_hf.glob("*.safetensors"))
    lora_w = family.lora_alpaca / "adapter_model.safetensors"
    sums = tmp_path / "SHA256.md"
    sums.write_text("| file | sha256 |\n|---|---|\n" + "".join(
        f"| {p.name} | {_sha(p)} |\n" for p in [*shards, lora_w]))
    out = tmp_path / "o.gguf"
    code, text = run_cli(["convert", family.base_hf, "--lora", family.lora_plus,
                          "--lora", family.lora_alpaca, "--sha256", sums, "-o", out, "--json"],
                         capsys)
    assert code == 0, text
    verified = json.loads(text)["provenance"]["sha256_verified"]
    assert len(verified) == len(shards) + 1


def test_list_that_names_none_of_the_inputs(family, tmp_path, capsys):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'1' * 64}  something-else.bin\n")
    out = tmp_path / "o.gguf"
    code, text = run_cli(["convert", family.base_hf, "--sha256", sums, "-o", out], capsys)
    assert code == 1 and "None of the input files" in text and not out.exists()
