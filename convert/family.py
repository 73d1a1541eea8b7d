"""Model families as data: what differs between the architectures lamina converts.

Each family is one ``Family`` row in its own module (``llama.py``, ``qwen2.py``):
which Hugging Face configs it claims, its llama.cpp architecture, whether q/k
rows need llama.cpp's rotary permutation, which layers carry biases and which
modules a LoRA may patch. The merge, the GGUF writer and ``lamina merge`` read
these rows; supporting a family means adding a row, not branches elsewhere.
Tensor names come from gguf-py's ``TensorNameMap`` for the family's
architecture (the table llama.cpp's own converter uses), so they never drift
from what llama.cpp loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lamina.errors import FormatError, InputError
from lamina.files import read_json_object


@dataclass(frozen=True)
class Family:
    """One architecture family, as the converter needs to know it."""

    name: str  # lamina's name, shown in messages ("LLaMA", "Qwen2")
    architectures: tuple[str, ...]  # config.json "architectures" values it claims
    model_types: tuple[str, ...]  # config.json "model_type" values it claims
    gguf_arch: str  # member of gguf.MODEL_ARCH (llama.cpp's general.architecture)
    rotary_permute: bool  # HF q/k rows -> llama.cpp's interleaved pairs (LLaMA's rope)
    bias_modules: tuple[str, ...] = ()  # linear layers that carry a bias in every checkpoint
    covers: str = ""  # the released models this row converts (docs, messages)
    #: Fused HF modules llama.cpp loads as separate tensors: (fused leaf, (part leaves)),
    #: split by rows in equal parts (Baichuan's W_pack = q, k, v).
    fused: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Vocabulary sizes whose lm_head is a NormHead (rows normalised to unit length at
    #: inference, which llama.cpp does not do): Baichuan2's 125,696.
    norm_head_vocab: tuple[int, ...] = ()

    def split(self, hf_name: str, shape: tuple[int, ...]) -> list[tuple[str, int, int]] | None:
        """(part name, first row, end row) of each part of a fused tensor, or None.

        Parts are equal row blocks; ShapeMismatchError when the rows do not divide.
        """
        for fused, parts in self.fused:
            suffix = f".{fused}.weight"
            if hf_name.endswith(suffix):
                rows = shape[0]
                if rows % len(parts) or (len(shape) == 2 and rows != len(parts) * shape[1]):
                    from lamina.errors import ShapeMismatchError

                    raise ShapeMismatchError(
                        f"'{hf_name}' has shape {tuple(shape)}; a {self.name} {fused} holds "
                        f"{len(parts)} [hidden, hidden] blocks ({', '.join(parts)}).",
                        hint="The checkpoint is damaged or not a "
                             f"{self.name} model: check its files and config.json.")
                step = rows // len(parts)
                stem = hf_name[: -len(suffix)]
                return [(f"{stem}.{part}.weight", i * step, (i + 1) * step)
                        for i, part in enumerate(parts)]
        return None

    def gguf_tensor_name(self, hf_name: str, n_layer: int) -> str | None:
        """GGUF name of an HF tensor, or None for tensors llama.cpp does not load."""
        if hf_name.endswith("rotary_emb.inv_freq"):
            return None
        return _name_map(self.gguf_arch, n_layer).get_name(hf_name, try_suffixes=(".weight", ".bias"))

    def qk_heads(self, hf_name: str, hp: HParams) -> int | None:
        """Heads to permute an HF tensor's rows by (q/k weights and biases), or None."""
        if not self.rotary_permute:
            return None
        if hf_name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
            return hp.n_head
        if hf_name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
            return hp.n_head_kv
        return None

    def gguf_arch_name(self) -> str:
        import gguf

        return gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, self.gguf_arch)]


@lru_cache(maxsize=16)
def _name_map(arch: str, n_layer: int) -> Any:
    import gguf

    return gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch), n_layer)


def known_families() -> tuple[Family, ...]:
    """Every family lamina converts, one row each."""
    from lamina.convert.baichuan import BAICHUAN
    from lamina.convert.llama import LLAMA
    from lamina.convert.qwen2 import QWEN2

    return (LLAMA, QWEN2, BAICHUAN)


def family_of(cfg: dict[str, Any], folder: Path) -> Family:
    """The family a config.json describes; FormatError names the ones lamina knows."""
    arch = str((cfg.get("architectures") or [""])[0])
    model_type = str(cfg.get("model_type", ""))
    for fam in known_families():
        if model_type in fam.model_types or (not model_type and arch in fam.architectures):
            return fam
    names = ", ".join(f"{f.name} ({f.covers})" for f in known_families())
    raise FormatError(
        f"'{folder}' holds a '{model_type or '?'}' model ({arch or 'no architectures'}); "
        f"lamina converts: {names}.",
        hint="Convert a checkpoint of one of these families, or use llama.cpp's own converter.")


