"""PEFT LoRA adapters: a validated config, a lazy tensor index, and the merge math.

Merging follows peft's ``merge_and_unload`` exactly, one base tensor at a time:
``W += scale * B @ A`` (transposed for ``fan_in_fan_out`` layers, and for
embeddings, where peft stores A as [r, vocab]), with ``scale = alpha / r`` or
``alpha / sqrt(r)`` for rank-stabilised LoRA, and per-module overrides from
``rank_pattern``/``alpha_pattern``. ``modules_to_save`` tensors replace the
base tensor wholesale (Chinese-LLaMA-Plus ships its grown embeddings that way).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamina.convert.sources import CheckpointFiles
from lamina.errors import FormatError, InputError, LaminaError, ShapeMismatchError
from lamina.files import read_json_object

#: Adapter weight files PEFT writes, in order of preference.
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")

_LORA_KEY = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)"
    r"(?:\.(?P<adapter>[^.]+))?(?:\.weight)?$"
)
_UNSUPPORTED_KEYS = ("lora_magnitude_vector", "lora_E", "hada_", "lokr_", "ia3_")


@dataclass(frozen=True)
class LoraConfig:
    """The part of adapter_config.json that decides the merge, validated on load."""

    r: int
    lora_alpha: float
    target_modules: tuple[str, ...] | str
    modules_to_save: tuple[str, ...] = ()
    fan_in_fan_out: bool = False
    use_rslora: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path) -> LoraConfig:
        if not path.is_file():
            raise InputError(
                f"No adapter_config.json in '{path.parent}'.",
                hint="A PEFT LoRA folder holds adapter_config.json and adapter_model.bin "
                "or adapter_model.safetensors.",
            )
        return cls.from_dict(read_json_object(path), source=path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: Path | str = "adapter_config.json") -> LoraConfig:
        peft_type = str(raw.get("peft_type", "LORA")).upper()
        if peft_type != "LORA":
            raise FormatError(f"'{source}' is a {peft_type} adapter; lamina merges LoRA adapters only.")
        if raw.get("use_dora"):
            raise FormatError(f"'{source}' is a DoRA adapter, which lamina cannot merge yet.",
                              hint="Merge it with peft's merge_and_unload, then convert the result.")
        if raw.get("bias", "none") not in ("none", None):
            raise FormatError(
                f"'{source}' trains biases (bias={raw['bias']!r}); lamina merges LoRA "
                "weights only.",
                hint="Merge it with peft's merge_and_unload, then convert the result.")
        try:
            r = int(raw["r"])
            alpha = float(raw.get("lora_alpha", r))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"'{source}' lacks a valid rank 'r' / 'lora_alpha' ({exc}).") from exc
        if r <= 0:
            raise FormatError(f"'{source}' has rank r={r}; it must be positive.")
        targets = raw.get("target_modules") or ()
        if not isinstance(targets, str):
            targets = tuple(str(t) for t in targets)
        return cls(
            r=r,
            lora_alpha=alpha,
            target_modules=targets,
            modules_to_save=tuple(raw.get("modules_to_save") or ()),
            fan_in_fan_out=bool(raw.get("fan_in_fan_out", False)),
            use_rslora=bool(raw.get("use_rslora", False)),
            rank_pattern={str(k): int(v) for k, v in (raw.get("rank_pattern") or {}).items()},
            alpha_pattern={str(k): float(v) for k, v in (raw.get("alpha_pattern") or {}).items()},
        )

    def scale_for(self, module: str) -> float:
        """peft's scaling for one module (its full dotted name)."""
        r = _pattern_value(self.rank_pattern, module, self.r)
        alpha = _pattern_value(self.alpha_pattern, module, self.lora_alpha)
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """The value of the first pattern key (a regex) that ends ``module``, as peft's
    ``get_pattern_key`` resolves it: the key is one group, so ``q_proj|v_proj`` works."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def transpose(weight: np.ndarray, fan_in_fan_out: bool) -> np.ndarray:
    """The one place where a LoRA delta is flipped between [in, out] and [out, in]."""
    return weight.T if fan_in_fan_out else weight


def lora_delta(a: np.ndarray, b: np.ndarray, scale: float, *, fan_in_fan_out: bool = False,
               embedding: bool = False, rows: tuple[int, int] | None = None) -> np.ndarray:
    """``scale * B @ A`` in the base weight's layout (float32), optionally only ``rows``.

    Row slices let the converter merge a huge tensor a few MB at a time; for
    transposed layouts the slice is taken on A's columns instead of B's rows.
    """
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    flipped = fan_in_fan_out or embedding
    if rows is not None:
        lo, hi = rows
        if flipped:
            a = a[:, lo:hi]
        else:
            b = b[lo:hi]
    delta = transpose(b @ a, flipped)
    delta = np.ascontiguousarray(delta)
    delta *= np.float32(scale)
    return delta


@dataclass
class LoraFactors:
    """One module's low-rank update, loaded once and applied a row slice at a time."""

    a: np.ndarray
    b: np.ndarray
    scale: float
    fan_in_fan_out: bool
    embedding: bool

    def delta(self, rows: tuple[int, int] | None = None) -> np.ndarray:
        return lora_delta(self.a, self.b, self.scale, fan_in_fan_out=self.fan_in_fan_out,
                          embedding=self.embedding, rows=rows)


