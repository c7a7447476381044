"""A character model as the scoring callback of the core's beam search (``seqdl.beam``).

The caller names its symbols (for OCR: ``"abcdefghijklmnopqrstuvwxyz "``);
each history is read as those characters, and the model's next-character
distribution is folded onto them, case-insensitively: P(a) = P('a') + P('A'),
renormalised over the symbols (what the model gives to characters that are not
symbols, such as punctuation, is spread over the rest). Histories share their
prefixes, so the recurrent state of every history scored is kept and a new
history costs one step of the model from its parent's state.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

import seqdl
from seqdl.errors import SeqdlError
from seqdl.tensor import Tensor, log_softmax_array

from .text_corpus import Vocabulary
from .text_model import CharModel, start_id


class CharModelScorer:
    """Callable ``histories -> (B, K) log probabilities`` of the next symbol, from a :class:`CharModel`."""

    def __init__(self, model: CharModel, vocab: Vocabulary, symbols: str) -> None:
        self.model = model
        self.symbols = symbols
        self.fold = np.zeros((len(vocab), len(symbols)), np.float64)
        for index, char in enumerate(vocab.chars):
            for case in {char.lower(), char.upper()} if char.isalpha() else {char}:
                if case in symbols:
                    self.fold[index, symbols.index(case)] = 1.0
        if not self.fold.any(axis=0).all():
            missing = "".join(s for s, known in zip(symbols, self.fold.any(axis=0)) if not known)
            raise SeqdlError(f"the language model's vocabulary lacks {missing!r}")
        self.ids = np.array([int(vocab.encode(s)[0]) for s in symbols])
        self.start = start_id(vocab)
        self._cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, histories: Sequence[tuple[int, ...]]) -> np.ndarray:
        missing = [h for h in dict.fromkeys(histories) if h not in self._cache]
        self._fill(missing)
        return np.stack([self._cache[h][1] for h in histories])

    def reset(self) -> None:
        """Forget the histories scored so far (call between independent texts, such as lines)."""
        self._cache.clear()

    def _fill(self, histories: list[tuple[int, ...]]) -> None:
        """Score ``histories`` in one batched model step from their parents' states (scored first if needed)."""
        if not histories:
            return
        parents = [h[:-1] for h in histories if h]
        self._fill([p for p in dict.fromkeys(parents) if p not in self._cache])
        tokens = np.array([self.ids[h[-1]] if h else self.start for h in histories], np.intp)
        shape = (self.model.config.layers, len(histories), self.model.config.hidden)
        states = [np.zeros(shape, np.float32) for _ in range(1 if self.model.config.cell == "gru" else 2)]
        for b, history in enumerate(histories):
            if history:
                for part, value in zip(states, self._cache[history[:-1]][0]):
                    part[:, b] = value
        state = Tensor(states[0]) if len(states) == 1 else tuple(Tensor(s) for s in states)
        with seqdl.no_grad():
            logits, state = self.model(tokens[None, :], state)
        probs = np.exp(log_softmax_array(logits.data[-1].astype(np.float64), axis=1)) @ self.fold
        log_probs = np.log(np.maximum(probs / probs.sum(axis=1, keepdims=True), 1e-12))
        parts = (state,) if isinstance(state, Tensor) else state
        for b, history in enumerate(histories):
            self._cache[history] = (tuple(p.data[:, b].copy() for p in parts), log_probs[b])
