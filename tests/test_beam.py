"""The core beam search: posteriors and a scoring callback, nothing about what the symbols mean."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from seqdl.beam import Arc, beam_search, chain


def _log_posteriors(rng: np.random.Generator, steps: int, symbols: int) -> np.ndarray:
    p = rng.dirichlet(np.full(symbols, 0.5), size=steps)
    return np.log(p)


def test_uniform_scorer_returns_the_argmax() -> None:
    rng = np.random.default_rng(0)
    log_probs = _log_posteriors(rng, 12, 27)
    uniform = lambda histories: np.full((len(histories), 27), -np.log(27))   # noqa: E731
    for scorer, weight in ((None, 0.0), (uniform, 1.0), (uniform, 3.0)):
        best = beam_search(13, chain(log_probs), scorer, weight, width=4)[0]
        assert best.symbols == tuple(int(s) for s in log_probs.argmax(axis=1))
        assert best.score == pytest.approx(log_probs.max(axis=1).sum())


def test_scorer_changes_the_reading_by_brute_force() -> None:
    """With a scorer the best path is the brute-force best sequence (small enough to enumerate)."""
    rng = np.random.default_rng(1)
    steps, k, weight = 4, 3, 0.7
    log_probs = _log_posteriors(rng, steps, k)
    table = np.log(rng.dirichlet(np.ones(k), size=k + 1))     # bigram: row = previous symbol (k = start)

    def bigram(histories):
        return np.stack([table[h[-1] if h else k] for h in histories])

    def total(seq):
        prev, score = k, 0.0
        for t, s in enumerate(seq):
            score += log_probs[t, s] + weight * (table[prev, s] + np.log(k))
            prev = s
        return score

    brute = max(itertools.product(range(k), repeat=steps), key=total)
    best = beam_search(steps + 1, chain(log_probs), bigram, weight, width=k ** steps)[0]
    assert best.symbols == brute
    assert best.score == pytest.approx(total(brute))


def test_lattice_picks_the_better_segmentation() -> None:
    """Two ways through: one wide arc, or two narrow ones; the search takes the more probable and says which arcs."""
    sure, unsure = np.log([0.9, 0.05, 0.05]), np.log([0.4, 0.3, 0.3])
    arcs = [Arc(0, 2, unsure), Arc(0, 1, sure), Arc(1, 2, sure[::-1].copy())]
    best = beam_search(3, arcs)[0]
    assert best.arcs == (1, 2) and best.symbols == (0, 2)
    penalised = [arcs[0], Arc(0, 1, sure, bonus=-5.0), arcs[2]]
    assert beam_search(3, penalised)[0].arcs == (0,)


def test_without_a_scorer_the_best_segmentation_is_exact() -> None:
    """On random lattices of alternative segmentations, the scorer-free search (a Viterbi) finds the path that
    a search wide enough to keep every hypothesis finds, with the same score."""
    rng = np.random.default_rng(2)
    uniform = lambda histories: np.full((len(histories), 4), -np.log(4))   # noqa: E731
    for _ in range(20):
        n = 7
        arcs = [Arc(a, b, np.log(rng.dirichlet(np.full(4, 0.5))), float(rng.normal()))
                for a in range(n - 1) for b in range(a + 1, min(n, a + 4)) if b == a + 1 or rng.random() < 0.6]
        exact = beam_search(n, arcs)
        wide = beam_search(n, arcs, uniform, weight=1.0, width=4 ** n)[0]
        assert len(exact) == 1
        assert exact[0].score == pytest.approx(wide.score)
        assert exact[0].arcs == wide.arcs and exact[0].symbols == wide.symbols


def test_fixed_arcs_and_impossible_symbols() -> None:
    """An arc with one finite symbol (a space) is always read as that symbol."""
    space = np.array([-np.inf, -np.inf, 0.0])
    letter = np.log([0.6, 0.4, 1e-300])
    best = beam_search(4, [Arc(0, 1, letter), Arc(1, 2, space), Arc(2, 3, letter)])[0]
    assert best.symbols == (0, 2, 0)


def test_bad_lattices() -> None:
    with pytest.raises(ValueError):
        beam_search(2, [Arc(1, 0, np.zeros(2))])
    with pytest.raises(ValueError):
        beam_search(0, [])
    assert beam_search(3, [Arc(0, 1, np.zeros(2))]) == []       # node 2 cannot be reached
