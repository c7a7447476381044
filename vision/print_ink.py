"""Machine print on a page of hand print (a form's printed labels): found because print repeats itself exactly.

A printer draws every ``e`` of a font and size with the same pixels; a hand never
writes the same letter twice. So connected components of ink that match one
another almost pixel for pixel (intersection over union at least ``TWIN_IOU``
at one of the one-pixel shifts their boxes allow) are print, once there are
``MIN_FAMILY`` of them: print repeats its common letters again and again, while
a hand's chance look-alikes come in pairs. Only *shapes* count as evidence:
components at least ``MIN_STROKES`` of their own pen widths tall and wide whose
pen path is more than ``MIN_LENGTH`` times their longer side; dots, commas, bars
and slashes look alike in any handwriting.

A page carries print only when at least ``MIN_TWINS`` shapes, and
``PRINT_SHARE`` of all, belong to such families (the shared hand-printed pages
have none, the form photo a third). The print then grows from them to the ink
beside it (``NEIGHBOUR_GAP`` of the print's height away) that is no taller than
``SAME_SIZE`` times that print: printed letters that touch into one component,
colons, the stem of an i, a letter with a descender.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .images import stroke_width

MIN_FAMILY = 3          # print repeats its common letters many times; a hand's chance look-alikes come in pairs
TWIN_IOU = 0.7          # shapes this alike are the same glyph drawn twice (photo noise and a pixel's phase aside)
MIN_PIXELS = 4          # smaller components are too coarse to compare
MIN_STROKES = 1.5       # a component must be this many strokes tall and wide to count as a shape ...
MIN_LENGTH = 1.7        # ... and a pen path this many times its longer side (a bar has 1, a filled dot 1.6)
PRINT_SHARE = 0.15      # share of the shapes in families from which a page carries print ...
MIN_TWINS = 10          # ... and how many at least
NEIGHBOUR_GAP = 1.0     # ink this close (in the printed component's height) beside print is print ...
SAME_SIZE = 1.6         # ... if no taller than this many times the printed component next to it
GROW_BLOCK = 256        # printed components grown from at once (a block x open-components matrix)


def twin_counts(masks: list[np.ndarray], threshold: float = TWIN_IOU) -> np.ndarray:
    """For each binary mask, how many other masks (of a height and width at most a pixel different) it matches:
    intersection over union at least ``threshold`` at one of the shifts that line the smaller box up inside the
    larger.

    Masks of one size are compared in bulk: for a pair of sizes and a pair of shifts, every intersection is one
    product of the flattened masks; each pair of sizes is compared once, counting for both.
    """
    counts = np.zeros(len(masks), np.int64)
    by_size = _by_size(masks)
    stacks = {size: np.stack([masks[i] for i in members]).astype(np.float32) for size, members in by_size.items()}
    for (h, w), members in by_size.items():
        a_all = stacks[(h, w)]
        for other in ((h, w), (h, w + 1), (h + 1, w - 1), (h + 1, w), (h + 1, w + 1)):   # each pair once
            if other not in stacks:
                continue
            b_all = stacks[other]
            rows, cols = min(h, other[0]), min(w, other[1])
            match = np.zeros((len(a_all), len(b_all)), bool)
            for ay, ax, by, bx in _shifts((h, w), other, rows, cols):
                a = a_all[:, ay:ay + rows, ax:ax + cols].reshape(len(a_all), -1)
                b = b_all[:, by:by + rows, bx:bx + cols].reshape(len(b_all), -1)
                inter = a @ b.T
                union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
                match |= inter >= threshold * np.maximum(union, 1.0)
            if other == (h, w):
                np.fill_diagonal(match, False)     # not its own twin
            counts[members] += match.sum(axis=1)
            if other != (h, w):
                counts[by_size[other]] += match.sum(axis=0)
    return counts


def size_neighbours(masks: list[np.ndarray]) -> np.ndarray:
    """For each mask, how many others have a height and width at most a pixel different: an upper bound of
    :func:`twin_counts` that costs nothing."""
    by_size = _by_size(masks)
    out = np.zeros(len(masks), np.int64)
    for (h, w), members in by_size.items():
        out[members] = sum(len(by_size.get((h + dh, w + dw), ())) for dh in (-1, 0, 1) for dw in (-1, 0, 1)) - 1
    return out


def _by_size(masks: list[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, mask in enumerate(masks):
        by_size[mask.shape].append(i)
    return by_size


def _shifts(size: tuple[int, int], other: tuple[int, int], rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """Offsets (a_y, a_x, b_y, b_x) of a rows x cols window in boxes of ``size`` and ``other``."""
    return [(ay, ax, by, bx) for ay in range(size[0] - rows + 1) for ax in range(size[1] - cols + 1)
            for by in range(other[0] - rows + 1) for bx in range(other[1] - cols + 1)]


def printed(labels: np.ndarray, boxes: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(count,) bool: the components (label i + 1 for row i of ``boxes``) that are machine print; only the
    ``candidates`` (a bool mask over components) are considered."""
    out = np.zeros(len(boxes), bool)
    heights, widths = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    sized = np.flatnonzero(candidates & (heights >= MIN_PIXELS) & (widths >= MIN_PIXELS))
    masks = [labels[y0:y1, x0:x1] == i + 1 for i, (x0, y0, x1, y1) in zip(sized, boxes[sized].tolist())]
    shaped = np.array([_is_shape(mask) for mask in masks], bool)
    shapes = sized[shaped]
    masks = [mask for mask, keep in zip(masks, shaped) if keep]
    enough = max(MIN_TWINS, PRINT_SHARE * shapes.size)
    if shapes.size == 0 or np.count_nonzero(size_neighbours(masks) >= MIN_FAMILY - 1) < enough:
        return out   # not even enough shapes of matching sizes: hand print
    twins = shapes[twin_counts(masks) >= MIN_FAMILY - 1]
    if twins.size < enough:
        return out
    out[twins] = True
    return _grow(out, boxes, candidates)


