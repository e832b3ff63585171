"""Turning a growing list of token ids into text deltas, holding back what might still become a stop string.

Decoding the whole completion each time (not token by token) keeps multi-byte characters and merged pieces
right; a trailing U+FFFD (an incomplete UTF-8 sequence) and any suffix that is a prefix of a stop string are
held back until the next token decides them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import cast

from transformers import PreTrainedTokenizerBase

__all__ = ["TextStream", "SharedTokenizer"]

_MAX_UTF8_CONTINUATION = 3


class SharedTokenizer:
    """One tokenizer used by every RPC thread and the engine thread, behind a lock.

    NOTE: a Hugging Face fast tokenizer may raise "Already borrowed" when two threads call it at once (each
    call may reset its truncation and padding state), so every use goes through here.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.eos_token_id = tokenizer.eos_token_id
        # The engine decodes every running sequence after every step; transformers' decode spends as long
        # checking its argument's type as the Rust decode takes, so a fast tokenizer without space clean-up
        # (which is all its decode adds) is asked directly.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._backend = None if backend is None or tokenizer.clean_up_tokenization_spaces else backend

    def encode(self, text: str, *, special_tokens: bool = True) -> list[int]:
        with self._lock:
            return list(self._tokenizer(text, add_special_tokens=special_tokens)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        with self._lock:
            if self._backend is not None:
                return cast(str, self._backend.decode(list(ids), skip_special_tokens=True))
            return cast(str, self._tokenizer.decode(list(ids), skip_special_tokens=True))  # one id list, one string


class TextStream:
    def __init__(self, tokenizer: SharedTokenizer, *, stop: Sequence[str]) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(stop)
        self._ids: list[int] = []
        self._emitted = 0
        self.text = ""  # the completion so far, stop string excluded once found
        self.stopped = False

    def push(self, token_id: int) -> str:
        """Add a token; return the new text that is safe to send (maybe empty). Sets `stopped` on a stop string."""
        self._ids.append(token_id)
        text = self._tokenizer.decode(self._ids)
        cut = self._first_stop(text)
        if cut is not None:
            self.stopped = True
            self.text = text[:cut]
            return self._emit(len(self.text))
        self.text = text
        safe = len(text) - self._held_back(text)
        return self._emit(safe)

    def flush(self) -> str:
        """Everything not yet sent (at the end of generation)."""
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        upto = max(upto, self._emitted)
        delta = self.text[self._emitted:upto]
        self._emitted = upto
        return delta

    def _first_stop(self, text: str) -> int | None:
        start = max(0, self._emitted - max((len(s) for s in self._stop), default=0))
        found = [i for i in (text.find(s, start) for s in self._stop) if i >= 0]
        return min(found) if found else None

    def _held_back(self, text: str) -> int:
        pending = len(text) - len(text.rstrip("\ufffd"))
        if 0 < pending <= _MAX_UTF8_CONTINUATION:  # more replacement characters cannot become one character
            return pending
        for length in range(min(len(text), max((len(s) for s in self._stop), default=0)), 0, -1):
            if any(s.startswith(text[-length:]) for s in self._stop):
                return length
        return 0
