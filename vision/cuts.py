"""Cut by recognition: where a glyph of touching or joined-up letters may be cut, and the pieces to classify.

Segmentation alone cannot tell where one letter of a touching pair or of a
joined-up word ends. Here every plausible cut is proposed, every piece between
two cuts that could be a letter is cut out, and the choice among the pieces is
left to the classifier (and a language model): the pieces become the arcs of a
lattice that ``seqdl.beam`` searches (see :mod:`vision.ocr`). Sizes are in units
of the page's own letter height and stroke width.

Cut points are columns where little ink is (a joining stroke, a gap): local
minima of the column ink profile no higher than a few strokes, a gap's middle,
and the glyph's ends.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MAX_CUT_INK = 2.0        # a cut column crosses at most this many stroke widths of ink (one or two joins)
MIN_PIECE = 0.12         # pieces are at least this many letter heights wide (the stem of an i or l)
MAX_PIECE = 1.5          # and at most this many (an m or w, written wide)
MAX_SPAN = 4             # a piece spans at most this many cut intervals
WIDE_LETTER = 1.3        # widest plain letter, in letter heights: pieces wider than this are less likely
WIDTH_PENALTY = 4.0      # log-prior per letter height of width beyond WIDE_LETTER


@dataclass(frozen=True)
class Piece:
    first: int      # index of the cut it starts at
    last: int       # index of the cut it ends at
    x0: int         # columns [x0, x1) of the glyph's ink
    x1: int


def cut_points(ink: np.ndarray, stroke: float) -> np.ndarray:
    """Candidate cut columns of a glyph's (H, W) ink mask, sorted, including 0 and W."""
    width = ink.shape[1]
    profile = ink.sum(axis=0).astype(np.float64)
    smooth = ndimage.uniform_filter1d(profile, max(1, int(round(stroke / 2))), mode="nearest")
    reach = max(1, int(round(stroke)))
    lowest = ndimage.minimum_filter1d(smooth, 2 * reach + 1, mode="nearest")
    minima = np.flatnonzero((smooth <= lowest) & (smooth <= MAX_CUT_INK * stroke))
    cuts = [0]
    for group in np.split(minima, np.flatnonzero(np.diff(minima) > 1) + 1):
        if group.size:
            middle = int(group[group.size // 2])
            if middle - cuts[-1] >= reach:
                cuts.append(middle)
    if width - cuts[-1] < reach and len(cuts) > 1:
        cuts.pop()
    cuts.append(width)
    return np.asarray(cuts, np.int64)


def pieces(cuts: np.ndarray, height: float) -> list[Piece]:
    """Every piece between two cuts that is letter-sized (the whole glyph is always one of them)."""
    found = []
    n = len(cuts)
    for i in range(n - 1):
        for j in range(i + 1, min(n, i + 1 + MAX_SPAN)):
            width = cuts[j] - cuts[i]
            if width > MAX_PIECE * height:
                break
            if width >= MIN_PIECE * height:
                found.append(Piece(i, j, int(cuts[i]), int(cuts[j])))
    if not any(p.first == 0 and p.last == n - 1 for p in found):
        found.append(Piece(0, n - 1, int(cuts[0]), int(cuts[-1])))
    return found


def width_prior(width: float, height: float) -> float:
    """Log-prior of a letter this wide: flat up to WIDE_LETTER letter heights, then falling linearly."""
    return -WIDTH_PENALTY * max(0.0, width / height - WIDE_LETTER)


def piece_ink(ink: np.ndarray, piece: Piece) -> np.ndarray:
    """The glyph's ink in the piece's columns."""
    return ink[:, piece.x0:piece.x1]
