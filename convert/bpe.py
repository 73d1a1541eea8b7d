"""Byte-level BPE ``tokenizer.json`` (Qwen2, Llama-3) -> the GGUF vocabulary.

Read straight from the JSON (no transformers): tokens and merges from the BPE
model, token types from ``added_tokens`` (special -> CONTROL, others ->
USER_DEFINED, as llama.cpp's converter types them), special ids from
tokenizer_config.json and then config.json, add_bos/add_eos from
tokenizer_config.json or else the post-processor's template.

llama.cpp does not run the tokenizer's own pre-tokenizer; it runs one of its
built-in ones, named by ``tokenizer.ggml.pre``. llama.cpp's converter picks
that name by hashing the tokenizer's output on a fixed text, and stops on any
tokenizer not in its list. lamina picks it from the pre-tokenizer itself: the
Split regex, compared with the regexes llama.cpp implements, and the ByteLevel
settings. An unknown regex is an error that names it: a wrong guess would
give a model that silently splits text differently from how it was trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lamina.convert.tokenizer import GGUFVocab, checkpoint_chat_template
from lamina.errors import FormatError
from lamina.files import read_json_object

#: Split regexes as tokenizer.json writes them -> llama.cpp's pre-tokenizer name.
#: Each regex is the "original regex from tokenizer.json" that llama.cpp's
#: llama-vocab.cpp names for that pre-tokenizer type.
PRE_TOKENIZERS: dict[str, str] = {
    # Qwen1.5, Qwen2, Qwen2.5 (digits one at a time)
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
    # Llama-3, 3.1, 3.2 (digits in groups of up to three)
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
}

#: Normalizers llama.cpp's BPE path is equivalent to on ordinary (NFC) text.
_NORMALIZERS = (None, "NFC")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"'{path}' is not a valid tokenizer.json ({exc}).",
                          hint="Download the tokenizer files of the model again.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise FormatError(f"'{path}' is not a tokenizer.json (no 'model' object).")
    return data


def _token_ids(data: dict[str, Any]) -> dict[str, int]:
    ids = {str(k): int(v) for k, v in (data["model"].get("vocab") or {}).items()}
    for tok in data.get("added_tokens") or []:
        ids[str(tok["content"])] = int(tok["id"])
    return ids


def bpe_vocab_size(path: Path) -> int:
    ids = _token_ids(_read(path))
    return max(ids.values()) + 1 if ids else 0


def pre_tokenizer_name(data: dict[str, Any], path: Path) -> str:
    """llama.cpp's ``tokenizer.ggml.pre`` for a tokenizer.json, from its pre-tokenizer."""
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    splits = [s for s in steps if s.get("type") == "Split"]
    levels = [s for s in steps if s.get("type") == "ByteLevel"]
    others = [s.get("type") for s in steps if s.get("type") not in ("Split", "ByteLevel")]
    if not levels or others or len(splits) != 1 or steps[-1].get("type") != "ByteLevel":
        kinds = ", ".join(str(s.get("type")) for s in steps) or "none"
        raise FormatError(
            f"'{path}' has a pre-tokenizer lamina does not know ({kinds}).",
            hint="lamina converts byte-level BPE tokenizers whose pre-tokenizer is one Split "
                 "regex followed by ByteLevel (Qwen2, Llama-3).")
    split, level = splits[0], levels[0]
    regex = (split.get("pattern") or {}).get("Regex")
    if level.get("add_prefix_space") or level.get("use_regex", True) or regex is None \
            or split.get("invert") or str(split.get("behavior", "")).lower() != "isolated":
        raise FormatError(
            f"'{path}' has ByteLevel/Split settings llama.cpp has no pre-tokenizer for "
            f"(add_prefix_space={level.get('add_prefix_space')}, use_regex="
            f"{level.get('use_regex', True)}, behavior={split.get('behavior')}).")
    name = PRE_TOKENIZERS.get(regex)
    if name is None:
        raise FormatError(
            f"'{path}' splits text with a regex llama.cpp has no pre-tokenizer for: {regex}",
            hint="lamina knows the regexes of " + ", ".join(sorted(set(PRE_TOKENIZERS.values())))
                 + "; a tokenizer with another regex cannot be run by this llama.cpp.")
    return name


def _merges(data: dict[str, Any], path: Path) -> list[str]:
    raw = data["model"].get("merges") or []
    if not raw:
        raise FormatError(f"'{path}' has no BPE merges.",
                          hint="The file is incomplete: download tokenizer.json again.")
    # tokenizers >= 0.20 writes [left, right] pairs, older versions "left right".
    return [m if isinstance(m, str) else " ".join(m) for m in raw]


