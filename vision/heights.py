"""Where a letter sits on its text line narrows down what it can be.

An EMNIST crop is scaled to its own ink, so the classifier cannot see that a
lower-case a is short and a d is tall, or that a g hangs below the line while
an a does not. The line can. On a line of mixed-case hand print the letters'
tops fall at two heights (the x-line, and the line that capitals and ascenders
reach) and their bottoms on the baseline, with descenders below it. A letter
whose top stays near the x-line is a lower-case letter without an ascender;
if it also stays above the baseline it has no descender either. A line whose
tops fall at one height (all capitals, or letters drawn at one size) carries
no such evidence and gets no prior.

The heights are the line's own statistics (medians and percentiles of its
letters' tops and bottoms, measured across the line's slant), so nothing here
depends on the size of the page or the writing.
"""
from __future__ import annotations

import math

import numpy as np

from .emnist import ALPHABET

ASCENDING = "bdhkl"        # lower-case letters that reach the ascender line
HALF_TALL = "ft"           # lower-case letters that often stop between the x-line and the ascender line
DESCENDING = "gjpqy"       # lower-case letters that hang below the baseline
MIN_LETTERS = 6            # fewer letters on a line give no reliable heights
TALL_SHARE = 10            # percentile of tops taken as the ascender/capital line (the top tenth reach it)
SHORT_SHARE = 70           # percentile of tops taken as the x-line (most letters of running text are short)
TWO_HEIGHTS = 0.75         # tops fall at two heights when the x-height is under this share of the full height
DESCENT = 0.35             # a bottom this many x-heights below the baseline descends
PENALTY = 3.0              # log-prior (nats) against a letter that the position rules out


def _columns(letters: str) -> np.ndarray:
    return np.array([ALPHABET.index(c) for c in letters])


def line_priors(boxes: np.ndarray, angle_degrees: float) -> np.ndarray:
    """(N, 26) log-priors for the (N, 4) boxes ``x0, y0, x1, y1`` of one line's letters and pieces.

    All zeros unless the line shows an x-height clearly below its full height.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    priors = np.zeros((len(boxes), len(ALPHABET)))
    if len(boxes) < MIN_LETTERS:
        return priors
    shift = (boxes[:, 0] + boxes[:, 2]) / 2 * math.tan(math.radians(angle_degrees))
    tops, bottoms = boxes[:, 1] - shift, boxes[:, 3] - shift
    base = float(np.median(bottoms))
    full = base - float(np.percentile(tops, TALL_SHARE))
    x_height = base - float(np.percentile(tops, SHORT_SHARE))
    if x_height <= 0 or x_height > TWO_HEIGHTS * full:
        return priors
    short = base - tops < (x_height + full) / 2
    descends = bottoms - base > DESCENT * x_height
    plain = short & ~descends              # a, c, e, m, n, o, r, s, u, v, w, x, z (and a dotless i)
    priors[np.ix_(plain, _columns(ASCENDING + DESCENDING))] -= PENALTY
    priors[np.ix_(plain, _columns(HALF_TALL))] -= PENALTY / 2
    hanging = short & descends             # g, j, p, q, y
    others = np.setdiff1d(np.arange(len(ALPHABET)), _columns(DESCENDING))
    priors[np.ix_(hanging, others)] -= PENALTY / 2
    return priors
