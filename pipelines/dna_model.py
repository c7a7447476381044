"""The DNA models: a per-base, strand-aware coding model and a causal DNA language model, in one module.

- ``coding``: one-hot bases -> two Conv1d layers (the second dilated: 33 bases, 11
  codons, of receptive field) -> bidirectional GRU -> per base, for each strand, 4 classes:
  non-coding or codon position 0/1/2 of a gene on that strand. Codon positions
  (not just "coding") let gene calling tell a gene from its shadow ORFs in the
  other frames.
- ``lm``: previous base one-hot -> GRU -> next-base logits (bits/base). The - strand
  is scored by running it on the reverse complement.

Both read fixed *tiles* of the record: tile ``k`` is ``[k*tile, (k+1)*tile)`` in
record coordinates, seen with ``context`` bases on each side (zeros beyond the
record's ends). Because tiles depend on record coordinates only, the results do
not depend on how the FASTA was chunked.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import seqdl
from seqdl import nn
from seqdl.checkpoint import Checkpoint, load
from seqdl.errors import CheckpointError, SeqdlError
from seqdl.nn.conv import Conv1d, conv1d_time_major
from seqdl.nn.recurrent import GRU, gru_blocks
from seqdl.tensor import Tensor, log_softmax_array

from .dna_genes import GeneModel, gene_model_of
from .fasta import N, reverse_complement

KIND = "dna"
CLASSES = ["noncoding", "codon0", "codon1", "codon2"]  # per strand
THREADS = 2  # the coding and language models run side by side (see score)
BATCH_TILES = 128  # tiles per recurrent pass: more rows per step amortise each step's fixed cost, at some memory
RECURRENT_BLOCK = 128  # steps per recurrent call: a task holds one block of GRU outputs, not a whole tile's
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "data" / "dna-ecoli.safetensors"


@dataclass(frozen=True)
class DnaConfig:
    channels: int = 32
    kernel: int = 9
    hidden: int = 64  # the shipped model's sizes (data/dna-ecoli.safetensors)
    lm_hidden: int = 64
    tile: int = 2000
    context: int = 200

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise SeqdlError(f"--{f.name.replace('_', '-')} must be positive, not {getattr(self, f.name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DnaConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def one_hot(codes: np.ndarray) -> np.ndarray:
    """(B, T) codes -> (T, B, 4) float32; N (and padding) is all zeros."""
    eye = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])
    return eye[codes.T]


class CodingNet(nn.Module):
    def __init__(self, config: DnaConfig) -> None:
        super().__init__()
        c, k = config.channels, config.kernel
        self.conv1 = Conv1d(4, c, k, padding=k // 2)
        self.conv2 = Conv1d(c, c, k, padding=(k // 2) * 3, dilation=3)
        self.rnn = GRU(c, config.hidden, bidirectional=True)
        self.head = nn.Linear(2 * config.hidden, 2 * len(CLASSES))

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, 4) one-hot -> (T, B, 8) logits: + strand classes, then - strand classes."""
        y = x.transpose(0, 1).transpose(1, 2)  # (B, 4, T)
        y = self.conv2(self.conv1(y).relu()).relu()
        out, _ = self.rnn(y.transpose(1, 2).transpose(0, 1))
        return self.head(out)


class LanguageNet(nn.Module):
    def __init__(self, config: DnaConfig) -> None:
        super().__init__()
        self.rnn = GRU(4, config.lm_hidden)
        self.head = nn.Linear(config.lm_hidden, 4)

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, 4) one-hot of the *previous* base -> (T, B, 4) next-base logits."""
        out, _ = self.rnn(x)
        return self.head(out)


class DnaModel(nn.Module):
    def __init__(self, config: DnaConfig, genes: GeneModel | None = None) -> None:
        super().__init__()
        self.config = config
        self.coding = CodingNet(config)
        self.lm = LanguageNet(config)
        self.genes = genes  # the gene decoder's parameters, fitted to this model's outputs (None: the shipped ones)


def shifted(x: np.ndarray) -> np.ndarray:
    """The LM's input: each position sees the one-hot of the base before it (zeros first)."""
    out = np.zeros_like(x)
    out[1:] = x[:-1]
    return out


