"""The one GGUF module: lamina's keys, the fast header check, reading and writing.

Every command that touches a GGUF goes through here, so a wrong, truncated or
foreign file ends in the same clear message wherever it is given, and writer and
readers agree on the keys:

- :func:`require_gguf`: the signature check done before anything else;
- :func:`read_header` / :func:`tensor_entries`: a streaming scan that stops as soon
  as the wanted keys are found, used on every model load (the tokenizer arrays of a
  150k vocabulary are skipped, not decoded);
- :func:`open_reader` / :func:`field_value`: gguf-py's memory-mapped reader for
  ``lamina info``, the quantizer and the quality check, validated against the size
  of the file;
- :func:`new_writer` / :func:`add_lamina_metadata`: gguf-py's writer and the keys
  lamina adds on top of llama.cpp's standard ones.

gguf-py is imported inside the functions: ``lamina chat`` pays for it only when a
header is read.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from lamina.errors import FormatError
from lamina.files import require_file

#: The four bytes every GGUF file starts with.
GGUF_MAGIC = b"GGUF"

# -------------------------------------------------------------------- keys
# Standard keys come from ``gguf.Keys``; these are lamina's own.

#: Name of the lamina chat template chosen at convert time (``alpaca2``...).
TEMPLATE_NAME = "lamina.chat_template.name"
#: JSON string: base model, LoRA adapters in merge order, diff, checksums, outtype.
PROVENANCE = "lamina.provenance"
#: lamina version that wrote the file.
WRITER_VERSION = "lamina.version"
#: llama.cpp's key for the Jinja chat template text (``gguf.Keys.Tokenizer.CHAT_TEMPLATE``;
#: kept here as a string so template detection does not import gguf-py).
CHAT_TEMPLATE_JINJA = "tokenizer.chat_template"
#: ``gguf.Keys.General.ARCHITECTURE``, read on every load.
ARCHITECTURE = "general.architecture"
#: ``gguf.Keys.LLM.CONTEXT_LENGTH``: the training context, per architecture.
CONTEXT_LENGTH = "{arch}.context_length"

_NOT_GGUF_HINT = ("lamina runs GGUF files; convert a Hugging Face or Meta checkpoint first "
                  "with `lamina convert` or `lamina build`.")
_REWRITE_HINT = "The download or conversion was probably interrupted; write the file again."


class UnknownTensorTypeError(FormatError):
    """The file is valid GGUF but holds a tensor type newer than gguf-py knows (Q2_0)."""


def has_gguf_signature(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts with the GGUF signature (no other check)."""
    with open(path, "rb") as handle:
        return handle.read(4) == GGUF_MAGIC


def require_gguf(path: str | os.PathLike[str], what: str = "model file",
                 hint: str = _NOT_GGUF_HINT) -> Path:
    """``path`` as a Path if it is an existing file with the GGUF signature."""
    p = require_file(path, what)
    if not has_gguf_signature(p):
        raise FormatError(f"The {what} '{p}' is not a GGUF file "
                          "(it does not start with the GGUF signature).", hint=hint)
    return p


# ------------------------------------------------------------ header scan


def read_header(path: str | os.PathLike[str], keys: list[str] | tuple[str, ...] = ()
                ) -> dict[str, Any]:
    """Scalar and string metadata values for ``keys``, stopping once all are found.

    Used before a load to reject foreign files with a clear message and to pick
    the default context length without a full metadata parse.
    """
    return _scan(Path(path), set(keys), with_tensors=False)[0]


class TensorEntry(NamedTuple):
    """One tensor as the GGUF header lists it (no data read)."""

    name: str
    n_dims: int
    ggml_type: int


def tensor_entries(path: str | os.PathLike[str]) -> list[TensorEntry]:
    """Name, rank and ggml type id of every tensor, read from the header alone."""
    return _scan(Path(path), set(), with_tensors=True)[1]


def context_length(path: str | os.PathLike[str]) -> int | None:
    """The model's training context (``{arch}.context_length``), if the file records it."""
    arch = read_header(path, [ARCHITECTURE]).get(ARCHITECTURE, "llama")
    key = CONTEXT_LENGTH.format(arch=arch)
    value = read_header(path, [key]).get(key)
    return int(value) if value else None


