"""``--adapt``: fine-tune the coding model on the input genome itself, with long open reading frames as labels.

Self-training, as Prodigal and GeneMark-S do for a genome far from any training
data. No annotation is read. Per strand:

- *coding* (with codon positions): long ORFs, from the first start codon after the
  previous in-frame stop to the stop (at least ``min_orf`` bp: in random sequence
  an ORF that long is rare, so these are nearly all real genes). Where long ORFs
  overlap (a gene and its shadow in another frame or on the other strand), the
  longest wins and the others' bases are left out of the loss;
- *non-coding*: bases that no stop-free stretch of at least ``short_orf`` bp covers
  in any of the three frames of that strand (no gene can be there);
- everything else is left out of the loss (``IGNORE``).

Then ``steps`` AdamW steps on random windows of the genome (both strands, as in
training), the learning rate decaying along a cosine to 0, update the coding model only;
the language model is left as it is. Each batch's two halves run on the two cores where
both are free (the result is the same where they are not). The step count and schedule
were chosen on the loss of pseudo-labelled windows held out from the sample (no
annotation): on H. influenzae that loss fell from 0.148 to 0.058 in 200 steps with the
cosine, where 400 steps at a constant rate wandered between 0.06 and 0.12 and ended at 0.057.

The genome is streamed: a seeded reservoir keeps at most ``max_bases`` of it, in pieces
of ``PIECE`` bp, whatever the input's size, and only the kept pieces are labelled (their
first and last ``min_orf`` bases are left out, where an ORF may be cut). A genome with no
long ORF to learn from leaves the model as it is, with a warning.
"""
from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from rich.progress import Progress

from seqdl.errors import SeqdlError
from seqdl.io import progress_bar, warn
from seqdl.nn import functional as F
from seqdl.optim import AdamW, CosineAnnealingLR, clip_grad_norm_
from seqdl.tensor import Tensor
from seqdl.nn import Module
from seqdl.training import PARTS, DataParallel, batch_rng

from .dna_data import Genome, Region
from .dna_genes import START_CODONS, STOPS, GeneCall, codons, resolve_overlaps
from .dna_model import CLASSES, THREADS, DnaModel, one_hot
from .dna_train import Batches
from .fasta import N, FastaReader, reverse_complement


IGNORE = -101  # stored label; Batches adds 1, giving cross_entropy's ignore_index -100
PIECE = 100_000  # bases per reservoir piece
GC_GAP = 0.05  # a genome whose GC content is further than this from the training genome's is adapted to


@dataclass(frozen=True)
class AdaptOptions:
    steps: int = 200
    lr: float = 1e-3
    batch_size: int = 32
    seq_len: int = 400
    min_orf: int = 600
    short_orf: int = 150
    max_bases: int = 4_000_000  # at most this much of the genome is kept to train on
    auto: bool = False  # adapt only where needs_adapt says it is worth it
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.min_orf < 90 or self.short_orf < 3 or not self.lr > 0 or self.max_bases < 1:
            raise SeqdlError("--adapt-steps must be positive")


def long_orfs(codes: np.ndarray, min_orf: int) -> list[GeneCall]:
    """ORFs of at least ``min_orf`` bp on both strands (first start codon after the previous stop, to the stop)."""
    found = []
    length = len(codes)
    for strand in (0, 1):
        seq = codes if strand == 0 else reverse_complement(codes)
        ids = codons(seq)
        is_stop, is_start = np.isin(ids, STOPS), np.isin(ids, START_CODONS)
        for frame in range(3):
            stops = np.flatnonzero(is_stop[frame::3]) * 3 + frame
            starts = np.flatnonzero(is_start[frame::3]) * 3 + frame
            if not stops.size or not starts.size:
                continue
            previous = np.concatenate([[frame - 3], stops[:-1]])  # the stop before each stop (or the record start)
            first = np.searchsorted(starts, previous + 3)  # first start codon after it
            ok = first < len(starts)
            begin, end = starts[np.minimum(first, len(starts) - 1)], stops + 3
            keep = ok & (begin < stops) & (end - begin >= min_orf)
            for s, e in zip(begin[keep], end[keep]):
                s, e = (int(s), int(e)) if strand == 0 else (length - int(e), length - int(s))
                found.append(GeneCall(s, e, strand, float(e - s), ""))
    return found


