"""`lamina merge` options, checked by their effect on the folder written.

References: hashlib for the checksum list, safetensors/torch for the files, and Meta's
published checkpoint layout (tensor names and the rotary permutation of wq/wk, as in
transformers' convert_llama_weights_to_hf.py), written out here, not taken from lamina.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lamina.cli import cli, main


def run(*args: object) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def safetensors_state(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out: dict[str, np.ndarray] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def hf_name(meta: str) -> str:
    """Meta's names (llama/model.py) -> Hugging Face's."""
    glob = {"tok_embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight",
            "output.weight": "lm_head.weight"}
    if meta in glob:
        return glob[meta]
    _, i, rest = meta.split(".", 2)
    layer = {"attention.wq.weight": "self_attn.q_proj.weight",
             "attention.wk.weight": "self_attn.k_proj.weight",
             "attention.wv.weight": "self_attn.v_proj.weight",
             "attention.wo.weight": "self_attn.o_proj.weight",
             "feed_forward.w1.weight": "mlp.gate_proj.weight",
             "feed_forward.w2.weight": "mlp.down_proj.weight",
             "feed_forward.w3.weight": "mlp.up_proj.weight",
             "attention_norm.weight": "input_layernorm.weight",
             "ffn_norm.weight": "post_attention_layernorm.weight"}[rest]
    return f"model.layers.{i}.{layer}"


def permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Meta's wq/wk rows -> HF's (transformers' conversion script)."""
    dim1, dim2 = w.shape
    return w.reshape(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(0, 2, 1, 3).reshape(dim1,
                                                                                           dim2)


def test_merge_dtype_and_pth_format_hold_the_same_weights(family, tmp_path):
    torch = pytest.importorskip("torch")
    args = [family.base_hf, "--lora", family.lora_plus, "--lora", family.lora_alpaca]
    st_dir, pth_dir = tmp_path / "st", tmp_path / "pth"
    run("merge", *args, "--dtype", "float16", "-o", st_dir)
    run("merge", *args, "--dtype", "float16", "--format", "pth", "-o", pth_dir)
    st = safetensors_state(st_dir)
    assert {a.dtype for a in st.values()} == {np.dtype("float16")}  # --dtype
    config = json.loads((st_dir / "config.json").read_text())
    params = json.loads((pth_dir / "params.json").read_text())
    assert params["dim"] == config["hidden_size"] and params["n_heads"] == \
        config["num_attention_heads"]
    state = torch.load(pth_dir / "consolidated.00.pth", map_location="cpu", weights_only=True)
    assert {t.dtype for t in state.values()} == {torch.float16}
    assert {hf_name(k) for k in state} == set(st)
    n_kv = config.get("num_key_value_heads", config["num_attention_heads"])
    for meta, tensor in state.items():
        value = tensor.numpy()
        if meta.endswith("attention.wq.weight"):
            value = permute(value, config["num_attention_heads"])
        elif meta.endswith("attention.wk.weight"):
            value = permute(value, n_kv)
        assert np.array_equal(value, st[hf_name(meta)]), meta


def sha256_list(folder: Path) -> str:
    """A sha256sum-style list of ``folder``'s files, digests from hashlib."""
    return "".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n"
                   for f in sorted(folder.iterdir()) if f.is_file())


def test_merge_sha256_checks_the_inputs_against_the_list(family, tmp_path, capsys):
    good = tmp_path / "SHA256SUMS"
    good.write_text(sha256_list(family.base_hf))
    out = tmp_path / "ok"
    report = json.loads(run("merge", family.base_hf, "--sha256", good, "-o", out, "--json"))
    checked = {Path(f).name for f in report["provenance"]["sha256_verified"]}
    weights = {f.name for f in family.base_hf.glob("*.safetensors")}
    assert weights | {"tokenizer.model"} <= checked
    first = next(line for line in good.read_text().splitlines()
                 if line.endswith(sorted(weights)[1]))
    digest, name = first.split("  ")
    bad = tmp_path / "BAD256SUMS"
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    bad.write_text(good.read_text().replace(first, f"{flipped}  {name}"))
    with pytest.raises(SystemExit) as exit_info:
        main(["merge", str(family.base_hf), "--sha256", str(bad), "-o", str(tmp_path / "no")])
    assert exit_info.value.code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert name in err and "mismatch" in err.lower() and "Traceback" not in err
    assert not (tmp_path / "no").exists()
