"""Adapter files written by hand, and peft as the reference for its own config rules.

The peft-made fixture adapters cover the common layout; these cover the rest of
what ``lamina.convert.lora`` promises (other key spellings, embedding LoRAs,
incomplete or foreign files, rank/alpha patterns as peft resolves them). Written to
kill the mutants of ``benchmarks/mutation.py`` that the fixture tests let through.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from lamina.convert.lora import LoraAdapter, LoraConfig, lora_delta
from lamina.errors import FormatError, InputError, ShapeMismatchError

Q = "model.layers.0.self_attn.q_proj"


def rng(name: str) -> np.random.Generator:
    """Random factors that depend on the module name only, not on the test order."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def write_adapter(folder: Path, tensors: dict[str, np.ndarray], config: dict | None = None,
                  fmt: str = "safetensors") -> Path:
    """An adapter folder in peft's file layout."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"],
           **(config or {})}
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    if fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                  str(folder / "adapter_model.safetensors"))
    else:
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in tensors.items()},
                   folder / "adapter_model.bin")
    return folder


def pair(module: str, r: int = 2, inn: int = 6, out: int = 5,
         prefix: str = "base_model.model.", suffix: str = ".weight") -> dict[str, np.ndarray]:
    g = rng(module)
    return {f"{prefix}{module}.lora_A{suffix}": g.standard_normal((r, inn), dtype=np.float32),
            f"{prefix}{module}.lora_B{suffix}": g.standard_normal((out, r), dtype=np.float32)}


def test_key_spellings_map_to_the_base_tensor(tmp_path):
    tensors = {**pair(Q), **pair("lm_head", prefix="base_model.", suffix=".default.weight"),
               **pair("model.layers.0.self_attn.v_proj", prefix="", suffix=".default"),
               "base_model.model.lm_head.modules_to_save.default.weight": np.ones((3, 2), np.float32),
               "base_model.model.model.norm.modules_to_save.weight": np.ones((2,), np.float32),
               "base_model.model.model.embed_tokens.base_layer.weight": np.ones((4, 2), np.float32),
               "base_model.model.lm_head.original_module.weight": np.zeros((3, 2), np.float32)}
    ad = LoraAdapter(write_adapter(tmp_path / "a", tensors))
    assert set(ad.pairs) == {Q + ".weight", "model.layers.0.self_attn.v_proj.weight",
                             "lm_head.weight"}
    assert ad.full == {"lm_head.weight": "base_model.model.lm_head.modules_to_save.default.weight",
                       "model.norm.weight": "base_model.model.model.norm.modules_to_save.weight",
                       "model.embed_tokens.weight":
                           "base_model.model.model.embed_tokens.base_layer.weight"}
    assert ad.full_shape("lm_head.weight") == (3, 2) and ad.full_shape(Q + ".weight") is None
    np.testing.assert_array_equal(ad.full_tensor("lm_head.weight", 1, 3), np.ones((2, 2)))
    assert ad.full_tensor("nope.weight") is None
    assert ad.name == "a"
    (tmp_path / "a" / "tokenizer.model").write_bytes(b"x")
    ad.close()


def test_linear_delta_is_scale_b_at_a(tmp_path):
    tensors = pair(Q)
    ad = LoraAdapter(write_adapter(tmp_path / "a", tensors, {"r": 2, "lora_alpha": 3}))
    a, b = tensors[f"base_model.model.{Q}.lora_A.weight"], tensors[f"base_model.model.{Q}.lora_B.weight"]
    f = ad.factors(Q + ".weight")
    assert (f.scale, f.fan_in_fan_out, f.embedding) == (1.5, False, False)
    delta = f.delta()
    assert delta.dtype == np.float32 and delta.shape == ad.delta_shape(Q + ".weight") == (5, 6)
    np.testing.assert_allclose(delta, 1.5 * b @ a, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f.delta((1, 3)), (1.5 * b @ a)[1:3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lora_delta(a, b, 1.5), 1.5 * b @ a, rtol=1e-6, atol=1e-6)  # the defaults
    assert ad.factors("model.layers.9.self_attn.q_proj.weight") is None
    assert ad.delta_shape("model.layers.9.self_attn.q_proj.weight") is None


def test_fan_in_fan_out_delta_is_transposed(tmp_path):
    tensors = pair(Q, inn=6, out=5)
    ad = LoraAdapter(write_adapter(tmp_path / "a", tensors, {"fan_in_fan_out": True}))
    a, b = tensors[f"base_model.model.{Q}.lora_A.weight"], tensors[f"base_model.model.{Q}.lora_B.weight"]
    assert ad.delta_shape(Q + ".weight") == (6, 5)
    np.testing.assert_allclose(ad.factors(Q + ".weight").delta(), 2 * (b @ a).T, rtol=1e-6, atol=1e-6)


def test_embedding_lora_matches_peft_embedding_merge(tmp_path):
    """peft stores an embedding LoRA as A [r, vocab], B [dim, r] and merges (B @ A).T."""
    import torch
    from peft.utils.other import transpose

    vocab, dim, r = 9, 4, 2
    a = rng("embedding A").standard_normal((r, vocab), dtype=np.float32)
    b = rng("embedding B").standard_normal((dim, r), dtype=np.float32)
    emb = "model.embed_tokens"
    ad = LoraAdapter(write_adapter(tmp_path / "a", {
        f"base_model.model.{emb}.lora_embedding_A": a, f"base_model.model.{emb}.lora_embedding_B": b},
        {"target_modules": ["embed_tokens"], "r": r, "lora_alpha": 2}))
    f = ad.factors(emb + ".weight")
    assert f.embedding and not f.fan_in_fan_out
    assert ad.delta_shape(emb + ".weight") == (vocab, dim)
    expected = transpose(torch.from_numpy(b) @ torch.from_numpy(a), True).numpy()
    np.testing.assert_allclose(f.delta(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f.delta((3, 7)), expected[3:7], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lora_delta(a, b, 0.5, embedding=True, rows=(0, 2)),
                               0.5 * expected[0:2], rtol=1e-6, atol=1e-6)


def test_half_precision_factors_give_a_float32_delta(tmp_path):
    tensors = {k: v.astype(np.float16) for k, v in pair(Q).items()}
    ad = LoraAdapter(write_adapter(tmp_path / "a", tensors))
    a, b = (tensors[f"base_model.model.{Q}.lora_{x}.weight"].astype(np.float32) for x in "AB")
    delta = ad.factors(Q + ".weight").delta()
    assert delta.dtype == np.float32
    np.testing.assert_allclose(delta, 2 * b @ a, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("key", ["lora_magnitude_vector", "lora_E", "hada_w1_a", "lokr_w1",
                                 "ia3_l"])
def test_foreign_tensor_kinds_are_refused(tmp_path, key):
    tensors = {**pair(Q), f"base_model.model.{Q}.{key}.default.weight": np.ones(2, np.float32)}
    with pytest.raises(FormatError, match="cannot merge"):
        LoraAdapter(write_adapter(tmp_path / "a", tensors))


@pytest.mark.parametrize("kind", ["lora_A", "lora_B"])
def test_half_a_pair_is_refused(tmp_path, kind):
    tensors = {k: v for k, v in pair(Q).items() if kind not in k}
    with pytest.raises(FormatError, match="only one of lora_A/lora_B"):
        LoraAdapter(write_adapter(tmp_path / "a", tensors))


def test_factors_that_do_not_fit_are_refused(tmp_path):
    tensors = pair(Q)
    tensors[f"base_model.model.{Q}.lora_B.weight"] = np.ones((5, 3), np.float32)  # rank 3 vs 2
    ad = LoraAdapter(write_adapter(tmp_path / "a", tensors))
    with pytest.raises(ShapeMismatchError, match="do not fit"):
        ad.factors(Q + ".weight")
    tensors[f"base_model.model.{Q}.lora_B.weight"] = np.ones((5, 2, 1), np.float32)
    ad = LoraAdapter(write_adapter(tmp_path / "b", tensors))
    with pytest.raises(ShapeMismatchError, match="do not fit"):
        ad.factors(Q + ".weight")


def test_safetensors_is_preferred_over_bin(tmp_path):
    folder = write_adapter(tmp_path / "a", pair(Q), fmt="bin")
    assert LoraAdapter(folder).weight_file.name == "adapter_model.bin"
    write_adapter(folder, pair("model.layers.1.self_attn.q_proj"))
    ad = LoraAdapter(folder)
    assert ad.weight_file.name == "adapter_model.safetensors"
    assert set(ad.pairs) == {"model.layers.1.self_attn.q_proj.weight"}


def test_missing_folder_and_config_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        LoraAdapter(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No adapter_config.json"):
        LoraAdapter(tmp_path / "empty")


def test_validate_targets(tmp_path):
    base = {Q + ".weight", "model.layers.0.self_attn.v_proj.weight", "model.norm.weight"}
    ad = LoraAdapter(write_adapter(tmp_path / "a", pair(Q), {"target_modules": ["q_proj", "v_proj"]}))
    ad.validate_targets(base)  # fits: no error
    LoraAdapter(write_adapter(tmp_path / "d", pair(Q), {
        "target_modules": ["self_attn.q_proj"]})).validate_targets(base)  # a dotted suffix
    with pytest.raises(ShapeMismatchError, match="does not have: mlp.gate_proj"):
        LoraAdapter(write_adapter(tmp_path / "b", pair(Q), {
            "target_modules": ["q_proj", "mlp.gate_proj"]})).validate_targets(base)
    # A regex target is not a list of leaf names: only the tensors themselves are checked.
    LoraAdapter(write_adapter(tmp_path / "c", pair(Q), {
        "target_modules": r".*\.(q|gate)_proj"})).validate_targets(base)
    with pytest.raises(ShapeMismatchError, match=r"layers.0.self_attn.q_proj.weight', 1 in all"):
        ad.validate_targets(base - {Q + ".weight"} | {"model.layers.1.self_attn.q_proj.weight"})



def test_a_lora_for_another_family_is_refused(tmp_path, monkeypatch):
    """peft records the base an adapter was trained on (``base_model_name_or_path``);
    when that folder is at hand, its config.json (as transformers writes it) names the
    family, and a base of another family is refused even where the module names agree."""
    from peft import LoraConfig as PeftLoraConfig
    from transformers import LlamaConfig

    base = tmp_path / "llama-base"
    LlamaConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                num_attention_heads=2).save_pretrained(base)
    names = {Q + ".weight"}

    def adapter(name: str, recorded: str | None) -> LoraAdapter:
        folder = write_adapter(tmp_path / name, pair(Q))
        PeftLoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"],
                       base_model_name_or_path=recorded).save_pretrained(folder)
        return LoraAdapter(folder)

    ad = adapter("a", str(base))
    ad.validate_targets(names, "LLaMA", "llama")  # the family it was made for
    ad.validate_targets(names)  # the base's model_type unknown: nothing to compare
    with pytest.raises(ShapeMismatchError, match=r"made for a 'llama' model.*Qwen2 \('qwen2'\)"):
        ad.validate_targets(names, "Qwen2", "qwen2")
    # Unknowable, so not refused: a hub id, a path relative to the training run's folder
    # (here it would name a llama folder), no record, a folder without a usable config.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "no-config").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    (tmp_path / "untyped").mkdir()
    (tmp_path / "untyped" / "config.json").write_text('{"model_type": ""}')
    for i, recorded in enumerate(["meta-llama/Llama-2-7b-hf", "llama-base", None, "",
                                  *(str(tmp_path / d) for d in ("no-config", "broken", "untyped"))]):
        adapter(f"u{i}", recorded).validate_targets(names, "Qwen2", "qwen2")
    odd = write_adapter(tmp_path / "odd", pair(Q), {"base_model_name_or_path": [str(base)]})
    LoraAdapter(odd).validate_targets(names, "Qwen2", "qwen2")  # not peft's: not a record

def test_config_defaults_and_types():
    cfg = LoraConfig.from_dict({"r": "4", "target_modules": None, "modules_to_save": None,
                                "bias": None, "peft_type": "lora",
                                "rank_pattern": {"v_proj": "2"}, "alpha_pattern": {"k_proj": 3}})
    assert (cfg.r, cfg.lora_alpha, cfg.target_modules, cfg.modules_to_save) == (4, 4.0, (), ())
    assert (cfg.fan_in_fan_out, cfg.use_rslora) == (False, False)
    assert cfg.rank_pattern == {"v_proj": 2} and cfg.alpha_pattern == {"k_proj": 3.0}
    assert isinstance(cfg.lora_alpha, float)
    assert LoraConfig.from_dict({"r": 8}).lora_alpha == 8.0
    assert LoraConfig.from_dict({"r": 1, "target_modules": "q_proj"}).target_modules == "q_proj"
    assert LoraConfig.from_dict({"r": 1, "target_modules": ["q_proj", "v_proj"],
                                 "modules_to_save": ["lm_head"], "fan_in_fan_out": True,
                                 "use_rslora": True}) == LoraConfig(
        r=1, lora_alpha=1.0, target_modules=("q_proj", "v_proj"), modules_to_save=("lm_head",),
        fan_in_fan_out=True, use_rslora=True)
    assert LoraConfig.from_dict({"r": 1, "bias": "none"}).r == 1
    assert LoraConfig.from_dict({"r": 2}) == LoraConfig(r=2, lora_alpha=2.0, target_modules=())
    with pytest.raises(FormatError, match="^'adapter_config.json' is a IA3 adapter"):
        LoraConfig.from_dict({"r": 2, "peft_type": "IA3"})
    with pytest.raises(AttributeError):
        cfg.r = 2  # frozen: a loaded config cannot drift from the file


@pytest.mark.parametrize("raw", [{}, {"r": "x"}, {"r": None}, {"r": 4, "lora_alpha": "x"},
                                 {"r": -1}, {"r": 0}])
def test_invalid_rank_or_alpha_is_refused(raw):
    with pytest.raises(FormatError, match="rank"):
        LoraConfig.from_dict(raw)
    LoraConfig.from_dict({"r": 1})


def test_scales_equal_peft_layer_scaling():
    """rank_pattern/alpha_pattern keys are regexes matched against the module's full
    name, resolved by peft; each LoRA layer's ``scaling`` is the reference."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    names = [f"model.layers.{i}.self_attn.{m}" for i in (0, 1, 11) for m in ("q_proj", "v_proj")]

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = torch.nn.Module()
            self.model.layers = torch.nn.ModuleList()
            for _ in range(12):
                layer = torch.nn.Module()
                layer.self_attn = torch.nn.Module()
                layer.self_attn.q_proj = torch.nn.Linear(4, 4, bias=False)
                layer.self_attn.v_proj = torch.nn.Linear(4, 4, bias=False)
                self.model.layers.append(layer)

    patterns = [
        ({"v_proj": 4}, {"layers.1.self_attn.v_proj": 32}),
        ({"q_proj|v_proj": 2}, {}),  # alternation: the whole key is one group in peft
        ({r"layers\.1\..*": 4}, {"q_proj": 1}),
        ({}, {"model.layers.11.self_attn.q_proj": 5}),
    ]
    for rslora in (False, True):
        for rank_pattern, alpha_pattern in patterns:
            raw = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
                   "use_rslora": rslora, "rank_pattern": rank_pattern,
                   "alpha_pattern": alpha_pattern}
            peft_model = get_peft_model(Tiny(), PeftLoraConfig(**raw))
            ours = LoraConfig.from_dict(raw)
            modules = dict(peft_model.base_model.model.named_modules())
            for name in names:
                expected = modules[name].scaling["default"]
                assert ours.scale_for(name) == pytest.approx(expected), (name, raw)
