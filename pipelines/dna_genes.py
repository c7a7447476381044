"""Gene calls from per-base codon-position probabilities: a dynamic programme over candidate genes, both strands.

In the spirit of Prodigal's (``dprog.c``), with the network in place of its hexamer statistics:

1. *Candidates.* Every start codon (ATG, GTG, TTG) with an in-frame stop downstream and
   no stop in between, at least ``min_length`` bp, on both strands.
2. *Score* of a candidate, the log-odds that it is a gene, a weighted sum of features
   (:data:`FEATURES`): the network's in-frame coding log-odds summed over the gene; the same
   summed over ``LOCAL`` bases just after the start and just before it (the coding
   signal should begin at the start, not before); the start codon's log-odds; a ribosome
   binding site score (log-odds position weights over the bases ``RBS_FROM..RBS_TO``
   upstream of the start: the Shine-Dalgarno motif at the right distance) and the
   best log-odds of a ``MOTIF``-mer anywhere in that window (the motif at any distance);
   log length and mean coding log-odds; the genome's own codon-pair statistics (Prodigal's
   coding score: the log-odds of each in-frame hexamer in genes against the genome's
   hexamers, summed over the gene, counted only when positive); plus a bias. A score is the
   log-odds of "this gene" against "no gene in this ORF".
   *Which start* is a question of its own: features that tell a gene from none (its mean
   coding probability above all) pull towards a start inside the gene, past the weaker
   coding signal of its first codons, and the start's features, asked to pick the start
   too, would veto genes whose starts look unlike the training genome's. So the starts of
   an ORF are ranked by weights of their own, on features of the start rather than of the
   whole gene (:data:`START_FEATURES`: coding evidence, the start codon, RBS and motif,
   length, and the start's distance from the ORF's first start); the ORF is scored as a
   gene at its likeliest start; and a candidate enters the programme with that score plus
   the log-odds of its start against the likeliest one (:func:`values`). Per stop, only
   the ``TOP_STARTS`` best starts go on.
3. *Dynamic programme* over the candidates sorted by right end: the best total score of a
   set of genes where neighbours overlap by at most ``SAME_OVERLAP`` bp on the same strand,
   ``OPPOSITE_OVERLAP`` bp 3' to 3' on opposite strands, and not at all 5' to 5'
   (Prodigal's limits). A loop per candidate (not per base) with prefix maxima.
4. *Self-training.* The start codon, RBS and hexamer tables are counts; after a first pass,
   the starts and codon pairs of the genes it called, and the hexamers of the whole sequence,
   are counted into them (weighted against the fitted prior) and the programme runs again,
   so each genome gets its own start model and codon usage. The network knows the codon
   usage of the genomes it was trained on; on another genome this is the evidence that
   tells a weakly predicted gene from noise (on genomes never trained on, it raised gene
   3' sensitivity and precision together).

The weights, bias and prior tables are a :class:`GeneModel`, fitted on an annotated
genome by :func:`fit_gene_model` and stored in the DNA model file (``seqdl.genes``).
Everything per base or per candidate is vectorised; only the programme loops.
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from seqdl.checkpoint import Checkpoint, load
from seqdl.errors import CheckpointError

from .fasta import N, reverse_complement

STOPS = (3 * 16 + 0 * 4 + 0, 3 * 16 + 0 * 4 + 2, 3 * 16 + 2 * 4 + 0)  # TAA TAG TGA
START_CODONS = (0 * 16 + 3 * 4 + 2, 2 * 16 + 3 * 4 + 2, 3 * 16 + 3 * 4 + 2)  # ATG GTG TTG
FEATURES = ("coding", "after", "before", "start_codon", "rbs", "motif", "log_length", "mean_coding",
            "mean_probability", "hexamer")
# The start choice's: not the gene-wide means, whose scale is the network's calibration on the genome at hand;
# log_distance = log(1 + codons from the ORF's first start).
START_FEATURES = ("coding", "after", "before", "start_codon", "rbs", "motif", "log_length", "log_distance")
_SHARED = [FEATURES.index(name) for name in START_FEATURES[:-1]]
MOTIF = 4  # length of the upstream words counted for the Shine-Dalgarno motif
HEXAMER = 6  # codon pairs: the words of the coding statistics
LOCAL = 60  # bases after / before the start whose coding signal is a feature of its own
RBS_FROM, RBS_TO = 21, 4  # the RBS window: bases -21..-5 upstream of the start codon's first base
TOP_STARTS = 3  # best starts per stop that enter the programme
SAME_OVERLAP, OPPOSITE_OVERLAP = 60, 200
EPS = 1e-3  # floor of probabilities in the log-odds (caps a base's say at about +-7 nats)
START_KIND = np.full(65, -1, np.int8)  # codon id -> 0/1/2 for ATG/GTG/TTG, -2 for a stop, else -1 (last: N)
START_KIND[list(START_CODONS)] = np.arange(3)
START_KIND[list(STOPS)] = -2
TABLES = ("start_codon", "rbs", "motif", "hexamer")  # count tables (rows: in genes / anywhere), one feature each
GENES_KEY = "seqdl.genes"  # the model file's metadata entry holding a GeneModel (JSON)


@dataclass(frozen=True)
class GeneModel:
    """Fitted decoder parameters: feature ``weights`` and ``bias``; ``counts[name]`` per table in :data:`TABLES`,
    shape (2, ...): row 0 at true starts, row 1 at every candidate start of the same ORFs (start codon (3,), base at
    each RBS window position (window, 4), ``MOTIF``-mer anywhere in the window (4**MOTIF,)), except ``hexamer``:
    row 0 the in-frame codon pairs of genes, row 1 every hexamer of the sequence, both strands (4**HEXAMER,);
    ``prior`` the weight (in genes) of these counts against a genome's own in self-training; ``gc`` the GC fraction
    of the genome it was fitted on (see :func:`dna_adapt.needs_adapt`); ``start_weights`` the start choice's (:data:`START_FEATURES`;
    empty: the score chooses the start too, as decoders stored before it did)."""

    weights: tuple[float, ...]
    bias: float
    counts: dict[str, np.ndarray] = field(compare=False)
    prior: float = 200.0
    gc: float | None = None
    start_weights: tuple[float, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"weights": self.weights, "bias": self.bias, "prior": self.prior,
                           "gc": self.gc, "start_weights": self.start_weights,
                           "counts": {name: table.tolist() for name, table in self.counts.items()}})

    @classmethod
    def from_json(cls, text: str) -> "GeneModel":
        values = json.loads(text)
        gc = values.get("gc")
        start_weights = tuple(float(w) for w in values.get("start_weights", ()))
        weights, counts = list(values["weights"]), dict(values["counts"])
        if len(weights) == len(FEATURES) - 1 and "hexamer" not in counts:  # fitted before the hexamer feature
            weights.append(0.0)
            counts["hexamer"] = np.zeros((2, 4 ** HEXAMER))
        if len(weights) != len(FEATURES):
            raise ValueError(f"{len(weights)} weights for {len(FEATURES)} features")
        if start_weights and len(start_weights) != len(START_FEATURES):
            raise ValueError(f"{len(start_weights)} start weights for {len(START_FEATURES)} features")
        return cls(tuple(float(w) for w in weights), float(values["bias"]),
                   {name: np.array(counts[name], float) for name in TABLES}, float(values["prior"]),
                   None if gc is None else float(gc), start_weights)

    def tables(self) -> dict[str, np.ndarray]:
        """Log-odds of each table's entries (true starts vs all candidates)."""
        return {name: log_odds(table) for name, table in self.counts.items()}

    def with_counts(self, counts: dict[str, np.ndarray]) -> "GeneModel":
        return replace(self, counts=counts)

    def with_bias(self, bias: float) -> "GeneModel":
        return replace(self, bias=bias)