# ------------------------------------------------------------ inference
@dataclass
class TileScores:
    """Per-base results for a stretch of a record: ``coding`` (2, 3, L) codon-position probabilities per strand,
    ``bits`` (2, L) language-model bits for each base on each strand (NaN for N)."""

    coding: np.ndarray
    bits: np.ndarray


def tile_windows(padded: np.ndarray, n_tiles: int, tile: int, context: int) -> np.ndarray:
    """(n_tiles, tile + 2*context) views into ``padded`` (which starts ``context`` bases before tile 0)."""
    view = np.lib.stride_tricks.sliding_window_view(padded, tile + 2 * context)
    return view[::tile][:n_tiles]


def score(model: DnaModel, codes: np.ndarray, offset: int, core_start: int, core_end: int, record_length: int | None,
          batch_tiles: int = BATCH_TILES, threads: int = THREADS) -> TileScores:
    """Scores of bases ``[core_start, core_end)``; ``codes`` holds bases from ``offset`` on (with context).

    ``core_start`` must be a multiple of the tile size; bases past ``record_length``
    (or past ``codes`` when the record goes on) count as padding only if the record
    really ends there, which the caller guarantees by giving enough context.

    The coding model and the language model of each batch of tiles run as separate
    tasks on ``threads`` threads: NumPy releases the GIL in the GEMMs and gate maths that
    dominate, so the second core does real work.
    """
    cfg = model.config
    tile, context = cfg.tile, cfg.context
    n_tiles = -(-(core_end - core_start) // tile)
    lo, hi = core_start - context, core_start + n_tiles * tile + context
    padded = np.full(hi - lo, N, np.uint8)
    avail_lo, avail_hi = max(lo, offset), min(hi, offset + len(codes))
    if record_length is not None:
        avail_hi = min(avail_hi, record_length)
    padded[avail_lo - lo:avail_hi - lo] = codes[avail_lo - offset:avail_hi - offset]
    windows = tile_windows(padded, n_tiles, tile, context)
    coding = np.empty((2, 3, n_tiles, tile), np.float32)  # tiles in record order along each strand's row
    bits = np.empty((2, n_tiles, tile), np.float32)
    model.eval()

    def run_coding(first: int, batch: np.ndarray) -> None:
        coding[:, :, first:first + len(batch)] = _coding_probs(model, batch, context).transpose(1, 2, 0, 3)

    def run_lm(first: int, batch: np.ndarray) -> None:
        bits[:, first:first + len(batch)] = _lm_bits(model, batch, context).transpose(1, 0, 2)

    # One BLAS thread per task: BLAS threads on top of ours only oversubscribe the cores (a 6x slower scan when
    # the machine is busy).
    with seqdl.no_grad(), threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        tasks = []
        for first in range(0, n_tiles, batch_tiles):
            batch = np.ascontiguousarray(windows[first:first + batch_tiles])
            tasks += [pool.submit(run_coding, first, batch), pool.submit(run_lm, first, batch)]
        for task in tasks:
            task.result()  # re-raises a worker's exception
    length = core_end - core_start
    return TileScores(coding.reshape(2, 3, -1)[:, :, :length], bits.reshape(2, -1)[:, :length])


def _coding_probs(model: DnaModel, batch: np.ndarray, context: int) -> np.ndarray:
    """(B, 2, 3, tile) codon-position probabilities of a batch of windows: ``CodingNet.forward`` on arrays,
    time-major throughout, the GRU run a block of steps at a time."""
    net = model.coding
    features = one_hot(batch)  # (T, B, 4)
    for conv in (net.conv1, net.conv2):
        features = conv1d_time_major(features, conv.weight.data, conv.bias.data, conv.padding, conv.dilation)
        np.maximum(features, 0, out=features)
    # The head is linear, so it applies to each direction's half of the outputs on its own. Each direction
    # skips the context its outputs in the tile cannot depend on (the forward one the right context, the
    # reverse one the left).
    steps, hidden, weight = len(features), net.rnn.hidden_size, net.head.weight.data
    logits = np.empty((steps - 2 * context, len(batch), weight.shape[0]), np.float32)
    logits[:] = net.head.bias.data
    for direction, seen in ((0, features[:steps - context]), (1, features[context:])):
        half = weight[:, direction * hidden:(direction + 1) * hidden].T
        offset = 0 if direction == 0 else context  # of ``seen`` in the window
        for first, out in gru_blocks(seen, *net.rnn.layer_weights(0, direction), reverse=bool(direction),
                                     block=RECURRENT_BLOCK):
            lo, hi = max(offset + first, context), min(offset + first + len(out), steps - context)
            if lo < hi:
                logits[lo - context:hi - context] += out[lo - offset - first:hi - offset - first] @ half
    logp = log_softmax_array(logits.reshape(*logits.shape[:2], 2, 4), axis=-1)
    return np.exp(logp[..., 1:]).transpose(1, 2, 3, 0)  # (B, 2, 3, tile)


def _lm_bits(model: DnaModel, batch: np.ndarray, context: int) -> np.ndarray:
    """(B, 2, tile) bits of each base on each strand (NaN for N), in + strand order. Both strands run as one
    batch of 2B rows: + strand rows see the left context, then the tile; - strand rows the right context, then
    the tile, reverse-complemented."""
    rows = len(batch)
    seqs = np.concatenate([batch[:, :-context], _rc_rows(batch[:, context:])])
    target = seqs[:, context:].T  # (tile, 2B)
    picked = np.empty(target.shape, np.float32)
    head = model.lm.head
    for first, out in gru_blocks(shifted(one_hot(seqs)), *model.lm.rnn.layer_weights(0, 0), block=RECURRENT_BLOCK):
        lo, hi = max(first, context), first + len(out)  # the block's steps in the tile (none in the context)
        if lo < hi:
            logp = log_softmax_array(out[lo - first:] @ head.weight.data.T + head.bias.data, axis=-1)
            wanted = np.minimum(target[lo - context:hi - context], 3)[..., None]
            picked[lo - context:hi - context] = np.take_along_axis(logp, wanted, axis=-1)[..., 0]
    bits = (np.where(target == N, np.nan, -picked) / np.log(2)).T.astype(np.float32)  # (2B, tile)
    return np.stack([bits[:rows], bits[rows:, ::-1]], axis=1)


def _rc_rows(rows: np.ndarray) -> np.ndarray:
    """Reverse complement of each row."""
    return reverse_complement(rows.ravel()).reshape(rows.shape)[::-1]


# ------------------------------------------------------------ files
def default_model_path() -> Path:
    return DEFAULT_MODEL


def _check_config(config: DnaConfig, saved: Checkpoint) -> None:
    """The config's sizes against the weights, before building; tile and context shape no tensor, so they get
    sane bounds instead."""
    saved.require_shapes({"coding.conv1.weight": (config.channels, 4, config.kernel),
                          "coding.rnn.weight_hh_l0": (3 * config.hidden, config.hidden),
                          "lm.rnn.weight_hh_l0": (3 * config.lm_hidden, config.lm_hidden)})
    if config.tile > 1_000_000 or config.context > 100_000:
        raise CheckpointError(f"config tile {config.tile} / context {config.context} out of range", str(saved.path))


def load_dna_model(path: str | Path) -> tuple[DnaModel, Checkpoint]:
    path = Path(path)
    if not path.is_file():
        raise SeqdlError("no such model file", str(path))
    saved = load(path, kind=KIND)
    try:
        config = DnaConfig.from_dict(saved.config)
    except (TypeError, SeqdlError) as exc:
        raise CheckpointError(f"bad DNA model config: {exc}", str(path)) from None
    _check_config(config, saved)
    model = DnaModel(config, gene_model_of(saved))
    saved.restore(model)
    model.eval()
    return model, saved
