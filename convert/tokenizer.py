"""SentencePiece tokenizer -> the GGUF vocabulary llama.cpp's SPM tokenizer reads.

The GGUF holds the whole tokenizer (pieces, scores, token types, special ids,
add_bos/add_eos) so the file is self-contained: nothing else is needed to run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lamina.errors import FormatError, InputError
from lamina.files import read_json_object


@dataclass
class GGUFVocab:
    tokens: list[bytes]
    scores: list[float]
    types: list[int]  # gguf.TokenType values
    bos_id: int
    eos_id: int
    unk_id: int
    pad_id: int | None
    add_bos: bool
    add_eos: bool
    source: Path

    @property
    def size(self) -> int:
        return len(self.tokens)


def find_tokenizer_model(folder: Path) -> Path | None:
    """tokenizer.model in a folder, or None."""
    candidate = folder / "tokenizer.model"
    return candidate if candidate.is_file() else None


def load_spm_vocab(tokenizer_model: Path, config_dir: Path | None = None) -> GGUFVocab:
    """Read a SentencePiece model into GGUF vocab arrays.

    ``config_dir`` may hold tokenizer_config.json (add_bos_token/add_eos_token).
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
            hint="LLaMA-family tokenizers are SentencePiece 'tokenizer.model' files.",
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
    if cfg_path.is_file():
        cfg = read_json_object(cfg_path)
        add_bos = bool(cfg.get("add_bos_token", add_bos))
        add_eos = bool(cfg.get("add_eos_token", add_eos))

    pad = sp.pad_id()
    return GGUFVocab(
        tokens=tokens,
        scores=scores,
        types=types,
        bos_id=sp.bos_id(),
        eos_id=sp.eos_id(),
        unk_id=sp.unk_id(),
        pad_id=pad if pad >= 0 else None,
        add_bos=add_bos,
        add_eos=add_eos,
        source=tokenizer_model,
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