def open_stretch(codes: np.ndarray) -> np.ndarray:
    """(L,) for each base, the longest stop-free stretch (bp) containing it in any frame of this strand."""
    length = len(codes)
    best = np.zeros(length, np.int64)
    is_stop = np.isin(codons(codes), STOPS)
    for frame in range(3):
        stops = np.flatnonzero(is_stop[frame::3]) * 3 + frame
        edges = np.concatenate([[frame - 3], stops, [length]])  # open stretch k: [edges[k] + 3, edges[k + 1])
        which = np.searchsorted(stops, np.arange(length) - 2, side="left")  # the stretch (or stop) holding each base
        span = edges[which + 1] - (edges[which] + 3)
        best = np.maximum(best, span)
    return best


def pseudo_labels(codes: np.ndarray, options: AdaptOptions) -> np.ndarray:
    """(2, L) int8 labels like :mod:`annotation`'s (-1 non-coding, 0..2 codon position) plus ``IGNORE``."""
    length = len(codes)
    labels = np.full((2, length), IGNORE, np.int8)
    labels[0, open_stretch(codes) < options.short_orf] = -1
    labels[1, open_stretch(reverse_complement(codes))[::-1] < options.short_orf] = -1
    orfs = long_orfs(codes, options.min_orf)
    kept = resolve_overlaps(orfs, 60, [])
    for orf in orfs:  # every long ORF: not a safe negative
        labels[orf.strand, orf.start:orf.end] = IGNORE
    for orf in kept:
        offsets = np.arange(orf.end - orf.start)
        positions = offsets if orf.strand == 0 else offsets[::-1]  # counted from the 5' end on that strand
        labels[orf.strand, orf.start:orf.end] = (positions % 3).astype(np.int8)
    return labels


Piece = tuple[str, np.ndarray, bool, bool]  # name, codes, cut from the record on the left, on the right


def pieces_of(source: Path | dict[str, np.ndarray]) -> Iterator[Piece]:
    """Pieces of at most ``PIECE`` bp, streamed from a FASTA file or cut from records."""
    if isinstance(source, dict):
        for name, seq in source.items():
            for start in range(0, len(seq), PIECE):
                yield f"{name}:{start}", seq[start:start + PIECE], start > 0, start + PIECE < len(seq)
        return
    for chunk in FastaReader(source, chunk_size=PIECE):
        yield f"{chunk.record}:{chunk.core_start}", chunk.core.copy(), chunk.core_start > 0, not chunk.last