def log_odds(counts: np.ndarray) -> np.ndarray:
    """log P(x | true start) / P(x | any candidate start), over the last axis, with add-one smoothing."""
    true, every = counts[0] + 1.0, counts[1] + 1.0
    return np.log(true / true.sum(axis=-1, keepdims=True)) - np.log(every / every.sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class CallOptions:
    min_length: int = 90
    self_train: bool = True  # refit the start tables on the genes of a first pass (step 4 above)
    min_self_train_genes: int = 20


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

    @property
    def five_prime(self) -> int:
        return self.start if self.strand == 0 else self.end - 1


def codons(codes: np.ndarray) -> np.ndarray:
    """Codon id (0..63) starting at each position (-1 where a base is N); length ``len(codes) - 2``."""
    c = codes.astype(np.int16)
    ids = c[:-2] * 16 + c[1:-1] * 4 + c[2:]
    ids[(c[:-2] == N) | (c[1:-1] == N) | (c[2:] == N)] = -1
    return ids


# ------------------------------------------------------------ candidates
@dataclass
class Candidates:
    """Every candidate gene of one strand, in that strand's 5'->3' coordinates: ``start`` (first base of the start
    codon), ``end`` (past the stop codon), ``stop`` (index of its ORF's stop among this strand's stops), ``codon``
    (0/1/2: ATG/GTG/TTG), ``upstream`` (n, RBS window) bases before the start (N beyond the sequence),
    ``kmers`` (n, window - MOTIF + 1) ids of the ``MOTIF``-mers in that window (-1 where one holds an N),
    the features that need no table (:data:`FEATURES` less the tables') and ``distance``, codons from the first
    start of the same ORF; ``hexamers`` is the strand's own: the id of the hexamer at each base (-1: none)."""

    start: np.ndarray
    end: np.ndarray
    stop: np.ndarray
    codon: np.ndarray
    upstream: np.ndarray
    kmers: np.ndarray
    fixed: np.ndarray  # (n, 6): coding, after, before, log length, mean coding, mean probability
    distance: np.ndarray
    hexamers: np.ndarray  # (strand length,)

    def __len__(self) -> int:
        return len(self.start)

    def take(self, index: np.ndarray) -> "Candidates":
        return Candidates(self.start[index], self.end[index], self.stop[index], self.codon[index],
                          self.upstream[index], self.kmers[index], self.fixed[index], self.distance[index],
                          self.hexamers)

    def features(self, tables: dict[str, np.ndarray]) -> np.ndarray:
        """(n, len(FEATURES)) for the given log-odds tables."""
        width = self.upstream.shape[1]
        with_n = np.hstack([tables["rbs"], np.zeros((width, 1))])  # an N (or the sequence's edge) adds nothing
        rbs = with_n[np.arange(width), self.upstream].sum(axis=1)
        motif = np.append(tables["motif"], 0.0)[self.kmers].max(axis=1, initial=0.0)  # -1: the 0 appended
        # Codon usage may vouch for a gene the network doubts, never veto one it sees: genes taken from other
        # genomes keep their donors' codon usage (and on E. coli a signed score lost such genes).
        pairs = codon_pair_sums(np.append(tables["hexamer"], 0.0)[self.hexamers], self.start, self.end)
        hexamer = np.maximum(pairs, 0.0)
        return np.column_stack([self.fixed[:, :3], tables["start_codon"][self.codon], rbs, motif, self.fixed[:, 3:],
                                hexamer])

    def codon_pairs(self, index: np.ndarray) -> np.ndarray:
        """How often each hexamer is a codon pair of the candidates ``index`` (4**HEXAMER,)."""
        ok = self.hexamers >= 0
        cover = codon_pair_cover(len(self.hexamers), self.start[index], self.end[index])
        return np.bincount(self.hexamers[ok], weights=cover[ok], minlength=4 ** HEXAMER)

    def start_features(self, features: np.ndarray) -> np.ndarray:
        """(n, len(START_FEATURES)) from the rows' :meth:`features` (computed once for both uses)."""
        return np.column_stack([features[:, _SHARED], np.log1p(self.distance)])


def strand_candidates(codes: np.ndarray, codon_probs: np.ndarray, min_length: int) -> Candidates:
    """All candidates of one strand read 5'->3' (``codon_probs`` (3, L) in the same orientation)."""
    length = len(codes)
    ids = codons(codes) if length >= 3 else np.empty(0, np.int16)
    kind = START_KIND[ids]  # ids of -1 (N) index the table's last entry, -1
    is_stop = kind == -2
    # in-frame coding log-odds of each base: log P(codon position the frame gives it) - log P(non-coding)
    padded = -(-length // 3) * 3
    logp = np.zeros((3, padded), np.float32)
    log_nc = np.log(np.clip(1.0 - codon_probs.sum(axis=0), EPS, 1.0))
    logp[:, :length] = np.log(np.maximum(codon_probs, EPS)) - log_nc
    by_phase = logp.reshape(3, -1, 3)  # [class, codon, base in codon]
    prob = np.zeros((3, padded), np.float32)  # the probabilities themselves: a mean of these shrugs off a few bases
    prob[:, :length] = codon_probs
    prob_phase = prob.reshape(3, -1, 3)
    parts = []
    stop_offset = 0
    for frame in range(3):
        stops = np.flatnonzero(is_stop[frame::3]) * 3 + frame
        starts = np.flatnonzero(kind[frame::3] >= 0) * 3 + frame
        if stops.size and starts.size:
            which = np.searchsorted(stops, starts)
            ok = which < len(stops)
            starts, which = starts[ok], which[ok]
            ends = stops[which] + 3
            keep = ends - starts >= min_length
            starts, which, ends = starts[keep], which[keep], ends[keep]
            after = np.minimum(starts + LOCAL, ends)
            before = np.maximum(starts - LOCAL, 0)
            inframe = np.stack([by_phase[(m - frame) % 3, :, m] for m in range(3)], axis=1).ravel()
            at_start, at_end, at_after, at_before = np.split(
                prefix_sums(inframe, np.concatenate([starts, ends, after, before])), 4)
            inframe_p = np.stack([prob_phase[(m - frame) % 3, :, m] for m in range(3)], axis=1).ravel()
            p_start, p_end = np.split(prefix_sums(inframe_p, np.concatenate([starts, ends])), 2)
            coding = np.column_stack([at_end - at_start, at_after - at_start, at_start - at_before,
                                      (p_end - p_start) / (ends - starts)])
            parts.append((starts, ends, which + stop_offset, kind[starts], coding))
        stop_offset += len(stops)
    width = RBS_FROM - RBS_TO
    if not parts:
        empty = np.empty(0, np.int64)
        return Candidates(empty, empty, empty, empty, np.empty((0, width), np.uint8),
                          np.empty((0, width - MOTIF + 1), np.int64), np.empty((0, 6)), empty,
                          kmer_ids(codes, HEXAMER))
    starts, ends, stop, codon, coding = (np.concatenate(p) for p in zip(*parts))
    first = np.full(stop_offset, length)
    np.minimum.at(first, stop, starts)
    padded = np.concatenate([np.full(RBS_FROM, N, np.uint8), codes.astype(np.uint8)])
    window = starts[:, None] + np.arange(width)  # in padded coordinates: bases -RBS_FROM.. of each start
    length = ends - starts
    fixed = np.column_stack([coding[:, :3], np.log(length), coding[:, 0] / length, coding[:, 3]])
    return Candidates(starts, ends, stop, codon, padded[window],
                      kmer_ids(padded, MOTIF)[window[:, :width - MOTIF + 1]], fixed, (starts - first[stop]) // 3,
                      kmer_ids(codes, HEXAMER))


def _codon_pairs(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame, first codon and number of the codon pairs of genes ``[start, end)`` (stop codon included): the pairs
    starting at bases start, start + 3, ..., end - 9 (the last one ends at the stop)."""
    return starts % 3, starts // 3, np.maximum((ends - 9 - starts) // 3 + 1, 0)


def codon_pair_sums(per_base: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each gene, ``per_base`` summed over the bases where its codon pairs start (prefix sums per frame)."""
    frames = -(-len(per_base) // 3)
    by_frame = np.zeros(frames * 3)
    by_frame[:len(per_base)] = per_base
    sums = np.zeros((3, frames + 1))
    np.cumsum(by_frame.reshape(frames, 3).T, axis=1, out=sums[:, 1:])
    frame, first, count = _codon_pairs(starts, ends)
    return sums[frame, first + count] - sums[frame, first]


def codon_pair_cover(length: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(length,) how many of the genes have a codon pair starting at each base."""
    frames = -(-length // 3)
    steps = np.zeros((3, frames + 1))
    frame, first, count = _codon_pairs(starts, ends)
    np.add.at(steps, (frame, first), 1.0)
    np.add.at(steps, (frame, first + count), -1.0)
    return np.cumsum(steps[:, :frames], axis=1).T.ravel()[:length]


def prefix_sums(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``values[:p].sum()`` in float64 for each of ``points``: the stretches between the sorted points summed in
    one vectorised pass, where a running sum over every base is a slow sequential one (the scan's main thread,
    which the worker threads wait for, made a dozen of those per chunk)."""
    edges = np.unique(np.concatenate([[0], points]))
    stretches = np.add.reduceat(values[:edges[-1]], edges[:-1], dtype=np.float64) if len(edges) > 1 else []
    return np.concatenate([[0.0], np.cumsum(stretches)])[np.searchsorted(edges, points)]


def kmer_ids(codes: np.ndarray, k: int) -> np.ndarray:
    """Id of the k-mer starting at each position (-1 where it holds an N or runs off the end)."""
    ids = np.zeros(len(codes), np.int64)
    bad = np.zeros(len(codes), bool)
    for offset in range(k):
        shifted = np.full(len(codes), N, np.uint8)
        shifted[:max(len(codes) - offset, 0)] = codes[offset:]
        ids = ids * 4 + np.minimum(shifted, 3)
        bad |= shifted == N
    return np.where(bad, -1, ids)


def scores(candidates: Candidates, model: GeneModel, tables: dict[str, np.ndarray]) -> np.ndarray:
    return gene_scores(candidates.features(tables), model)


def gene_scores(features: np.ndarray, model: GeneModel) -> np.ndarray:
    return features @ np.array(model.weights) + model.bias


def values(candidates: Candidates, model: GeneModel, tables: dict[str, np.ndarray]) -> np.ndarray:
    """What each candidate adds to the programme: its ORF's score at the ORF's likeliest start plus its own start's
    log-odds against that one (0 for it); without start weights, its own score."""
    features = candidates.features(tables)
    if not model.start_weights or not len(candidates):
        return gene_scores(features, model)
    choice = candidates.start_features(features) @ np.array(model.start_weights)
    likeliest = best_starts(candidates, choice, top=1)
    orf, top = candidates.stop, candidates.stop[likeliest]
    gene, best_choice = np.zeros(orf.max() + 1), np.zeros(orf.max() + 1)
    gene[top] = gene_scores(features[likeliest], model)
    best_choice[top] = choice[likeliest]
    return gene[orf] + choice - best_choice[orf]


def best_starts(candidates: Candidates, score: np.ndarray, top: int = TOP_STARTS) -> np.ndarray:
    """Indices of the ``top`` best-scoring candidates of each stop, best first within a stop."""
    if not len(candidates):
        return np.empty(0, np.int64)
    order = np.lexsort((-score, candidates.stop))
    stops = candidates.stop[order]
    first = np.concatenate([[True], stops[1:] != stops[:-1]])
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    rank = np.arange(len(order)) - group_start
    return order[rank < top]


# ------------------------------------------------------------ the dynamic programme
def best_path(left: np.ndarray, right: np.ndarray, strand: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the set of candidates with the highest total score under the overlap limits (module docstring).

    Weighted interval scheduling: candidates in order of right end; a gene's predecessor on its own strand must end
    at most ``SAME_OVERLAP`` bp into it, one on the other strand ``OPPOSITE_OVERLAP`` bp if that one is on + and
    this one on - (3' ends facing), else 0. Prefix maxima per strand make each step O(1) after a vectorised
    binary search.
    """
    order = np.lexsort((left, right))
    left, right, strand, score = left[order], right[order], strand[order], score[order]
    n = len(order)
    # per strand, the candidates' right ends in processing order; predecessor counts from binary searches
    rights = [right[strand == s] for s in (0, 1)]
    same = np.minimum(left + SAME_OVERLAP, right - 1)
    opposite = np.minimum(left + np.where(strand == 1, OPPOSITE_OVERLAP, 0), right - 1)
    before_same, before_opposite = np.empty(n, np.int64), np.empty(n, np.int64)
    for s in (0, 1):
        mine = strand == s
        before_same[mine] = np.searchsorted(rights[s], same[mine], side="right")
        before_opposite[mine] = np.searchsorted(rights[1 - s], opposite[mine], side="right")
    # prefix maxima: best[s][k] = best total over the first k candidates of strand s; arg[s][k] which one (-1: none)
    best = [[0.0], [0.0]]
    arg = [[-1], [-1]]
    back = np.full(n, -1, np.int64)
    totals = np.empty(n)
    for i, (s, a, b, value) in enumerate(zip(strand.tolist(), before_same.tolist(), before_opposite.tolist(),
                                             score.tolist())):
        x, y = best[s][a], best[1 - s][b]
        if x >= y:
            total, back[i] = value + x, arg[s][a]
        else:
            total, back[i] = value + y, arg[1 - s][b]
        totals[i] = total
        if total > best[s][-1]:
            best[s].append(total)
            arg[s].append(i)
        else:
            best[s].append(best[s][-1])
            arg[s].append(arg[s][-1])
    if not n:
        return np.empty(0, np.int64)
    chosen = []
    i = int(np.argmax(totals))
    if totals[i] <= 0:
        return np.empty(0, np.int64)
    while i >= 0:
        chosen.append(i)
        i = int(back[i])
    return order[np.array(chosen[::-1], np.int64)]


# ------------------------------------------------------------ calling
def gene_model_of(saved: Checkpoint) -> GeneModel | None:
    """The decoder parameters stored with a DNA model, if any."""
    text = saved.metadata.get(GENES_KEY)
    if text is None:
        return None
    try:
        return GeneModel.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"has an unreadable {GENES_KEY} entry ({type(exc).__name__}: {exc})",
                              str(saved.path)) from None


@lru_cache(maxsize=1)
def shipped_gene_model() -> GeneModel:
    """The decoder parameters stored in the shipped DNA model (for a model file that has none)."""
    from .dna_model import DEFAULT_MODEL

    genes = gene_model_of(load(DEFAULT_MODEL))
    if genes is None:
        raise CheckpointError(f"holds no fitted gene decoder ({GENES_KEY}); run python -m pipelines.dna_genes_fit",
                              str(DEFAULT_MODEL))
    return genes


def both_strands(codes: np.ndarray, coding: np.ndarray, min_length: int) -> list[Candidates]:
    return [strand_candidates(codes, coding[0], min_length),
            strand_candidates(reverse_complement(codes), coding[1][:, ::-1], min_length)]


def decode(per_strand: list[Candidates], model: GeneModel, length: int, keep: list[GeneCall]
           ) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The programme's genes: per strand (strand, candidate indices, their scores)."""
    tables = model.tables()
    pools, columns = [], []  # columns: per strand (left, right, strand, score) of its pool, record coordinates
    for strand, cands in enumerate(per_strand):
        score = values(cands, model, tables)
        pool = best_starts(cands, score)
        pool = pool[score[pool] > 0]
        s, e = cands.start[pool], cands.end[pool]
        left, right = (s, e) if strand == 0 else (length - e, length - s)
        pools.append((strand, pool))
        columns.append((left, right, np.full(len(pool), strand), score[pool]))
    left, right, strand, value = (np.concatenate(x) for x in zip(*columns))
    ok = ~_collides_any(left, right, strand, keep)
    index = np.flatnonzero(ok)
    chosen = index[best_path(left[ok], right[ok], strand[ok], value[ok])]
    out = []
    offset = 0
    for s, pool in pools:
        mine = chosen[(chosen >= offset) & (chosen < offset + len(pool))] - offset
        out.append((s, pool[mine], value[offset + mine]))
        offset += len(pool)
    return out


def _collides_any(left: np.ndarray, right: np.ndarray, strand: np.ndarray, keep: list[GeneCall]) -> np.ndarray:
    """Candidates that overlap a kept gene by more than the programme's limits allow."""
    hit = np.zeros(len(left), bool)
    for gene in keep:
        overlap = np.minimum(right, gene.end) - np.maximum(left, gene.start)
        plus_first = np.where(strand == 0, left < gene.start, gene.start < left)  # on opposite strands: 3' to 3'
        limit = np.where(strand == gene.strand, SAME_OVERLAP, np.where(plus_first, OPPOSITE_OVERLAP, 0))
        hit |= overlap > limit
    return hit


def self_trained(model: GeneModel, per_strand: list[Candidates], chosen: list[tuple[int, np.ndarray, np.ndarray]],
                 min_genes: int) -> GeneModel:
    """``model`` with the start tables re-estimated from the called genes (their starts vs every candidate start of
    their ORFs), weighted against the prior counts."""
    n_genes = sum(len(index) for _, index, _ in chosen)
    if n_genes < min_genes:
        return model
    scale = model.prior / max(model.counts["start_codon"][0].sum(), 1.0)
    counts = {name: table * scale for name, table in model.counts.items()}
    for strand, index, _ in chosen:
        for name, table in table_counts(per_strand[strand], index).items():
            counts[name] += table
    return model.with_counts(counts)


def table_counts(cands: Candidates, index: np.ndarray) -> dict[str, np.ndarray]:
    """Each table's counts for the genes ``index``: the start tables' at their starts (row 0) and at all candidate
    starts of their ORFs (row 1); the hexamer table's at their codon pairs (row 0) and at every base (row 1)."""
    every = np.flatnonzero(np.isin(cands.stop, cands.stop[index]))
    width = cands.upstream.shape[1]
    out = {"start_codon": np.zeros((2, 3)), "rbs": np.zeros((2, width, 4)), "motif": np.zeros((2, 4 ** MOTIF))}
    ids = cands.hexamers[cands.hexamers >= 0]  # codon pairs of the genes against every hexamer of the strand
    out["hexamer"] = np.stack([cands.codon_pairs(index), np.bincount(ids, minlength=4 ** HEXAMER).astype(float)])
    for row, rows in enumerate((index, every)):
        out["start_codon"][row] = np.bincount(cands.codon[rows], minlength=3)
        up = cands.upstream[rows]
        ok = up < N
        np.add.at(out["rbs"][row], (np.nonzero(ok)[1], up[ok]), 1.0)
        kmers = cands.kmers[rows]
        out["motif"][row] = np.bincount(kmers[kmers >= 0], minlength=4 ** MOTIF)
    return out


def call_genes(codes: np.ndarray, coding: np.ndarray, options: CallOptions = CallOptions(),
               keep: list[GeneCall] | None = None, genes: GeneModel | None = None) -> list[GeneCall]:
    """Genes in ``codes`` given ``coding`` (2, 3, L) probabilities; ``keep``: calls already made that new ones must
    not overlap beyond the limits; ``genes``: the decoder's parameters (default: the shipped model's).
    Coordinates are relative to ``codes``."""
    model = genes or shipped_gene_model()
    length = len(codes)
    keep = keep or []
    per_strand = both_strands(codes, coding, options.min_length)
    chosen = decode(per_strand, model, length, keep)
    if options.self_train:
        model = self_trained(model, per_strand, chosen, options.min_self_train_genes)
        chosen = decode(per_strand, model, length, keep)
    found = []
    for strand, index, value in chosen:
        cands = per_strand[strand]
        for s, e, score, codon in zip(cands.start[index].tolist(), cands.end[index].tolist(), value.tolist(),
                                      cands.codon[index].tolist()):
            s, e = (s, e) if strand == 0 else (length - e, length - s)
            found.append(GeneCall(s, e, strand, score, ("ATG", "GTG", "TTG")[codon]))
    return sorted(found, key=lambda c: (c.start, c.end, c.strand))


def resolve_overlaps(calls: list[GeneCall], max_overlap: int, keep: list[GeneCall]) -> list[GeneCall]:
    """Greedy by score: a call overlapping an accepted one by more than ``max_overlap`` bases is dropped."""
    accepted: list[GeneCall] = []
    taken = sorted((c.start, c.end) for c in keep)
    for call in sorted(calls, key=lambda c: -c.score):
        if not _collides(taken, call, max_overlap):
            accepted.append(call)
            bisect.insort(taken, (call.start, call.end))
    return sorted(accepted, key=lambda c: (c.start, c.end, c.strand))


def _collides(taken: list[tuple[int, int]], call: GeneCall, max_overlap: int) -> bool:
    i = bisect.bisect_left(taken, (call.start, call.end))
    for j in range(max(0, i - 50), min(len(taken), i + 50)):  # genes are short: neighbours suffice
        start, end = taken[j]
        if min(end, call.end) - max(start, call.start) > max_overlap:
            return True
    return False


def call_mask(calls: list[GeneCall], length: int) -> np.ndarray:
    """(2, length) bool: bases inside a called gene, per strand."""
    mask = np.zeros((2, length), bool)
    for call in calls:
        mask[call.strand, call.start:call.end] = True
    return mask
