"""Beam search over a lattice of symbol posteriors, helped by an optional scoring callback (a language model).

A *lattice* is a left-to-right graph: nodes ``0 .. n_nodes - 1`` and arcs from a
node to a later one, each arc carrying log posteriors over the same K symbols
(what a classifier says the piece of input under the arc is) and a bonus (a
log prior on taking the arc at all). One arc per step is the plain case of a
sequence of posteriors (:func:`chain`); several arcs leaving a node are
alternative segmentations of the input. A path's score is

    sum over its arcs of  log_probs[symbol] + bonus + weight * log(K * ((1 - mix) * p(symbol | history) + mix / K))

where p is the scorer's distribution. It is taken relative to a uniform
distribution (``K *``) so that it rewards likely symbols without penalising
paths for having more of them; with a uniform scorer every term is zero and the
search returns each arc's argmax along the best segmentation. ``mix`` blends the
scorer with a uniform distribution: text the scorer has never seen the like of
(random letters, names) then costs at most ``weight * log(1 / mix)`` per symbol,
so a confident posterior outvotes it while an unsure one is decided by the
scorer. The search knows nothing of what symbols mean: it sees posteriors and
calls back with histories.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Scorer = Callable[[Sequence[tuple[int, ...]]], np.ndarray]
"""Histories (symbol ids so far, one tuple per hypothesis) -> (B, K) log probabilities of the next symbol."""


@dataclass(frozen=True)
class Arc:
    start: int
    end: int
    log_probs: np.ndarray    # (K,) log posteriors; -inf where the arc cannot be that symbol
    bonus: float = 0.0       # log prior on the arc itself, whatever its symbol


@dataclass(frozen=True)
class Hypothesis:
    symbols: tuple[int, ...]
    arcs: tuple[int, ...]    # indices into the arc list, one per symbol
    score: float


def chain(log_probs: np.ndarray) -> list[Arc]:
    """A sequence of (T, K) log posteriors as a lattice of T arcs in a row (T + 1 nodes)."""
    return [Arc(t, t + 1, row) for t, row in enumerate(np.asarray(log_probs, np.float64))]


def beam_search(n_nodes: int, arcs: Sequence[Arc], scorer: Scorer | None = None, weight: float = 1.0,
                width: int = 8, mix: float = 0.0) -> list[Hypothesis]:
    """The best paths from node 0 to node ``n_nodes - 1``, best first (at most ``width``).

    Nodes are visited in order; the ``width`` best hypotheses reaching a node are
    extended along every arc leaving it by each hypothesis's ``width`` best
    symbols. Hypotheses with the same symbols reaching the same node are one (the
    better is kept). Without a scorer (or with weight 0) no history matters: the
    search is an exact Viterbi over the lattice and returns the one best path.
    """
    if n_nodes < 1:
        raise ValueError("a lattice needs at least one node")
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must be in [0, 1], not {mix}")
    leaving: list[list[int]] = [[] for _ in range(n_nodes)]
    for index, arc in enumerate(arcs):
        if not 0 <= arc.start < arc.end < n_nodes:
            raise ValueError(f"arc {index} runs from node {arc.start} to {arc.end}, outside 0..{n_nodes - 1} "
                             "or backwards")
        leaving[arc.start].append(index)
    if scorer is None or weight == 0.0:
        return _viterbi(n_nodes, arcs, leaving)
    reached: list[dict[tuple[int, ...], Hypothesis]] = [{} for _ in range(n_nodes)]
    reached[0][()] = Hypothesis((), (), 0.0)
    for node in range(n_nodes - 1):
        beam = sorted(reached[node].values(), key=lambda h: -h.score)[:width]
        reached[node] = {}
        if not beam or not leaving[node]:
            continue
        lm = np.exp(np.asarray(scorer([h.symbols for h in beam]), np.float64))
        k = lm.shape[1]
        prior = np.array([h.score for h in beam])[:, None] + weight * np.log(k * ((1 - mix) * lm + mix / k))
        for index in leaving[node]:
            arc = arcs[index]
            total = prior + arc.log_probs[None, :] + arc.bonus
            _extend(reached[arc.end], beam, total, index, width)
    final = sorted(reached[n_nodes - 1].values(), key=lambda h: -h.score)
    return final[:width] if n_nodes > 1 else [Hypothesis((), (), 0.0)]


def _viterbi(n_nodes: int, arcs: Sequence[Arc], leaving: list[list[int]]) -> list[Hypothesis]:
    """The best path when every arc's score is its own: each node keeps its best score and the arc that gave it."""
    best = np.full(n_nodes, -np.inf)
    best[0] = 0.0
    came: list[tuple[int, int] | None] = [None] * n_nodes    # (arc, symbol) of each node's best incoming step
    for node in range(n_nodes - 1):
        if not math.isfinite(best[node]):
            continue
        for index in leaving[node]:
            arc = arcs[index]
            symbol = int(np.argmax(arc.log_probs))
            score = best[node] + float(arc.log_probs[symbol]) + arc.bonus
            if score > best[arc.end]:
                best[arc.end], came[arc.end] = score, (index, symbol)
    if n_nodes == 1:
        return [Hypothesis((), (), 0.0)]
    if not math.isfinite(best[-1]):
        return []
    steps, node = [], n_nodes - 1
    while node:
        index, symbol = came[node]   # type: ignore[misc]
        steps.append((index, symbol))
        node = arcs[index].start
    steps.reverse()
    return [Hypothesis(tuple(s for _, s in steps), tuple(i for i, _ in steps), float(best[-1]))]


def _extend(into: dict[tuple[int, ...], Hypothesis], beam: list[Hypothesis], total: np.ndarray, arc: int,
            width: int) -> None:
    """Add each hypothesis's ``width`` best one-symbol extensions along ``arc`` (finite scores only)."""
    k = min(width, total.shape[1])
    best = np.argpartition(-total, k - 1, axis=1)[:, :k]
    for row, hypothesis in enumerate(beam):
        for symbol in best[row]:
            score = float(total[row, symbol])
            if not math.isfinite(score):
                continue
            symbols = hypothesis.symbols + (int(symbol),)
            known = into.get(symbols)
            if known is None or score > known.score:
                into[symbols] = Hypothesis(symbols, hypothesis.arcs + (arc,), score)
