"""Gene calls from per-base codon-position probabilities: start codon to in-frame stop, on both strands.

For each stop codon, every start codon (ATG, GTG, TTG) upstream of it in the
same frame with no stop in between is a candidate; its score is the sum over the
gene of (in-frame coding probability - ``threshold``), where "in-frame" means
the probability that the base sits in exactly the codon position this ORF gives
it. The best-scoring start wins (a start upstream of the model's coding signal
costs score, one inside it loses the coding bases it leaves out), less a small
prior for the rarer GTG/TTG. Genes shorter than ``min_length`` or whose mean
in-frame probability is below ``threshold`` are dropped, then overlaps longer
than ``max_overlap`` are resolved greedily by score. Everything is vectorised
over codons; only the final greedy pass loops, once per gene.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from .fasta import N, reverse_complement

STOPS = (3 * 16 + 0 * 4 + 0, 3 * 16 + 0 * 4 + 2, 3 * 16 + 2 * 4 + 0)  # TAA TAG TGA
START_PENALTY = {0 * 16 + 3 * 4 + 2: 0.0, 2 * 16 + 3 * 4 + 2: 4.0, 3 * 16 + 3 * 4 + 2: 6.0}  # ATG GTG TTG


@dataclass(frozen=True)
class CallOptions:
    threshold: float = 0.5
    min_length: int = 90
    max_overlap: int = 60


@dataclass(frozen=True)
class GeneCall:
    start: int  # 0-based half-open, stop codon included
    end: int
    strand: int  # 0: +, 1: -
    score: float
    start_codon: str

    @property
    def three_prime(self) -> int:
        return self.end - 1 if self.strand == 0 else self.start


def codons(codes: np.ndarray) -> np.ndarray:
    """Codon id (0..63) starting at each position (-1 where a base is N); length ``len(codes) - 2``."""
    c = codes.astype(np.int16)
    ids = c[:-2] * 16 + c[1:-1] * 4 + c[2:]
    ids[(c[:-2] == N) | (c[1:-1] == N) | (c[2:] == N)] = -1
    return ids


def strand_candidates(codes: np.ndarray, codon_probs: np.ndarray, options: CallOptions
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best start per stop on one strand (read 5'->3'): arrays start, end, score, start codon id."""
    length = len(codes)
    if length < 6:
        return (np.empty(0, np.int64),) * 2 + (np.empty(0),) + (np.empty(0, np.int64),)
    ids = codons(codes)
    is_stop = np.isin(ids, STOPS)
    start_ids = np.array(list(START_PENALTY))
    is_start = np.isin(ids, start_ids)
    positions = np.arange(length)
    out = ([], [], [], [])
    for frame in range(3):
        # in-frame coding probability of each base for an ORF in this frame, cumulated
        inframe = codon_probs[(positions - frame) % 3, positions] - options.threshold
        cum = np.concatenate([[0.0], np.cumsum(inframe, dtype=np.float64)])
        stops = np.flatnonzero(is_stop[frame::3]) * 3 + frame
        starts = np.flatnonzero(is_start[frame::3]) * 3 + frame
        if not stops.size or not starts.size:
            continue
        which = np.searchsorted(stops, starts)
        ok = which < len(stops)
        starts, which = starts[ok], which[ok]
        ends = stops[which] + 3
        penalty = _penalties(ids[starts])
        scores = cum[ends] - cum[starts] - penalty
        long_enough = ends - starts >= options.min_length
        starts, ends, scores, which = starts[long_enough], ends[long_enough], scores[long_enough], which[long_enough]
        if not starts.size:
            continue
        order = np.lexsort((-scores, which))  # per stop, best score first
        first = np.ones(len(order), bool)
        first[1:] = which[order][1:] != which[order][:-1]
        best = order[first]
        out[0].append(starts[best])
        out[1].append(ends[best])
        out[2].append(scores[best])
        out[3].append(ids[starts[best]])
    if not out[0]:
        return (np.empty(0, np.int64),) * 2 + (np.empty(0),) + (np.empty(0, np.int64),)
    return tuple(np.concatenate(part) for part in out)  # type: ignore[return-value]


def _penalties(start_ids: np.ndarray) -> np.ndarray:
    table = np.zeros(64)
    for codon, cost in START_PENALTY.items():
        table[codon] = cost
    return table[start_ids]


def call_genes(codes: np.ndarray, coding: np.ndarray, options: CallOptions = CallOptions(),
               keep: list[GeneCall] | None = None) -> list[GeneCall]:
    """Genes in ``codes`` given ``coding`` (2, 3, L) probabilities; ``keep``: calls already made that new ones must
    not overlap. Coordinates are relative to ``codes``."""
    length = len(codes)
    found = []
    for strand in (0, 1):
        seq = codes if strand == 0 else reverse_complement(codes)
        probs = coding[strand] if strand == 0 else coding[strand][:, ::-1]
        starts, ends, scores, ids = strand_candidates(seq, probs, options)
        mean = (scores + _penalties(ids)) / np.maximum(ends - starts, 1) + options.threshold
        good = mean >= options.threshold
        for s, e, score, codon in zip(starts[good], ends[good], scores[good], ids[good]):
            s, e = (int(s), int(e)) if strand == 0 else (length - int(e), length - int(s))
            found.append(GeneCall(s, e, strand, float(score), _codon_name(int(codon))))
    return resolve_overlaps(found, options.max_overlap, keep or [])


def _codon_name(codon: int) -> str:
    return "".join("ACGT"[(codon >> shift) & 3] for shift in (4, 2, 0))


def resolve_overlaps(calls: list[GeneCall], max_overlap: int, keep: list[GeneCall]) -> list[GeneCall]:
    """Greedy by score: a call overlapping an accepted one by more than ``max_overlap`` bases is dropped."""
    accepted: list[GeneCall] = []
    taken = sorted((c.start, c.end) for c in keep)
    for call in sorted(calls, key=lambda c: -c.score):
        if not _collides(taken, call, max_overlap):
            accepted.append(call)
            _insert(taken, (call.start, call.end))
    return sorted(accepted, key=lambda c: (c.start, c.end, c.strand))


def _collides(taken: list[tuple[int, int]], call: GeneCall, max_overlap: int) -> bool:
    i = bisect.bisect_left(taken, (call.start, call.end))
    for j in range(max(0, i - 50), min(len(taken), i + 50)):  # genes are short: neighbours suffice
        start, end = taken[j]
        if min(end, call.end) - max(start, call.start) > max_overlap:
            return True
    return False


def _insert(taken: list[tuple[int, int]], span: tuple[int, int]) -> None:
    bisect.insort(taken, span)


def call_mask(calls: list[GeneCall], length: int) -> np.ndarray:
    """(2, length) bool: bases inside a called gene, per strand."""
    mask = np.zeros((2, length), bool)
    for call in calls:
        mask[call.strand, call.start:call.end] = True
    return mask
