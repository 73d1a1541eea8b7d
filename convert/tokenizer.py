"""Checkpoint tokenizers -> the GGUF vocabulary llama.cpp reads.

Two kinds: SentencePiece ``tokenizer.model`` (LLaMA 1/2, Chinese-LLaMA), read
here, and byte-level BPE ``tokenizer.json`` (Qwen2, Llama-3), read by
``convert.bpe``. The GGUF holds the whole tokenizer (pieces, scores or merges,
token types, special ids, add_bos/add_eos, the pre-tokenizer, the checkpoint's
own chat template) so the file is self-contained: nothing else is needed to run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lamina.errors import FormatError, InputError
from lamina.files import read_json_object

#: The tokenizer files lamina reads, in the order it looks for them in a folder.
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")


@dataclass
class GGUFVocab:
    tokens: list[bytes]
    scores: list[float] | None  # SentencePiece only; BPE ranks live in ``merges``
    types: list[int]  # gguf.TokenType values
    bos_id: int | None
    eos_id: int | None
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    add_eos: bool
    source: Path
    model: str = "llama"  # tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (BPE)
    pre: str = "default"  # tokenizer.ggml.pre: llama.cpp's pre-tokenizer name
    merges: list[str] = field(default_factory=list)
    add_space_prefix: bool = True
    chat_template: str | None = None  # the checkpoint's own Jinja template, if any

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def kind(self) -> str:
        return "bpe" if self.model == "gpt2" else "spm"


def find_tokenizer(folder: Path) -> Path | None:
    """The tokenizer file of a folder (SentencePiece first, as llama.cpp tries), or None."""
    for name in TOKENIZER_FILES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def load_vocab(path: Path, config_dir: Path | None = None) -> GGUFVocab:
    """Read ``tokenizer.model`` or ``tokenizer.json`` (by name) into GGUF vocab arrays.

    ``config_dir`` is the model folder whose config.json gives special ids the
    tokenizer files leave out (Qwen2's BOS).
    """
    if path.name.endswith(".json"):
        from lamina.convert.bpe import load_bpe_vocab

        return load_bpe_vocab(path, config_dir)
    return load_spm_vocab(path)


def vocab_size(path: Path) -> int:
    """Number of tokens of a tokenizer file (cheaper than ``load_vocab(...).size``)."""
    if path.name.endswith(".json"):
        from lamina.convert.bpe import bpe_vocab_size

        return bpe_vocab_size(path)
    import sentencepiece as spm

    return int(spm.SentencePieceProcessor(model_file=str(path)).vocab_size())


def load_spm_vocab(tokenizer_model: Path, config_dir: Path | None = None) -> GGUFVocab:
    """Read a SentencePiece model into GGUF vocab arrays.

    ``config_dir`` may hold tokenizer_config.json (add_bos_token/add_eos_token).
    The model's ``add_dummy_prefix`` becomes ``add_space_prefix``: a tokenizer
    trained without it must not get a leading space in llama.cpp either.
    """
    import gguf
    import sentencepiece as spm

    if not tokenizer_model.is_file():
        raise InputError(
            f"No tokenizer.model found at '{tokenizer_model}'.",
            hint="Pass the folder that holds the SentencePiece tokenizer with --tokenizer.",
        )
    try:
        sp = spm.SentencePieceProcessor(model_file=str(tokenizer_model))
    except Exception as exc:  # sentencepiece raises RuntimeError/OSError variants
        raise FormatError(
            f"'{tokenizer_model}' is not a valid SentencePiece model ({exc}).",
            hint="LLaMA-family tokenizers are SentencePiece 'tokenizer.model' files; for "
                 "Llama-3 and Qwen, remove it and keep tokenizer.json.",
        ) from exc

    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[int] = []
    for i in range(sp.vocab_size()):
        piece = sp.id_to_piece(i)
        tokens.append(piece.encode("utf-8"))
        scores.append(float(sp.get_score(i)))
        if sp.is_unknown(i):
            types.append(int(gguf.TokenType.UNKNOWN))
        elif sp.is_control(i):
            types.append(int(gguf.TokenType.CONTROL))
        elif sp.is_unused(i):
            types.append(int(gguf.TokenType.UNUSED))
        elif sp.is_byte(i):
            types.append(int(gguf.TokenType.BYTE))
        else:
            types.append(int(gguf.TokenType.NORMAL))

    add_bos, add_eos = True, False
    cfg_dir = config_dir or tokenizer_model.parent
    cfg_path = cfg_dir / "tokenizer_config.json"
    template = None
    if cfg_path.is_file():
        cfg = read_json_object(cfg_path)
        add_bos = bool(cfg.get("add_bos_token", add_bos))
        add_eos = bool(cfg.get("add_eos_token", add_eos))
    template = checkpoint_chat_template(cfg_dir)

    pad, unk = sp.pad_id(), sp.unk_id()
    return GGUFVocab(
        tokens=tokens,
        scores=scores,
        types=types,
        bos_id=sp.bos_id() if sp.bos_id() >= 0 else None,
        eos_id=sp.eos_id() if sp.eos_id() >= 0 else None,
        unk_id=unk if unk >= 0 else None,
        pad_id=pad if pad >= 0 else None,
        add_bos=add_bos,
        add_eos=add_eos,
        source=tokenizer_model,
        add_space_prefix=_spm_dummy_prefix(tokenizer_model),
        chat_template=template,
    )


def write_hf_tokenizer_files(folder: Path, tokenizer_model: Path) -> None:
    """Copy tokenizer.model and write the small JSON files HF LLaMA folders carry.

    Used when a merged folder's source has no tokenizer_config.json or
    special_tokens_map.json of its own (Meta downloads carry only tokenizer.model),
    so that transformers can load the result.
    """
    import json
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer_model.resolve() != (folder / "tokenizer.model").resolve():
        shutil.copyfile(tokenizer_model, folder / "tokenizer.model")
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2)
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "add_bos_token": True,
                "add_eos_token": False,
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "model_max_length": 1024,
            },
            indent=2,
        )
    )
def _spm_dummy_prefix(tokenizer_model: Path) -> bool:
    from sentencepiece import sentencepiece_model_pb2 as sp_pb2

    proto = sp_pb2.ModelProto()
    proto.ParseFromString(tokenizer_model.read_bytes())
    return bool(proto.normalizer_spec.add_dummy_prefix)


def checkpoint_chat_template(folder: Path) -> str | None:
    """The Jinja chat template a tokenizer folder ships, as transformers finds it.

    ``chat_template.jinja`` (transformers >= 4.43 writes it) wins over the
    ``chat_template`` field of tokenizer_config.json; a list of named templates
    yields the one named "default".
    """
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    cfg_path = folder / "tokenizer_config.json"
    if not cfg_path.is_file():
        return None
    value = read_json_object(cfg_path).get("chat_template")
    if isinstance(value, list):
        value = next((t.get("template") for t in value
                      if isinstance(t, dict) and t.get("name") == "default"), None)
    return value if isinstance(value, str) and value.strip() else None
