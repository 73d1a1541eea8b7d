"""Turning a stream of token bytes into safe text pieces.

Two problems the seed tools show (the "�" in streamed Chinese) come from
emitting text too early:

* one Chinese character is 3 UTF-8 bytes, and SentencePiece byte-fallback
  tokens carry one byte each, so a token boundary can cut a character in half;
  :class:`TextStream` keeps incomplete bytes until the character is whole;
* a stop string ("### Instruction:") arrives over several tokens, so text that
  could still be the start of a stop string is held back until it is clear.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class TextStream:
    """Feed token bytes, get back text that is safe to show.

    ``push`` returns the newly releasable text ('' when everything is held
    back); ``stopped`` turns true once a stop string was seen, and the text
    before it has then been released; ``finish`` flushes what was held.
    """

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._hold = max((len(s) for s in self._stop), default=1) - 1
        self._pending = ""
        self.stopped = False
        self.text = ""  # everything released so far

    def push(self, data: bytes) -> str:
        return "" if self.stopped else self.push_text(self._decoder.decode(data))

    def push_text(self, text: str) -> str:
        """Like :meth:`push`, for text already decoded whole (the native engine's
        pieces: it keeps an unfinished character itself, and drops it at the end
        as :meth:`finish` does)."""
        if self.stopped:
            return ""
        self._pending += text
        return self._release(final=False)

    def finish(self) -> str:
        """Release everything still held (the answer ended).

        Bytes of a character that was cut off (the token limit hit in the
        middle of it) are dropped rather than shown as a replacement mark.
        """
        if self.stopped:
            return ""
        self._decoder.reset()
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        if not self._stop:
            out, self._pending = self._pending, ""
            self.text += out
            return out
        cut = -1
        for s in self._stop:
            i = self._pending.find(s)
            if i != -1 and (cut == -1 or i < cut):
                cut = i
        if cut != -1:
            out = self._pending[:cut]
            self._pending = ""
            self.stopped = True
        elif final:
            out, self._pending = self._pending, ""
        else:
            keep = self._partial_stop_len()
            out = self._pending[: len(self._pending) - keep]
            self._pending = self._pending[len(self._pending) - keep:]
        self.text += out
        return out

    def _partial_stop_len(self) -> int:
        """Length of the longest tail of pending text that starts a stop string."""
        tail = self._pending[-self._hold:] if self._hold else ""
        for n in range(len(tail), 0, -1):
            piece = tail[-n:]
            if any(s.startswith(piece) for s in self._stop):
                return n
        return 0