def _is_shape(mask: np.ndarray) -> bool:
    """More than one straight stroke, measured in its own pen's width (print is thinner than most pens): at least
    MIN_STROKES strokes tall and wide, and a pen path (ink area / stroke) MIN_LENGTH times its box's longer side."""
    stroke = stroke_width(mask)
    return min(mask.shape) > MIN_STROKES * stroke and np.count_nonzero(mask) / stroke > MIN_LENGTH * max(mask.shape)


def _grow(seeds: np.ndarray, boxes: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Add candidates beside printed components and no taller than the print they grow from, until nothing more
    joins (the size is the seed's: a grown component does not raise the limit for its own neighbours)."""
    out = seeds.copy()
    heights = (boxes[:, 3] - boxes[:, 1]).astype(np.float64)
    # the print each component grew from: its own height, or the page's typical print height if that is more
    # (a seed may be a small letter, and the gap to the next printed word is measured in the print's size)
    size = np.where(seeds, np.maximum(heights, np.median(heights[seeds])), 0.0)
    frontier = np.flatnonzero(out)
    while frontier.size:
        grown = np.zeros(len(boxes))   # per component, the largest print size that reached it this round
        open_ = np.flatnonzero(candidates & ~out)
        for first in range(0, len(frontier), GROW_BLOCK):   # every frontier component against every open one
            f = frontier[first:first + GROW_BLOCK]
            reach = (NEIGHBOUR_GAP * size[f])[:, None]
            x0, y0, x1, y1 = (boxes[f, k][:, None] for k in range(4))
            o = boxes[open_]
            near = ((o[:, 0] < x1 + reach) & (o[:, 2] > x0 - reach) & (o[:, 1] < y1) & (o[:, 3] > y0)
                    & (heights[open_] <= SAME_SIZE * size[f][:, None]))
            np.maximum.at(grown, open_[np.nonzero(near)[1]], np.broadcast_to(size[f][:, None], near.shape)[near])
        frontier = np.flatnonzero(grown > 0)
        size[frontier] = grown[frontier]
        out[frontier] = True
    return out