def _scan(path: Path, wanted: set[str], with_tensors: bool
          ) -> tuple[dict[str, Any], list[TensorEntry]]:
    from gguf import GGUFValueType as V

    scalar = {V.UINT8: "<B", V.INT8: "<b", V.UINT16: "<H", V.INT16: "<h", V.UINT32: "<I",
              V.INT32: "<i", V.FLOAT32: "<f", V.BOOL: "<?", V.UINT64: "<Q", V.INT64: "<q",
              V.FLOAT64: "<d"}
    formats = {int(k): v for k, v in scalar.items()}
    found: dict[str, Any] = {}
    tensors: list[TensorEntry] = []
    try:
        with open(require_gguf(path), "rb") as f:
            f.seek(4)
            version, n_tensors, n_kv = struct.unpack("<IQQ", f.read(20))
            if version < 2:
                raise FormatError(f"'{path}' is GGUF version {version}, too old for llama.cpp.",
                                  hint="Convert the model again with `lamina convert`.")
            for _ in range(n_kv):
                if wanted and wanted <= found.keys() and not with_tensors:
                    break
                key = _read_str(f).decode("utf-8", errors="replace")
                (vtype,) = struct.unpack("<I", f.read(4))
                value = _read_value(f, vtype, formats, int(V.STRING), int(V.ARRAY), path)
                if key in wanted:
                    found[key] = value.decode("utf-8", errors="replace") \
                        if isinstance(value, bytes) else value
            for _ in range(n_tensors if with_tensors else 0):
                name = _read_str(f).decode("utf-8", errors="replace")
                (n_dims,) = struct.unpack("<I", f.read(4))
                f.seek(8 * n_dims, os.SEEK_CUR)
                ttype, _offset = struct.unpack("<IQ", f.read(12))
                tensors.append(TensorEntry(name, n_dims, ttype))
    except struct.error as exc:
        raise FormatError(f"'{path}' is truncated or not a valid GGUF file.",
                          hint=_REWRITE_HINT) from exc
    return found, tensors


def _read_str(f: BinaryIO) -> bytes:
    (n,) = struct.unpack("<Q", f.read(8))
    return f.read(n)


def _read_value(f: BinaryIO, vtype: int, formats: dict[int, str], string: int, array: int,
                path: Path) -> Any:
    """One metadata value; arrays are skipped (None), since no caller needs them here."""
    if vtype in formats:
        fmt = formats[vtype]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if vtype == string:
        return _read_str(f)
    if vtype == array:
        etype, count = struct.unpack("<IQ", f.read(12))
        if etype in formats:
            f.seek(struct.calcsize(formats[etype]) * count, os.SEEK_CUR)
        else:
            for _ in range(count):
                _read_value(f, etype, formats, string, array, path)
        return None
    raise FormatError(f"'{path}' has a corrupt GGUF header (value type {vtype}).",
                      hint=_REWRITE_HINT)


# ------------------------------------------------------------ full reader


def open_reader(path: str | os.PathLike[str], what: str = "model") -> Any:
    """gguf-py's reader on ``path``, or a FormatError that says what is wrong.

    Also the gatekeeper before libllama sees a file: every tensor must end inside
    the file, so a truncated download fails here and not somewhere in llama.cpp.
    """
    import gguf

    p = require_gguf(path, f"{what} file",
                     hint="Give a .gguf file written by `lamina convert` or llama.cpp; "
                          "convert an HF/Meta checkpoint first with `lamina convert` or "
                          "`lamina build`.")
    try:
        reader = gguf.GGUFReader(str(p))
    except ValueError as exc:
        if "GGMLQuantizationType" in str(exc):
            raise UnknownTensorTypeError(
                f"'{p}' uses a tensor type that this version of gguf-py cannot read ({exc}).",
                hint="The file may still load in llama.cpp; lamina cannot inspect it.",
            ) from exc
        raise FormatError(
            f"'{p}' is truncated or corrupt: its header describes more data than the file holds.",
            hint=_REWRITE_HINT) from exc
    except (OSError, IndexError, KeyError) as exc:
        raise FormatError(f"'{p}' is a damaged GGUF file ({exc}).",
                          hint="Write the file again with `lamina convert`.") from exc
    size = p.stat().st_size
    for tensor in reader.tensors:
        if int(tensor.data_offset) + int(tensor.n_bytes) > size:
            raise FormatError(
                f"'{p}' is truncated: tensor '{tensor.name}' ends past the end of the file.",
                hint=_REWRITE_HINT)
    return reader


def field_value(reader: Any, key: str, default: Any = None) -> Any:
    """A metadata value from :func:`open_reader` as a plain Python value."""
    fld = reader.fields.get(key)
    if fld is None:
        return default
    return fld.contents()


# ----------------------------------------------------------------- writing


def new_writer(path: str | os.PathLike[str], arch: str) -> Any:
    """gguf-py's writer for a model of architecture ``arch`` (e.g. ``"llama"``)."""
    import gguf

    return gguf.GGUFWriter(str(path), arch)


def add_lamina_metadata(writer: Any, *, version: str, template_name: str | None = None,
                        provenance: dict[str, Any] | None = None) -> None:
    """lamina's own keys: the writer's version, the chosen template, the provenance."""
    if template_name:
        writer.add_string(TEMPLATE_NAME, template_name)
    writer.add_string(WRITER_VERSION, version)
    if provenance:
        writer.add_string(PROVENANCE, json.dumps(provenance, ensure_ascii=False))
