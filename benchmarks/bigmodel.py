"""A synthetic LLaMA big enough for memory/speed benchmarks (>= 1 GB f16, sharded) + a LoRA.

Real 7B checkpoints cannot be downloaded here, so benchmarks that must show
streaming behaviour (peak RSS far below the model size) use this one: random
f16 weights in HF layout (sharded safetensors with an index, GQA), a
SentencePiece tokenizer trained locally, and a PEFT-format LoRA on every linear
layer. Built with numpy only (no torch), one tensor at a time, and cached under
the work dir with a ``.done`` marker.

    python benchmarks/bigmodel.py [WORK_DIR]   # build (or reuse) and print the paths
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import WORK, llama_spec  # noqa: E402

#: Shape of the big synthetic model: ~603M parameters, ~1.2 GB in f16.
BIG_SPEC = llama_spec(hidden_size=2048, intermediate_size=5632, num_hidden_layers=10,
                      num_attention_heads=16, num_key_value_heads=8)
LORA_RANK = 16
LORA_ALPHA = 32
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SHARD_BYTES = 400 * 1024 * 1024
#: Bumped whenever the synthetic models change, so cached ones are rebuilt.
SYNTHETIC_VERSION = 2

#: A Qwen2-1.5B-shaped model cut to 6 layers: ~1.0 GiB in f16, Qwen's 151,936 embedding
#: rows (tied, as in Qwen2-0.5B/1.5B), GQA with 2 kv heads, q/k/v biases.
QWEN2_SPEC = {
    "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 6,
    "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
    "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
}


def _tensor_shapes(spec: dict, family: str = "llama") -> list[tuple[str, tuple[int, ...]]]:
    h, ff, v = spec["hidden_size"], spec["intermediate_size"], spec["vocab_size"]
    kv = h // spec["num_attention_heads"] * spec["num_key_value_heads"]
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (v, h))]
    for i in range(spec["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes += [
            (p + "self_attn.q_proj.weight", (h, h)),
            (p + "self_attn.k_proj.weight", (kv, h)),
            (p + "self_attn.v_proj.weight", (kv, h)),
            (p + "self_attn.o_proj.weight", (h, h)),
            (p + "mlp.gate_proj.weight", (ff, h)),
            (p + "mlp.up_proj.weight", (ff, h)),
            (p + "mlp.down_proj.weight", (h, ff)),
            (p + "input_layernorm.weight", (h,)),
            (p + "post_attention_layernorm.weight", (h,)),
        ]
        if family == "qwen2":
            shapes += [(p + "self_attn.q_proj.bias", (h,)), (p + "self_attn.k_proj.bias", (kv,)),
                       (p + "self_attn.v_proj.bias", (kv,))]
    shapes.append(("model.norm.weight", (h,)))
    if not spec.get("tie_word_embeddings"):
        shapes.append(("lm_head.weight", (v, h)))
    return shapes


def _random(rng: np.random.Generator, shape: tuple[int, ...], name: str) -> np.ndarray:
    if len(shape) == 1:
        return (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float16)
    std = 0.02 if "embed" in name or "lm_head" in name else 1.0 / np.sqrt(shape[1])
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float16)


def _write_base(folder: Path, spec: dict, seed: int = 0, family: str = "llama") -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    shapes = _tensor_shapes(spec, family)
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in shapes:
        nbytes = int(np.prod(shape)) * 2
        if groups[-1] and size + nbytes > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += nbytes
    weight_map: dict[str, str] = {}
    total = 0
    for i, group in enumerate(groups, 1):
        fname = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        shard = {name: _random(rng, shape, name) for name, shape in group}
        save_file(shard, str(folder / fname), metadata={"format": "pt"})
        for name, arr in shard.items():
            weight_map[name] = fname
            total += arr.nbytes
        del shard
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    if family == "qwen2":
        config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                  "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151645,
                  "use_sliding_window": False, "torch_dtype": "float16",
                  "initializer_range": 0.02, **spec}
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        _write_qwen_tokenizer(folder)
        return
    from lamina.convert.tokenizer import write_hf_tokenizer_files

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
        "torch_dtype": "float16", "initializer_range": 0.02, **spec,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tok = full_vocab_tokenizer(folder.parent / "big_tokenizer", int(spec["vocab_size"]))
    write_hf_tokenizer_files(folder, tok)


def _write_qwen_tokenizer(folder: Path) -> None:
    """Qwen's real tokenizer (the tests' builder: qwen-tokenizer's ranks + TikTokenConverter)."""
    sys.path.insert(0, str(HERE.parent))
    from tests.fixtures.families import copy_tokenizer, qwen_tokenizer

    copy_tokenizer(qwen_tokenizer(folder.parent / "qwen_tokenizer"), folder)