def reservoir(pieces: Iterable[Piece], options: AdaptOptions) -> list[Piece]:
    """A seeded uniform sample of the pieces longer than a training window, at most ``max_bases`` in all."""
    rng = np.random.default_rng(options.seed)
    capacity = max(options.max_bases // PIECE, 1)
    kept: list[Piece] = []
    seen = 0
    for piece in pieces:
        if len(piece[1]) <= options.seq_len:
            continue
        seen += 1
        if len(kept) < capacity:
            kept.append(piece)
        else:
            slot = int(rng.integers(seen))
            if slot < capacity:
                kept[slot] = piece
    return kept


def piece_labels(piece: Piece, options: AdaptOptions) -> np.ndarray:
    """Pseudo-labels of a piece, leaving out the ends where the piece cut the record (and maybe an ORF)."""
    _, codes, cut_left, cut_right = piece
    labels = pseudo_labels(codes, options)
    if cut_left:
        labels[:, :options.min_orf] = IGNORE
    if cut_right:
        labels[:, -options.min_orf:] = IGNORE
    return labels


def gc_fraction(pieces: Iterable[np.ndarray]) -> float | None:
    """The share of G and C among the called bases (not N) of the pieces; None without any."""
    gc = called = 0
    for codes in pieces:
        counts = np.bincount(codes, minlength=N + 1)
        gc, called = gc + int(counts[1] + counts[2]), called + int(counts[:4].sum())
    return gc / called if called else None


def needs_adapt(model: DnaModel, source: Path | dict[str, np.ndarray]) -> bool:
    """Whether ``--adapt`` is worth its time on ``source``: its GC content is more than ``GC_GAP`` from that of
    the genome the model's decoder was fitted on. Codon usage, and with it what the network learnt a gene looks
    like, follows GC content; a genome of the training genome's GC needs no adapting (and costs one streamed
    read to check)."""
    fitted = model.genes.gc if model.genes is not None else None
    if fitted is None:
        return False
    ours = gc_fraction(piece[1] for piece in pieces_of(source))
    return ours is not None and abs(ours - fitted) > GC_GAP


def adapted_for(model: DnaModel, source: Path | dict[str, np.ndarray], options: AdaptOptions | None,
                quiet: bool = False, progress: Progress | None = None, threads: int = THREADS) -> DnaModel:
    """The model to scan ``source`` with: ``model`` itself without ``options``, or when ``options.auto`` and
    :func:`needs_adapt` says no; else :func:`adapt`'s (with a note on stderr when chosen automatically)."""
    if options is None:
        return model
    if options.auto:
        if not needs_adapt(model, source):
            return model
        if not quiet:
            where = f"{source}: " if isinstance(source, Path) else ""
            sys.stderr.write(f"seqdl: {where}GC content more than {GC_GAP * 100:.0f} points from the model's training "
                             "genome: adapting to it first (--no-adapt skips this)\n")
    return adapt(model, source, options, quiet, progress, threads)


def adapt(model: DnaModel, source: Path | dict[str, np.ndarray], options: AdaptOptions = AdaptOptions(),
          quiet: bool = False, progress: Progress | None = None, threads: int = THREADS) -> DnaModel:
    """A copy of ``model`` whose coding model is fine-tuned on ``source`` (a FASTA file, streamed, or record ->
    bases); ``progress``: a live progress display to add a task to (rich allows one at a time), else one of our
    own unless ``quiet``; ``threads``: cores it may use (two at most help). Without a long ORF to learn from,
    ``model`` itself, with a warning."""
    sample = reservoir(pieces_of(source), options)
    codes = {piece[0]: piece[1] for piece in sample}
    labels = {piece[0]: piece_labels(piece, options) for piece in sample}
    where = f"{source}: " if isinstance(source, Path) else ""
    if not any((table >= 0).any() for table in labels.values()):
        warn(f"{where}--adapt found no open reading frame of {options.min_orf} bp or more to self-train on; "
             "using the model as it is")
        return model
    regions = [Region(name, 0, len(seq)) for name, seq in codes.items()]
    batches = Batches(Genome(codes, labels, {}), regions, options.seq_len)
    tuned = _copy(model)
    params = list(tuned.coding.parameters())
    optimizer = AdamW(params, lr=options.lr, weight_decay=0.0)
    schedule = CosineAnnealingLR(optimizer, options.steps)
    # Each batch is split in halves (seqdl.training.parallel), side by side when a second core is free, every
    # product on one BLAS thread and the halves' gradients added in a fixed order: the fine-tuned model is the
    # same on any machine, whether the halves ran together or one after the other (summation order changes the
    # result: F1 0.990 with one BLAS thread, 0.981 with two, on H. influenzae).
    parallel = DataParallel(tuned.coding, PARTS, workers=min(PARTS, max(threads, 1)))
    with parallel.scope(), \
            nullcontext(progress) if progress is not None else progress_bar(quiet, "steps") as progress:
        task = progress.add_task("adapting", total=options.steps, status="")
        for step in range(options.steps):
            batch = batches.draw(batch_rng(options.seed, step), options.batch_size)
            optimizer.zero_grad()
            loss, _ = parallel.backward(coding_share, batch, len(batch[0]))
            clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            progress.update(task, advance=1, status=f"loss {loss:.3f}")
        progress.remove_task(task)
    tuned.eval()
    return tuned


def _copy(model: DnaModel) -> DnaModel:
    copy = DnaModel(model.config, model.genes)
    copy.load_state_dict(model.state_dict())
    return copy.train()


def coding_share(coding: Module, batch: tuple[np.ndarray, np.ndarray], rows: slice
                 ) -> tuple[Tensor, dict[str, float]]:
    """The share of the batch's mean coding cross-entropy (over its labelled bases) that its ``rows`` carry,
    through the coding network ``coding``."""
    codes, targets = batch
    scale = 1.0 / max(int((targets >= 0).sum()), 1)
    return _coding_cross_entropy(coding, codes[rows], targets[rows], "sum") * scale, {}


def coding_loss(model: DnaModel, codes: np.ndarray, targets: np.ndarray, reduction: str = "mean") -> Tensor:
    """The coding network's cross-entropy on a batch of (B, T) codes and (B, 2, T) targets (-100: unlabelled)."""
    return _coding_cross_entropy(model.coding, codes, targets, reduction)


def _coding_cross_entropy(coding: Module, codes: np.ndarray, targets: np.ndarray, reduction: str) -> Tensor:
    logits = coding(Tensor(one_hot(codes)))  # (T, B, 8)
    t, b = codes.shape[1], codes.shape[0]
    classes = len(CLASSES)
    return F.cross_entropy(logits.reshape(t * b * 2, classes), targets.transpose(2, 0, 1).reshape(-1),
                           ignore_index=-100, reduction=reduction)
