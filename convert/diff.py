"""Weight diffs (KnowLM/CaMA style): tuned = base + diff, tensor by tensor.

A diff folder is an HF-format folder whose tensors are ``tuned - base``. It may
ship ``tensor_sha256.json`` ({tensor name: SHA-256 of the recovered tensor's
float32 little-endian bytes}, see ``plan.tensor_sha256``); each recovered tensor
is then checked as it is produced, so a wrong base or a corrupt diff stops the
conversion with a clear message instead of writing a silently broken model.
Recovery adds in float32, which is exact and deterministic, so the checksums
are reproducible on any machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lamina.convert.sources import DTYPE_BYTES, CheckpointFiles, hf_weight_files
from lamina.errors import InputError, ShapeMismatchError
from lamina.files import read_json_object

#: File a diff may ship with per-tensor checksums of the *recovered* weights.
TENSOR_CHECKSUMS = "tensor_sha256.json"


class WeightDiff:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"The diff folder '{self.folder}' does not exist.")
        self.files = CheckpointFiles(hf_weight_files(self.folder))
        self.checksums: dict[str, str] = {}
        path = self.folder / TENSOR_CHECKSUMS
        if path.is_file():
            raw = read_json_object(path, "an object mapping tensor names to SHA-256 strings")
            self.checksums = {str(k): str(v).lower() for k, v in raw.items()}
        self.checked = 0

    def validate(self, base_names: set[str]) -> None:
        """Every base tensor needs a same-named diff tensor, and nothing more."""
        missing = sorted(base_names - set(self.files.names()))
        if missing:
            raise ShapeMismatchError(
                f"The diff '{self.folder}' has no tensor for '{missing[0]}' ({len(missing)} "
                "base tensors uncovered).",
                hint="The diff was made for a different base model, or a shard is missing.")
        extra = sorted(set(self.files.names()) - base_names)
        extra = [n for n in extra if not n.endswith("rotary_emb.inv_freq")]
        if extra:
            raise ShapeMismatchError(
                f"The diff '{self.folder}' has tensors the base lacks (e.g. '{extra[0]}').",
                hint="The diff was made for a different base model.")

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.files.meta(name).shape)

    def nbytes(self, name: str) -> int:
        meta = self.files.meta(name)
        return int(np.prod(meta.shape)) * DTYPE_BYTES.get(meta.dtype, 4)

    def rows(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """The diff's rows ``start:stop`` of one tensor, float32."""
        return self.files.array(name, start, stop)

    def expected(self, name: str) -> str | None:
        return self.checksums.get(name)

    def input_files(self) -> list[Path]:
        return list(self.files.files)

    def close(self) -> None:
        self.files.close()