@dataclass
class _Pair:
    a: str | None = None
    b: str | None = None
    embedding: bool = False


class LoraAdapter:
    """One adapter folder: its config and a name index over its tensors.

    Tensors are keyed by the *base* tensor they patch (HF names such as
    ``model.layers.0.self_attn.q_proj.weight``) and loaded only when merged.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"The LoRA folder '{self.folder}' does not exist.")
        self.config_path = self.folder / "adapter_config.json"
        self.config = LoraConfig.from_file(self.config_path)
        weight_file = next((self.folder / n for n in ADAPTER_WEIGHT_FILES
                            if (self.folder / n).is_file()), None)
        if weight_file is None:
            raise InputError(
                f"No adapter weights in '{self.folder}'.",
                hint="Expected adapter_model.safetensors or adapter_model.bin next to "
                "adapter_config.json.",
            )
        self.weight_file = weight_file
        self.files = CheckpointFiles([weight_file])
        self.pairs: dict[str, _Pair] = {}
        self.full: dict[str, str] = {}  # base name -> adapter key (modules_to_save)
        self._index()

    def _index(self) -> None:
        for key in self.files.names():
            name = _strip_prefix(key)
            if any(u in name for u in _UNSUPPORTED_KEYS):
                raise FormatError(
                    f"'{self.weight_file}' holds '{key}', a tensor kind lamina cannot merge "
                    "(DoRA/LoHa/LoKr/AdaLoRA).",
                    hint="Merge it with peft's merge_and_unload, then convert the result.")
            m = _LORA_KEY.match(name)
            if m:
                base = m["module"] + ".weight"
                pair = self.pairs.setdefault(base, _Pair())
                kind = m["kind"]
                pair.embedding = pair.embedding or kind.startswith("lora_embedding")
                if kind.endswith("A"):
                    pair.a = key
                else:
                    pair.b = key
                continue
            if ".original_module." in name:
                continue
            # modules_to_save copies, and the embedding weights peft saves alongside
            # an embedding LoRA (".base_layer."), both replace the base tensor.
            base = (name.replace(".modules_to_save.default.", ".")
                    .replace(".modules_to_save.", ".").replace(".base_layer.", "."))
            self.full[base] = key
        for base, pair in self.pairs.items():
            if pair.a is None or pair.b is None:
                raise FormatError(f"'{self.weight_file}' has only one of lora_A/lora_B for "
                                  f"'{base}'; the file is incomplete.")

    @property
    def name(self) -> str:
        return self.folder.name

    def validate_targets(self, base_names: set[str], family: str = "LLaMA",
                         model_type: str | None = None) -> None:
        """Fail early when the adapter was made for another architecture or model.

        peft records the base it was trained on (``base_model_name_or_path``);
        when that folder is at hand its config names the family, which catches
        a LoRA for another family even where the module names agree.
        """
        trained_on = _recorded_model_type(self.config_path)
        if model_type and trained_on and trained_on != model_type:
            raise ShapeMismatchError(
                f"LoRA '{self.folder}' was made for a '{trained_on}' model, but the base is a "
                f"{family} ('{model_type}') model.",
                hint="Use a LoRA trained on this base model's family.")
        if not isinstance(self.config.target_modules, str):
            leaves = {n.rsplit(".", 2)[-2] for n in base_names if n.endswith(".weight")}
            unknown = [t for t in self.config.target_modules
                       if t.rsplit(".", 1)[-1] not in leaves]
            if unknown:
                raise ShapeMismatchError(
                    f"LoRA '{self.folder}' targets modules this {family} base does not have: "
                    f"{', '.join(sorted(unknown))}.",
                    hint="The adapter was made for a different architecture; use a LoRA "
                    "trained on this base model.")
        missing = sorted(n for n in [*self.pairs, *self.full] if n not in base_names)
        if missing:
            raise ShapeMismatchError(
                f"LoRA '{self.folder}' patches tensors the base model does not have "
                f"(e.g. '{missing[0]}', {len(missing)} in all).",
                hint="The adapter was made for a different base model (other layer count?).")

    def factors(self, base_name: str) -> LoraFactors | None:
        """A, B and scale of the update to ``base_name`` (small: rank r), or None."""
        pair = self.pairs.get(base_name)
        if pair is None:
            return None
        module = base_name.removesuffix(".weight")
        a = self.files.array(pair.a)
        b = self.files.array(pair.b)
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ShapeMismatchError(
                f"LoRA '{self.folder}': A {tuple(a.shape)} and B {tuple(b.shape)} of "
                f"'{module}' do not fit together.", hint="The adapter file is corrupt.")
        return LoraFactors(a, b, self.config.scale_for(module),
                           self.config.fan_in_fan_out, pair.embedding)

    def delta_shape(self, base_name: str) -> tuple[int, int] | None:
        pair = self.pairs.get(base_name)
        if pair is None:
            return None
        a = self.files.meta(pair.a).shape
        b = self.files.meta(pair.b).shape
        out, inn = b[0], a[-1]
        if pair.embedding or self.config.fan_in_fan_out:
            return (inn, out)
        return (out, inn)

    def full_shape(self, base_name: str) -> tuple[int, ...] | None:
        key = self.full.get(base_name)
        return None if key is None else tuple(self.files.meta(key).shape)

    def full_tensor(self, base_name: str, start: int | None = None,
                    stop: int | None = None) -> np.ndarray | None:
        """A modules_to_save replacement tensor (or its rows), float32."""
        key = self.full.get(base_name)
        return None if key is None else self.files.array(key, start, stop)

    def close(self) -> None:
        self.files.close()


def _recorded_model_type(config_path: Path) -> str | None:
    """model_type of the base a LoRA was trained on, when peft's recorded folder exists."""
    raw = read_json_object(config_path).get("base_model_name_or_path")
    if not isinstance(raw, str) or not raw:
        return None
    base = Path(raw)
    if not base.is_absolute():  # a hub id, or relative to a training run's cwd: unknowable
        return None
    cfg = base / "config.json"
    try:
        model_type = read_json_object(cfg).get("model_type") if cfg.is_file() else None
    except LaminaError:
        return None
    return str(model_type) if model_type else None


def _strip_prefix(key: str) -> str:
    for prefix in ("base_model.model.", "base_model."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key