def _content(entry: Any) -> str | None:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("content"), str):
        return entry["content"]
    return None


def _looks_special(text: str) -> bool:
    """Added tokens llama.cpp's converter types CONTROL even when not marked special."""
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def _template_adds(data: dict[str, Any], bos: str | None, eos: str | None) -> tuple[bool, bool]:
    """(add_bos, add_eos) as the post-processor's single-sequence template adds them."""
    post = data.get("post_processor") or {}
    for proc in post.get("processors", [post]):
        if proc.get("type") != "TemplateProcessing":
            continue
        single = proc.get("single") or []
        specials = [p["SpecialToken"]["id"] for p in single if "SpecialToken" in p]
        first = single[0].get("SpecialToken", {}).get("id") if single else None
        last = single[-1].get("SpecialToken", {}).get("id") if single else None
        return (first is not None and first == bos and bos in specials,
                last is not None and last == eos and eos in specials)
    return False, False


def load_bpe_vocab(path: Path, config_dir: Path | None = None) -> GGUFVocab:
    """Read a byte-level BPE tokenizer.json (+ tokenizer_config.json, config.json)."""
    import gguf

    data = _read(path)
    model = data["model"]
    if model.get("type") not in (None, "BPE"):
        raise FormatError(f"'{path}' is a {model.get('type')} tokenizer; lamina converts "
                          "SentencePiece (tokenizer.model) and byte-level BPE tokenizers.")
    if model.get("byte_fallback"):
        raise FormatError(
            f"'{path}' is a SentencePiece-style BPE (byte fallback), not a byte-level one.",
            hint="Put the model's SentencePiece tokenizer.model next to it; lamina reads that.")
    normalizer = (data.get("normalizer") or {}).get("type")
    if normalizer not in _NORMALIZERS:
        raise FormatError(f"'{path}' normalizes text with {normalizer}, which llama.cpp's BPE "
                          "tokenizer does not do.")
    pre = pre_tokenizer_name(data, path)
    merges = _merges(data, path)
    ids = _token_ids(data)
    n = max(ids.values()) + 1
    added = {str(t["content"]): t for t in data.get("added_tokens") or []}
    tokens: list[bytes] = [f"[PAD{i}]".encode() for i in range(n)]
    types = [int(gguf.TokenType.UNUSED)] * n
    for text, i in ids.items():
        tokens[i] = text.encode("utf-8")
        tok = added.get(text)
        if tok is None:
            types[i] = int(gguf.TokenType.NORMAL)
        elif tok.get("special") or _looks_special(text):
            types[i] = int(gguf.TokenType.CONTROL)
        else:
            types[i] = int(gguf.TokenType.USER_DEFINED)

    folder = path.parent
    tcfg_path = folder / "tokenizer_config.json"
    tcfg = read_json_object(tcfg_path) if tcfg_path.is_file() else {}
    special: dict[str, int | None] = {}
    for typ in ("bos", "eos", "unk", "pad"):
        text = _content(tcfg.get(f"{typ}_token"))
        special[typ] = ids.get(text) if text is not None else None
    for cfg_dir in dict.fromkeys([folder, config_dir or folder]):
        cfg_path = cfg_dir / "config.json"
        if cfg_path.is_file():
            cfg = read_json_object(cfg_path)
            for typ in special:
                value = cfg.get(f"{typ}_token_id")
                if special[typ] is None and isinstance(value, int) and 0 <= value < n:
                    special[typ] = value
    id_text = {i: t for t, i in ids.items()}
    bos_text = id_text.get(special["bos"]) if special["bos"] is not None else None
    eos_text = id_text.get(special["eos"]) if special["eos"] is not None else None
    add_bos, add_eos = _template_adds(data, bos_text, eos_text)
    if isinstance(tcfg.get("add_bos_token"), bool):
        add_bos = tcfg["add_bos_token"]
    if isinstance(tcfg.get("add_eos_token"), bool):
        add_eos = tcfg["add_eos_token"]
    return GGUFVocab(
        tokens=tokens, scores=None, types=types,
        bos_id=special["bos"], eos_id=special["eos"], unk_id=special["unk"],
        pad_id=special["pad"], add_bos=add_bos, add_eos=add_eos, source=path,
        model="gpt2", pre=pre, merges=merges, add_space_prefix=False,
        chat_template=checkpoint_chat_template(folder),
    )