def full_vocab_tokenizer(out_dir: Path, vocab_size: int) -> Path:
    """A SentencePiece model with exactly ``vocab_size`` real pieces, shaped like Chinese-LLaMA's.

    Why: a tokenizer trained on our few KB of text has ~1000 pieces; padding the
    model's 32000 rows with empty placeholder tokens made Chinese text fall back
    to 3 byte tokens per character (Chinese-LLaMA has one piece per common
    character, which is why it exists) and made grammar checks nearly free (an
    empty piece is rejected at once). Here the trained BPE pieces are followed by
    every printable ASCII character, common Chinese punctuation and every CJK
    unified ideograph (U+4E00..U+9FFF) as single pieces, then ASCII subword
    pieces ("▁ab", "ab", "▁abc", ...) until the vocabulary is full.
    """
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    from lamina.demo.checkpoints import extend_tokenizer, train_tokenizer

    base = train_tokenizer(out_dir / "bpe", 1024)
    proto = sp_pb2.ModelProto()
    proto.ParseFromString(base.read_bytes())
    have = {p.piece for p in proto.pieces}
    letters = "abcdefghijklmnopqrstuvwxyz"
    pairs = [a + b for a in letters for b in letters]
    candidates = [chr(c) for c in range(0x21, 0x7F)] + list("，。、；：？！“”‘’（）《》【】…—")
    candidates += [chr(c) for c in range(0x4E00, 0xA000)]
    candidates += ["\u2581" + p for p in pairs] + pairs
    candidates += ["\u2581" + p + c for p in pairs for c in letters]
    extra = [c for c in candidates if c not in have][: max(0, vocab_size - len(have))]
    if len(have) + len(extra) < vocab_size:
        raise ValueError(f"cannot build a {vocab_size}-piece vocabulary")
    return extend_tokenizer(base, out_dir, pieces=extra)


def _write_lora(folder: Path, spec: dict, seed: int = 1, family: str = "llama") -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    h = spec["hidden_size"]
    tensors: dict[str, np.ndarray] = {}
    for name, shape in _tensor_shapes(spec, family):
        module = name.rsplit(".", 2)[-2]
        if module not in LORA_TARGETS or not name.endswith(".weight"):
            continue
        stem = "base_model.model." + name.removesuffix(".weight")
        out_f, in_f = shape
        tensors[stem + ".lora_A.weight"] = (
            rng.standard_normal((LORA_RANK, in_f), dtype=np.float32) / np.sqrt(in_f)
        ).astype(np.float16)
        tensors[stem + ".lora_B.weight"] = (
            rng.standard_normal((out_f, LORA_RANK), dtype=np.float32) * 0.01
        ).astype(np.float16)
    assert h > 0
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": LORA_RANK, "lora_alpha": LORA_ALPHA,
        "target_modules": LORA_TARGETS, "lora_dropout": 0.0, "bias": "none",
        "fan_in_fan_out": False, "modules_to_save": None, "inference_mode": True,
        "base_model_name_or_path": None,
    }, indent=2))


