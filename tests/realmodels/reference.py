"""The reference every real-model test compares with: a plain llama-cpp-python
low-level greedy loop, written from llama.cpp's API and nothing of lamina.

Tokenize with llama.cpp's own rule (``llama_tokenize`` with ``add_special``,
which adds BOS/EOS as the file's ``tokenizer.ggml.add_bos_token`` says), drop
a BOS the text already renders (as llama.cpp's chat formatting does), eval the
prompt in ``n_batch`` chunks, then argmax one token at a time until an
end-of-generation token. Loaded with the two kernel settings lamina pins (no
weight repacking, GGML_CPU_TILED_MM=0; see lamina.runtime.model), which is
llama.cpp run with ``--no-repack`` and that variable.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Reference:
    """One model loaded the plain way; :meth:`greedy` runs the loop on a fresh context."""

    path: Path
    n_ctx: int = 4096
    n_batch: int = 512
    n_threads: int = 2

    def __post_init__(self) -> None:
        import llama_cpp as lib

        self.lib = lib
        lib.llama_backend_init()
        mp = lib.llama_model_default_params()
        mp.use_extra_bufts = False
        self.model = lib.llama_model_load_from_file(str(self.path).encode(), mp)
        assert self.model, f"llama.cpp could not load {self.path}"
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(lib.llama_vocab_get_add_bos(self.vocab))
        bos = lib.llama_vocab_bos(self.vocab)
        buf = ctypes.create_string_buffer(64)
        n = lib.llama_token_to_piece(self.vocab, bos, buf, 64, 0, True)
        self.bos_text = buf.raw[:max(n, 0)].decode("utf-8", "replace") if bos >= 0 else ""

    def tokenize(self, text: str) -> list[int]:
        """llama.cpp's tokenizer with its own BOS/EOS rule and special-token parsing."""
        if self.add_bos and self.bos_text and text.startswith(self.bos_text):
            text = text[len(self.bos_text):]  # llama.cpp's chat formatting strips it
        data = text.encode("utf-8")
        arr = (self.lib.llama_token * (len(data) + 8))()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), arr, len(arr), True, True)
        assert n >= 0
        return list(arr[:n])

    def detokenize(self, tokens: list[int]) -> str:
        buf = ctypes.create_string_buffer(256)
        out = b""
        for t in tokens:
            n = self.lib.llama_token_to_piece(self.vocab, t, buf, 256, 0, False)
            out += buf.raw[:n]
        # An answer cut at max_tokens can end inside a character; lamina, like a
        # streaming UI must, leaves that partial character out instead of showing "�".
        cut = len(out)
        for back in range(1, min(4, len(out)) + 1):
            byte = out[-back]
            if byte & 0xC0 != 0x80:  # the lead byte of the last character
                need = 4 if byte >= 0xF0 else 3 if byte >= 0xE0 else 2 if byte >= 0xC0 else 1
                if back < need:
                    cut = len(out) - back
                break
        return out[:cut].decode("utf-8", "replace")

    def greedy(self, prompt: list[int], max_tokens: int, *, presence: float = 0.0,
               frequency: float = 0.0, repeat: float = 1.0,
               grammar: str | None = None, last_n: int = 64) -> list[int]:
        """Greedy continuation of ``prompt`` (token ids), EOG not included.

        The penalties are applied here in numpy, by their published definitions:
        OpenAI's ``logit - count * frequency - (count > 0) * presence`` and the CTRL
        repetition penalty as llama.cpp applies it (divide a positive logit, multiply
        a negative one), ``count`` being how often the token occurs among the last
        ``last_n`` generated ones (llama.cpp's penalty window).
        ``grammar`` (GBNF) masks the tokens llama.cpp's grammar sampler rejects.
        """
        lib = self.lib
        cp = lib.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = self.n_ctx, self.n_batch, self.n_batch
        cp.n_threads = cp.n_threads_batch = self.n_threads
        cp.flash_attn_type = 0
        ctx = lib.llama_init_from_model(self.model, cp)
        gram = None
        if grammar is not None:
            gram = lib.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
            assert gram, "llama.cpp rejected the grammar"
        try:
            pos, logits = 0, None
            for start in range(0, len(prompt), self.n_batch):
                chunk = prompt[start:start + self.n_batch]
                logits = self._decode(ctx, chunk, pos)
                pos += len(chunk)
            out: list[int] = []
            while len(out) < max_tokens and pos < self.n_ctx:
                for tok, count in zip(*np.unique(out[-last_n:], return_counts=True), strict=True):
                    x = logits[tok]
                    x = x * np.float32(repeat) if x <= 0 else x / np.float32(repeat)
                    logits[tok] = x - (np.float32(count) * np.float32(frequency)
                                       + np.float32(presence))
                if gram is not None:
                    logits = self._mask(gram, logits)
                tok = int(np.argmax(logits))
                if gram is not None:
                    lib.llama_sampler_accept(gram, tok)
                if lib.llama_vocab_is_eog(self.vocab, tok):
                    break
                out.append(tok)
                if len(out) == max_tokens:
                    break
                logits = self._decode(ctx, [tok], pos)
                pos += 1
            return out
        finally:
            if gram is not None:
                lib.llama_sampler_free(gram)
            lib.llama_free(ctx)

    def mean_embedding(self, text: str) -> np.ndarray:
        """Mean of the per-token output embeddings of ``text`` (BOS as the file says),
        L2-normalised: mean pooling done here, from a context that pools nothing."""
        lib = self.lib
        tokens = self.tokenize(text)
        cp = lib.llama_context_default_params()
        cp.n_ctx = cp.n_batch = cp.n_ubatch = max(64, len(tokens))
        cp.n_threads = cp.n_threads_batch = self.n_threads
        cp.embeddings = True
        cp.flash_attn_type = 0
        cp.pooling_type = lib.LLAMA_POOLING_TYPE_NONE
        ctx = lib.llama_init_from_model(self.model, cp)
        batch = lib.llama_batch_init(len(tokens), 0, 1)
        try:
            for i, t in enumerate(tokens):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, i, 1
                batch.seq_id[i][0], batch.logits[i] = 0, True
            batch.n_tokens = len(tokens)
            assert lib.llama_decode(ctx, batch) == 0
            n_embd = lib.llama_model_n_embd(self.model)
            rows = np.stack([np.ctypeslib.as_array(lib.llama_get_embeddings_ith(ctx, i),
                                                   shape=(n_embd,)) for i in range(len(tokens))])
            mean = rows.astype(np.float64).mean(axis=0)
            return mean / np.linalg.norm(mean)
        finally:
            lib.llama_batch_free(batch)
            lib.llama_free(ctx)

    def _mask(self, gram: object, logits: np.ndarray) -> np.ndarray:
        """``logits`` with -inf where the grammar sampler rejects the token."""
        lib = self.lib
        data = (lib.llama_token_data * self.n_vocab)()
        for i, x in enumerate(logits.tolist()):
            data[i].id, data[i].logit = i, x
        cur = lib.llama_token_data_array(data, self.n_vocab, -1, False)
        lib.llama_sampler_apply(gram, ctypes.byref(cur))
        out = logits.copy()
        out[[data[j].id for j in range(cur.size) if data[j].logit == -np.inf]] = -np.inf
        return out

    def _decode(self, ctx: object, tokens: list[int], pos: int) -> np.ndarray:
        lib = self.lib
        batch = lib.llama_batch_init(len(tokens), 0, 1)
        try:
            for i, t in enumerate(tokens):
                batch.token[i] = t
                batch.pos[i] = pos + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = i == len(tokens) - 1
            batch.n_tokens = len(tokens)
            assert lib.llama_decode(ctx, batch) == 0
            row = lib.llama_get_logits_ith(ctx, len(tokens) - 1)
            return np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()
        finally:
            lib.llama_batch_free(batch)
