"""Check boxes on a printed form: small squares, empty or ticked, that are not letters.

A box closes a space (the holes of its ink) whose bounding rectangle its ink
frames on all four sides, each side inked along at least ``SIDE_COVER`` of its
length within a frame's thickness, and its four corners too. The holes of an o,
a D or a B meet their bounding rectangle only where their curves touch it, and a
ring of ink, however thick, leaves the corners beyond its hole empty. Only boxes of about a
letter's size count (``MIN_SIDE`` to ``MAX_SIDE`` letter heights inside, not
more than ``MAX_ASPECT`` longer one way, and ``MIN_STROKES`` pen strokes or more
inside): a comb of boxes for one letter each
is far wider, and a table's cells far larger.

A box's frame is erased; so is a mark inside it joined to the frame (a tick or
a cross), when none of the component's ink lies outside the box. Ink that does
(a letter written across the frame, a cross drawn past it) stays.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

SIDE_COVER = 0.9        # share of each side's length that must be inked
MIN_SIDE = 0.5          # the inside of a box is at least this many letter heights each way ...
MIN_STROKES = 5.0       # ... and this many pen strokes (a bold printed o's hole is two or three) ...
MAX_SIDE = 3.0          # ... and at most this many
MAX_ASPECT = 2.0        # and no more than this much longer one way than the other
FRAME = 1.5             # a frame is up to this many pen strokes thick
CORNER_INK = 0.25       # share of each corner, a frame's thickness square, that must be inked


def box_pixels(labels: np.ndarray, boxes: np.ndarray, candidates: np.ndarray, height: float, stroke: float
               ) -> list[tuple[int, np.ndarray]]:
    """(component index, pixels of its box to erase, in the component's bounding box) for every check box among
    the components ``candidates`` (indices into ``boxes``: x0, y0, x1, y1 of label index + 1)."""
    found = []
    thick = max(2, round(FRAME * stroke))
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    sized = (np.minimum(widths, heights) >= MIN_SIDE * height) & (np.maximum(widths, heights)
                                                                  <= (MAX_SIDE + 1) * height + 2 * thick)
    for index in candidates[sized[candidates]]:
        x0, y0, x1, y1 = boxes[index]
        ink = labels[y0:y1, x0:x1] == index + 1
        erase = _box(ink, max(MIN_SIDE * height, MIN_STROKES * stroke), MAX_SIDE * height, thick)
        if erase is not None:
            found.append((int(index), erase))
    return found


def _box(ink: np.ndarray, smallest: float, largest: float, thick: int) -> np.ndarray | None:
    """The pixels to erase if ``ink`` (one component) holds a check box whose inside is ``smallest`` to
    ``largest`` pixels each way, else None."""
    inside = ndimage.binary_fill_holes(ink) & ~ink
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    tall, wide = bottom - top, right - left
    if (min(tall, wide) < smallest or max(tall, wide) > largest
            or max(tall, wide) > MAX_ASPECT * min(tall, wide)):
        return None
    above, below = slice(max(0, top - thick), top), slice(bottom, bottom + thick)
    before, after = slice(max(0, left - thick), left), slice(right, right + thick)
    across, down = slice(left, right), slice(top, bottom)
    sides = (ink[above, across].any(axis=0), ink[below, across].any(axis=0),
             ink[down, before].any(axis=1), ink[down, after].any(axis=1))
    if min(side.mean() if side.size else 0.0 for side in sides) < SIDE_COVER:
        return None
    corners = (ink[above, before], ink[above, after], ink[below, before], ink[below, after])
    if min(corner.mean() if corner.size else 0.0 for corner in corners) < CORNER_INK:
        return None
    frame = np.zeros_like(ink)
    frame[above.start:below.stop, before.start:after.stop] = True
    outside = ink & ~frame
    if not outside.any():
        return ink.copy()                      # the box and whatever mark it holds
    frame[down, across] = False                # the frame alone: the ink beyond it may be writing
    return ink & frame