def ensure_big_model(work_dir: Path, family: str = "llama") -> tuple[Path, Path]:
    """(base_hf_dir, lora_dir) of the big synthetic model under ``work_dir``, built once.

    ``family`` "llama" is the Chinese-LLaMA-shaped model (BIG_SPEC), "qwen2" the
    Qwen2-shaped one (QWEN2_SPEC) with Qwen's own tokenizer.
    """
    spec = QWEN2_SPEC if family == "qwen2" else BIG_SPEC
    work_dir = Path(work_dir)
    root = work_dir / ("bigmodel" if family == "llama" else f"bigmodel-{family}")
    base, lora = root / "base_hf", root / "lora"
    marker = root / ".done"
    if _is_current(marker, spec) and base.is_dir() and lora.is_dir():
        return base, lora
    if root.exists():
        shutil.rmtree(root)
    base.mkdir(parents=True)
    lora.mkdir(parents=True)
    _write_base(base, spec, family=family)
    _write_lora(lora, spec, family=family)
    _mark(marker, spec)
    return base, lora


def _mark(marker: Path, spec: dict) -> None:
    marker.write_text(json.dumps({"spec": spec, "version": SYNTHETIC_VERSION}))


def _is_current(marker: Path, spec: dict) -> bool:
    """True when ``marker`` records this spec built by this version of the generator."""
    try:
        return json.loads(marker.read_text()) == {"spec": spec, "version": SYNTHETIC_VERSION}
    except (OSError, ValueError):
        return False


def model_bytes(base: Path) -> int:
    """Total size of the weight files (what "the model size" means in benchmarks)."""
    return sum(f.stat().st_size for f in base.glob("*.safetensors"))


def ensure_quantized(work: Path, name: str, spec: dict, qtype: str = "Q4_K_M") -> Path:
    """A quantized GGUF of a synthetic LLaMA of shape ``spec``, built once under work/name.

    The engine, decode, extract and serve benchmarks each need a model of a
    given size; this builds HF -> f16 GGUF (alpaca2 template) -> ``qtype`` with
    lamina itself and caches the result behind a ``.done`` marker.
    """
    from lamina.convert.pipeline import ConvertOptions, convert
    from lamina.quantize.quantizer import quantize

    root = work / name
    out = root / f"{name}-{qtype.lower()}.gguf"
    marker = root / ".done"
    if _is_current(marker, spec) and out.exists():
        return out
    if root.exists():
        shutil.rmtree(root)
    base = root / "base_hf"
    base.mkdir(parents=True)
    _write_base(base, spec)
    f16 = root / f"{name}-f16.gguf"
    convert(ConvertOptions(base=base, output=f16, outtype="f16", template="alpaca2", force=True))
    quantize(f16, out, qtype, force=True)
    f16.unlink()
    shutil.rmtree(base)
    _mark(marker, spec)
    return out


#: llama-cpp-python release whose vendored llama.cpp provides the seed converter.
SDIST_VERSION = "0.3.36"


def ensure_seed_converter(work: Path) -> Path:
    """convert_hf_to_gguf.py (+ its conversion/ and gguf-py/) from the llama-cpp-python sdist."""
    root = work / "sdist" / f"llama_cpp_python-{SDIST_VERSION}" / "vendor" / "llama.cpp"
    script = root / "convert_hf_to_gguf.py"
    if script.is_file() and (root / "gguf-py").is_dir():
        return script
    sdist_dir = work / "sdist"
    sdist_dir.mkdir(parents=True, exist_ok=True)
    archive = sdist_dir / f"llama_cpp_python-{SDIST_VERSION}.tar.gz"
    if not archive.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
                        "--no-deps", f"llama-cpp-python=={SDIST_VERSION}", "-d", str(sdist_dir),
                        "-q"], check=True)
    prefix = f"llama_cpp_python-{SDIST_VERSION}/vendor/llama.cpp/"
    wanted = (prefix + "convert_hf_to_gguf.py", prefix + "conversion/", prefix + "gguf-py/")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(wanted)]
        tar.extractall(sdist_dir, members=members, filter="data")
    return script


if __name__ == "__main__":
    b, lo = ensure_big_model(Path(sys.argv[1]) if len(sys.argv) > 1 else WORK)
    print(json.dumps({"base": str(b), "lora": str(lo), "bytes": model_bytes(b)}))