#: RoPE scaling types lamina writes; others fail instead of giving a silently wrong model.
ROPE_SCALINGS = ("linear", "llama3")


@dataclass
class HParams:
    """Hyper-parameters of one checkpoint, read from config.json (or Meta's params.json)."""

    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ctx: int
    rms_norm_eps: float
    rope_theta: float
    tie_embeddings: bool = False
    rope_scaling: dict[str, Any] | None = None
    family: Family | None = None  # None means LLaMA (Meta's original layout)
    n_embd_head: int | None = None  # config "head_dim" when it is not n_embd / n_head

    @property
    def head_dim(self) -> int:
        return self.n_embd_head or self.n_embd // self.n_head

    @property
    def fam(self) -> Family:
        if self.family is not None:
            return self.family
        from lamina.convert.llama import LLAMA

        return LLAMA

    @property
    def norm_head(self) -> bool:
        """Whether lm_head rows must be normalised for llama.cpp (Baichuan2's NormHead)."""
        return self.n_vocab in self.fam.norm_head_vocab

    @property
    def rope_type(self) -> str | None:
        if not self.rope_scaling:
            return None
        return str(self.rope_scaling.get("rope_type") or self.rope_scaling.get("type") or "")

    def rope_freq_factors(self) -> list[float] | None:
        """llama.cpp's ``rope_freqs`` tensor for Llama-3's rope scaling (None for others).

        llama.cpp divides each rotary frequency by its factor; the factors are
        computed from the config exactly as llama.cpp's converter does.
        """
        if self.rope_type != "llama3":
            return None
        assert self.rope_scaling is not None
        rs = self.rope_scaling
        factor = float(rs.get("factor", 8.0))
        low = float(rs.get("low_freq_factor", 1.0))
        high = float(rs.get("high_freq_factor", 4.0))
        old_ctx = float(rs.get("original_max_position_embeddings", 8192))
        low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
        dim = self.head_dim
        out = []
        for i in range(0, dim, 2):
            freq = 1.0 / (self.rope_theta ** (i / dim))
            wavelen = 2 * math.pi / freq
            if wavelen < high_wavelen:
                out.append(1.0)
            elif wavelen > low_wavelen:
                out.append(factor)
            else:
                smooth = (old_ctx / wavelen - low) / (high - low)
                out.append(1 / ((1 - smooth) / factor + smooth))
        return out

    @classmethod
    def from_hf_config(cls, folder: Path) -> HParams:
        path = folder / "config.json"
        if not path.is_file():
            raise InputError(
                f"No config.json in '{folder}'.",
                hint="A Hugging Face model folder needs config.json next to its weights.",
            )
        cfg = read_json_object(path)
        fam = family_of(cfg, folder)
        if cfg.get("mlp_bias") or (cfg.get("attention_bias") and not fam.bias_modules):
            raise FormatError(f"'{folder}' uses attention/MLP biases, which {fam.name} models "
                              "lamina converts do not have.")
        # transformers 5 moved rope settings into "rope_parameters".
        rope = cfg.get("rope_parameters") or {}
        rope_theta = cfg.get("rope_theta") or rope.get("rope_theta") or 10000.0
        rope_scaling = cfg.get("rope_scaling")
        if rope_scaling is None and rope.get("rope_type", "default") != "default":
            rope_scaling = rope
        try:
            n_head = int(cfg["num_attention_heads"])
            hp = cls(
                n_vocab=int(cfg["vocab_size"]),
                n_embd=int(cfg["hidden_size"]),
                n_ff=int(cfg["intermediate_size"]),
                n_layer=int(cfg["num_hidden_layers"]),
                n_head=n_head,
                n_head_kv=int(cfg.get("num_key_value_heads") or n_head),
                n_ctx=int(cfg.get("max_position_embeddings") or cfg.get("model_max_length")
                          or 2048),
                rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
                rope_theta=float(rope_theta),
                tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
                rope_scaling=rope_scaling,
                family=fam,
                n_embd_head=int(cfg["head_dim"]) if cfg.get("head_dim") else None,
            )
        except KeyError as exc:
            raise FormatError(f"'{path}' lacks the field {exc} needed for a {fam.name} "
                              "model.") from exc
        if hp.rope_type and hp.rope_type not in ROPE_SCALINGS:
            raise FormatError(
                f"'{path}' asks for '{hp.rope_type}' RoPE scaling, which lamina does not write.",
                hint=f"lamina writes {', '.join(ROPE_SCALINGS)} scaling; remove rope_scaling "
                     "from config.json to convert the model at its original context length.")
        return hp
