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
training) update the coding model only; the language model is left as it is.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from rich.progress import Progress
from threadpoolctl import threadpool_limits

from seqdl.errors import SeqdlError
from seqdl.io import progress_bar
from seqdl.nn import functional as F
from seqdl.optim import AdamW, clip_grad_norm_
from seqdl.tensor import Tensor
from seqdl.training import batch_rng

from .dna_data import Genome, Region
from .dna_genes import STOPS, START_PENALTY, GeneCall, codons, resolve_overlaps
from .dna_model import CLASSES, DnaModel, one_hot
from .dna_train import Batches
from .fasta import reverse_complement


IGNORE = -101  # stored label; Batches adds 1, giving cross_entropy's ignore_index -100


@dataclass(frozen=True)
class AdaptOptions:
    steps: int = 400
    lr: float = 1e-3
    batch_size: int = 32
    seq_len: int = 400
    min_orf: int = 600
    short_orf: int = 150
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.min_orf < 90 or self.short_orf < 3 or not self.lr > 0:
            raise SeqdlError("--adapt-steps must be positive")


def long_orfs(codes: np.ndarray, min_orf: int) -> list[GeneCall]:
    """ORFs of at least ``min_orf`` bp on both strands (first start codon after the previous stop, to the stop)."""
    found = []
    length = len(codes)
    for strand in (0, 1):
        seq = codes if strand == 0 else reverse_complement(codes)
        ids = codons(seq)
        is_stop, is_start = np.isin(ids, STOPS), np.isin(ids, list(START_PENALTY))
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


def adapt(model: DnaModel, codes: dict[str, np.ndarray], options: AdaptOptions = AdaptOptions(),
          quiet: bool = False, progress: Progress | None = None) -> DnaModel:
    """A copy of ``model`` whose coding model is fine-tuned on ``codes`` (record -> bases); ``progress``: a live
    progress display to add a task to (rich allows one at a time), else one of our own unless ``quiet``."""
    labels = {name: pseudo_labels(seq, options) for name, seq in codes.items()}
    regions = [Region(name, 0, len(seq)) for name, seq in codes.items() if len(seq) > options.seq_len]
    if not regions:
        raise SeqdlError(f"--adapt needs a record longer than {options.seq_len} bp")
    batches = Batches(Genome(codes, labels, {}), regions, options.seq_len)
    tuned = DnaModel(model.config)
    tuned.load_state_dict(model.state_dict())
    params = tuned.coding.parameters()
    optimizer = AdamW(params, lr=options.lr, weight_decay=0.0)
    tuned.train()
    # One BLAS thread: the fine-tuned model then does not depend on the machine's thread count (summation order
    # changes the result: F1 0.990 with one thread, 0.981 with two, on H. influenzae), and it is faster too.
    with threadpool_limits(limits=1, user_api="blas"), \
            nullcontext(progress) if progress is not None else progress_bar(quiet, "steps") as progress:
        task = progress.add_task("adapting", total=options.steps, status="")
        for step in range(options.steps):
            batch, targets = batches.draw(batch_rng(options.seed, step), options.batch_size)
            optimizer.zero_grad()
            loss = coding_loss(tuned, batch, targets)
            loss.backward()
            clip_grad_norm_(params, 1.0)
            optimizer.step()
            progress.update(task, advance=1, status=f"loss {float(loss.data):.3f}")
        progress.remove_task(task)
    tuned.eval()
    return tuned


def coding_loss(model: DnaModel, codes: np.ndarray, targets: np.ndarray) -> Tensor:
    logits = model.coding(Tensor(one_hot(codes)))  # (T, B, 8)
    t, b = codes.shape[1], codes.shape[0]
    classes = len(CLASSES)
    return F.cross_entropy(logits.reshape(t * b * 2, classes), targets.transpose(2, 0, 1).reshape(-1),
                           ignore_index=-100)
