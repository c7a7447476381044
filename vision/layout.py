"""Page layout from an ink mask: ruled lines out, specks out, then text lines, words and letters in reading order.

Every threshold is a multiple of a statistic of the page itself, so the same code
works for a 400-pixel scan and a 12-megapixel photo:
- ``stroke``: the pen's stroke width, 2 * ink area / ink boundary length.
- ``height``: the median height of the letter-sized connected components; where
  one page holds writing of several sizes (a form's small printed labels and the
  large hand print filled in), a glyph is measured against the glyphs of its own
  size (:class:`SizeBands`).
- word gaps: the page's gaps between neighbouring glyphs, in letter heights of
  the writing on either side, fall into two groups (within a word, between
  words); the split between them is found per page.
A *glyph* is a set of connected components that form one letter (a broken stroke,
the dot of an i) or, in joined-up writing, several letters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from . import check_boxes, print_ink
from .images import otsu_split, stroke_width

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (half-open, pixels)

EIGHT_CONNECTED = np.ones((3, 3), bool)
MAX_SKEW_DEGREES = 6.0     # text lines are searched within this slant (the issue asks for +-5)
RULE_LENGTH = 4.0          # a straight stroke longer than this many letter heights is a ruled line
RULE_COLOUR_GAP = 60.0     # pen and rules this far apart in RGB (0-255 each) are told apart by colour
MARK_SIZE = 0.4            # glyphs shorter than this many letter heights are dots, commas, dashes or specks
BROKEN_PIECE = 0.6         # a glyph shorter than this many letter heights touching another may be a piece of it
BLOB = 2.0                 # a glyph no taller than this many pen strokes has no room for a letter's counter
MULTI_LETTER = 2.0         # a glyph wider than this many typical letter widths holds several letters
CURSIVE_LETTERS = 3        # a glyph of this many letters or more makes its word joined-up (cursive)
WIDE_GAP = 1.5             # a gap wider than this many letter heights separates words whatever the page's gaps
SIZE_BAND = 1.5            # glyphs whose heights differ by less than this factor are writing of one size
MIN_PEERS = 5              # fewer glyphs of a size give no statistics of their own (the page's are used)


@dataclass
class Letter:
    box: Box
    components: list[int]             # label ids in the component image
    columns: tuple[int, int] | None = None  # x range kept when a glyph of touching letters was split


@dataclass
class Word:
    box: Box
    cursive: bool                     # joined-up: kept whole, not split into letters
    letters: list[Letter] = field(default_factory=list)
    components: list[int] = field(default_factory=list)


@dataclass
class Line:
    box: Box
    angle_degrees: float
    words: list[Word] = field(default_factory=list)


@dataclass(frozen=True)
class SizeBands:
    """Letter height and width as seen among the page's glyphs of one size.

    A page may carry writing of several sizes; writing of height h is measured
    against the glyphs whose heights are within SIZE_BAND of h: their median
    height, and the median width of those no wider than that height (single
    letters in any script). With fewer than MIN_PEERS such glyphs the page's own
    figures are used.
    """

    heights: np.ndarray               # (n,) glyph heights, sorted
    widths: np.ndarray                # (n,) glyph widths, in the same order
    page_height: float
    page_width: float

    @classmethod
    def of(cls, sizes: np.ndarray, page_height: float, page_width: float) -> "SizeBands":
        """From (n, 2) glyph widths and heights."""
        sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
        order = np.argsort(sizes[:, 1], kind="stable")
        return cls(sizes[order, 1], sizes[order, 0], page_height, page_width)

    def _peers(self, height: float) -> slice:
        return slice(int(np.searchsorted(self.heights, height / SIZE_BAND)),
                     int(np.searchsorted(self.heights, height * SIZE_BAND, side="right")))

    def height(self, glyph_height: float) -> float:
        """Typical letter height of writing this tall: the median of the peers' heights, read off the sorted
        heights (``np.median`` sorts again; a page with thousands of glyphs asks thousands of times)."""
        peers = self._peers(glyph_height)
        n = peers.stop - peers.start
        if n < MIN_PEERS:
            return self.page_height
        return float((self.heights[peers.start + (n - 1) // 2] + self.heights[peers.start + n // 2]) / 2)

    def width(self, glyph_height: float) -> float:
        """Typical single-letter width of writing this tall."""
        widths = self.widths[self._peers(glyph_height)]
        narrow = widths[widths <= self.height(glyph_height)]
        return float(np.median(narrow)) if narrow.size >= MIN_PEERS else self.page_width


@dataclass
class Layout:
    lines: list[Line]
    labels: np.ndarray                # (H, W) int32 component image the letters' ``components`` refer to
    stroke: float
    letter_height: float
    angle_degrees: float
    n_specks: int
    sizes: SizeBands | None = None    # letter sizes by glyph height (None on an empty page)
    n_printed: int = 0                # components left out as machine print (``analyse(skip_print=True)``)

    def height_near(self, glyph_height: float) -> float:
        """Typical letter height among the glyphs about as tall as ``glyph_height``."""
        return self.sizes.height(glyph_height) if self.sizes is not None else self.letter_height


def _component_table(labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (count, 4: x0, y0, x1, y1) and pixel areas of components 1..count (row i is label i + 1)."""
    boxes = np.zeros((count, 4), np.int64)
    for i, found in enumerate(ndimage.find_objects(labels)):
        if found is not None:
            boxes[i] = (found[1].start, found[0].start, found[1].stop, found[0].stop)
    areas = np.bincount(labels[labels > 0], minlength=count + 1)[1:]   # ink is a few % of a page: count only it
    return boxes, areas


def _components(mask: np.ndarray, stroke: float) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """The mask's components: labels, count, boxes and which are specks."""
    labels, count = ndimage.label(mask, EIGHT_CONNECTED)
    boxes, areas = _component_table(labels, count)
    return labels, count, boxes, _specks(boxes, areas, stroke)


def _typical_height(heights: np.ndarray) -> float:
    """Median height of letter-sized components: a first median, then again without dots and specks."""
    if heights.size == 0:
        return 0.0
    first = float(np.median(heights))
    big = heights[heights >= MARK_SIZE * first]
    return float(np.median(big)) if big.size else first


def _edge_rule(edge: np.ndarray, valid: np.ndarray, thickness: float) -> np.ndarray | None:
    """Fit a straight line to one edge (top or bottom row per column); None unless it is straight and long."""
    xs = np.flatnonzero(valid)
    if xs.size < 0.9 * edge.size:
        return None
    coef = np.polyfit(xs, edge[xs], 1)
    inliers = np.abs(edge[xs] - np.polyval(coef, xs)) <= max(2.0, thickness)
    if inliers.mean() < 0.6:
        return None
    coef = np.polyfit(xs[inliers], edge[xs][inliers], 1)
    return np.polyval(coef, np.arange(edge.size))


def _rule_pixels(sub: np.ndarray, stroke: float) -> np.ndarray:
    """Pixels of a component (rows x columns crop) that lie on a straight horizontal rule along its top or bottom."""
    h, _ = sub.shape
    inked = sub.any(axis=0)
    top = np.argmax(sub, axis=0).astype(np.float64)
    bottom = (h - 1 - np.argmax(sub[::-1], axis=0)).astype(np.float64)
    counts = sub.sum(axis=0)
    single = inked & (counts == bottom - top + 1)
    thickness = float(np.median(counts[single])) if single.any() else stroke
    rows = np.arange(h)[:, None]
    remove = np.zeros_like(sub)
    for edge, downwards in ((top, True), (bottom, False)):
        line = _edge_rule(edge, inked, thickness)
        if line is None:
            continue
        start = line - 1 if downwards else line - thickness - 1   # the rule's first row, with a pixel to spare
        remove |= (rows >= start[None, :]) & (rows <= start[None, :] + thickness + 2) & sub
    return remove


def remove_rules(mask: np.ndarray, labels: np.ndarray, boxes: np.ndarray, height: float, stroke: float,
                 rgb: np.ndarray | None = None) -> int:
    """Erase ruled lines and form-box borders (straight strokes > RULE_LENGTH letter heights) in place.

    With the page's colours (``rgb``), a rule's pixels that have the pen's colour rather than the rule's are kept:
    they are the strokes of the letters that sit on or cross the rule (:func:`_pen_coloured`).
    """
    length = RULE_LENGTH * height
    cuts = []
    for index in np.flatnonzero((boxes[:, 2] - boxes[:, 0] > length) | (boxes[:, 3] - boxes[:, 1] > length)):
        x0, y0, x1, y1 = boxes[index]
        sub = labels[y0:y1, x0:x1] == index + 1
        cut = np.zeros_like(sub)
        if x1 - x0 > length:
            cut |= _rule_pixels(sub, stroke)
        if y1 - y0 > length:
            cut |= _rule_pixels(sub.T, stroke).T
        if cut.any():
            cuts.append((index, cut))
    if rgb is not None and cuts:
        cuts = _pen_coloured(cuts, mask, boxes, rgb)
    for index, cut in cuts:
        x0, y0, x1, y1 = boxes[index]
        mask[y0:y1, x0:x1] &= ~cut
    return len(cuts)


def _pen_coloured(cuts: list[tuple[int, np.ndarray]], mask: np.ndarray, boxes: np.ndarray, rgb: np.ndarray
                  ) -> list[tuple[int, np.ndarray]]:
    """The rules' cuts less the pixels nearer the pen's colour than the rules' (a notebook's pale blue lines under
    black or dark blue writing), when the two colours are RULE_COLOUR_GAP or more apart. Each colour is the median
    of the darker half of its pixels: the cores, not the edges blended with the paper."""
    on_rules = np.zeros(mask.shape, bool)
    for index, cut in cuts:
        x0, y0, x1, y1 = boxes[index]
        on_rules[y0:y1, x0:x1] |= cut
    pen_pixels = rgb[mask & ~on_rules]   # the writing, also where it touches a rule
    if len(pen_pixels) == 0:
        return cuts
    rule, pen = _core_colour(rgb[on_rules]), _core_colour(pen_pixels)
    if np.linalg.norm(rule - pen) < RULE_COLOUR_GAP:
        return cuts
    kept = []
    for index, cut in cuts:
        x0, y0, x1, y1 = boxes[index]
        colours = rgb[y0:y1, x0:x1].astype(np.float32)
        nearer_pen = np.linalg.norm(colours - pen, axis=-1) < np.linalg.norm(colours - rule, axis=-1)
        kept.append((index, cut & ~nearer_pen))
    return kept


def _core_colour(pixels: np.ndarray) -> np.ndarray:
    """Median colour of the darker half of ``pixels`` (N, 3)."""
    pixels = pixels.astype(np.float32)
    darkness = -pixels.min(axis=1)
    return np.median(pixels[darkness >= np.median(darkness)], axis=0)


def estimate_skew(centres: np.ndarray, height: float) -> float:
    """Text-line slant in degrees: the angle whose projection of glyph centres is sharpest (sum of squared bins)."""
    if len(centres) < 3 or height <= 0:
        return 0.0
    angles = np.linspace(-MAX_SKEW_DEGREES, MAX_SKEW_DEGREES, 97)
    slopes = np.tan(np.radians(angles))
    projected = centres[None, :, 1] - centres[None, :, 0] * slopes[:, None]   # (angles, glyphs)
    bins = np.floor((projected - projected.min(axis=1, keepdims=True)) / (height / 4)).astype(np.int64)
    scores = [np.sum(np.bincount(row) ** 2.0) for row in bins]
    best = np.flatnonzero(np.asarray(scores) == max(scores))
    return float(angles[best[np.argmin(np.abs(angles[best]))]])


def group_lines(centres: np.ndarray, height: float, angle: float) -> list[np.ndarray]:
    """Glyph indices per text line, top to bottom: cluster on the deskewed row, then refit each line and reassign.

    The first pass splits the sorted deskewed centres wherever consecutive ones
    are more than half a letter height apart; the refit (a straight line per text
    line) follows lines that drift or bend a little from the page's mean slant.
    """
    slope = np.tan(np.radians(angle))
    rows = centres[:, 1] - centres[:, 0] * slope
    order = np.argsort(rows, kind="stable")
    breaks = np.flatnonzero(np.diff(rows[order]) > 0.5 * height) + 1
    groups = np.split(order, breaks)
    for _ in range(3):
        fits = []
        for members in groups:
            xs, ys = centres[members, 0], centres[members, 1]
            if len(members) >= 3 and np.ptp(xs) > height:
                fits.append(np.polyfit(xs, ys, 1))
            else:
                fits.append(np.array([slope, np.mean(ys - xs * slope)]))
        predicted = np.stack([np.polyval(f, centres[:, 0]) for f in fits], axis=1)
        nearest = np.argmin(np.abs(predicted - centres[:, 1:2]), axis=1)
        regrouped = [np.flatnonzero(nearest == k) for k in range(len(groups))]
        regrouped = [g for g in regrouped if g.size]
        mid = [np.median(rows[g]) for g in regrouped]
        regrouped = [regrouped[k] for k in np.argsort(mid)]
        if len(regrouped) == len(groups) and all(np.array_equal(a, b) for a, b in zip(regrouped, groups)):
            break
        groups = regrouped
    return groups


def _union(boxes: np.ndarray) -> Box:
    return (int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max()))


def _merge_overlapping(glyphs: list[list[int]], boxes: np.ndarray) -> list[list[int]]:
    """Join neighbouring glyphs of one line that are pieces of one letter (see :func:`same_letter`)."""
    spans = sorted(glyphs, key=lambda g: boxes[g, 0].min())
    merged: list[list[int]] = []
    for glyph in spans:
        if merged and same_letter(np.array(_glyph_box(merged[-1], boxes)), np.array(_glyph_box(glyph, boxes))):
            merged[-1] = merged[-1] + glyph
            continue
        merged.append(list(glyph))
    return merged


def _join_broken(glyphs: list[list[int]], boxes: np.ndarray, sizes: SizeBands) -> list[list[int]]:
    """Join a short piece to the glyph its box touches when together they are no wider than a wide letter.

    A letter whose pen lifted or whose faint join was lost (the stem of a d, a k
    written as | and <, the first arch of an m) leaves a piece shorter than
    BROKEN_PIECE letter heights beside the rest; two real letters side by side are
    each letter-tall, or together wider than an m or w (1.5 typical letter widths).
    """
    joined: list[list[int]] = []
    for glyph in glyphs:
        if joined:
            a, b = np.array(_glyph_box(joined[-1], boxes)), np.array(_glyph_box(glyph, boxes))
            tall = max(a[3] - a[1], b[3] - b[1])   # the letter's size is the larger piece's
            short = min(a[3] - a[1], b[3] - b[1]) < BROKEN_PIECE * sizes.height(tall)
            if short and b[0] <= a[2] and max(a[2], b[2]) - a[0] <= 1.5 * sizes.width(tall):
                joined[-1] = joined[-1] + glyph
                continue
        joined.append(list(glyph))
    return joined


def word_gap_threshold(gaps: np.ndarray, height: float, stroke: float) -> float:
    """The page's word-gap threshold from its gaps between neighbouring glyphs (two groups, split by Otsu).

    The split is trusted when the wide group's gaps are on average at least twice
    the narrow group's (plus a stroke width: touching letters have gap ~0). With
    one group only (every gap alike), the gaps are word gaps if they are wider
    than half a letter height, as between the widely spaced letters of a form.
    Gaps wider than WIDE_GAP letter heights (between the fields of a form, the
    columns of a table) are word gaps whatever the rest; they count as that wide
    only, so that a few of them cannot draw the split away from the word gaps.
    """
    gaps = np.sort(np.asarray(gaps, np.float64))
    if gaps.size >= 2:
        clipped = np.minimum(gaps, WIDE_GAP * height) if height > 0 else gaps
        split = otsu_split(clipped)
        lo, hi = clipped[:split], clipped[split:]
        if hi.mean() >= 2.0 * lo.mean() + stroke:
            return float((lo.max() + hi.min()) / 2)
    typical = float(np.median(gaps)) if gaps.size else 0.0
    return typical / 2 if typical > 0.5 * height else float("inf")


def _glyph_box(glyph: list[int], boxes: np.ndarray) -> Box:
    return _union(boxes[glyph])


def _split_touching(glyph: list[int], pieces: int, labels: np.ndarray, boxes: np.ndarray) -> list[Letter]:
    """Split a glyph of ``pieces`` touching letters at the emptiest columns near the even cut points."""
    x0, y0, x1, y1 = _glyph_box(glyph, boxes)
    ink = np.isin(labels[y0:y1, x0:x1], np.asarray(glyph) + 1).sum(axis=0).astype(np.float64)
    width = x1 - x0
    cuts = [0]
    for k in range(1, pieces):
        centre = k * width / pieces
        lo, hi = int(centre - width / (2 * pieces)), int(centre + width / (2 * pieces))
        cuts.append(lo + int(np.argmin(ink[lo:hi])) if hi > lo else int(centre))
    cuts.append(width)
    letters = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        rows = np.flatnonzero(np.isin(labels[y0:y1, x0 + a:x0 + b], np.asarray(glyph) + 1).any(axis=1))
        if rows.size == 0:
            continue
        box = (x0 + a, y0 + int(rows[0]), x0 + b, y0 + int(rows[-1]) + 1)
        letters.append(Letter(box, list(map(int, np.asarray(glyph) + 1)), (x0 + a, x0 + b)))
    return letters


def _specks(boxes: np.ndarray, areas: np.ndarray, stroke: float) -> np.ndarray:
    """Components no pen could make: smaller than a stroke width across (paper grain, dust, JPEG noise).

    Below 3 pixels across nothing is legible whatever the stroke, so that is the floor.
    """
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return (sizes < max(stroke, 3.0)) | (areas < 0.25 * stroke * stroke)


def analyse(mask: np.ndarray, skip_print: bool = False, rgb: np.ndarray | None = None) -> Layout:
    """Find text lines, words and letters in an ink mask (modified in place: rules and specks are erased).

    ``rgb``: the page's colours, to keep the pen's strokes where they cross a ruled line of another colour.
    ``skip_print``: leave out machine print (:mod:`vision.print_ink`), as on a printed form filled in by hand.
    """
    stroke = stroke_width(mask)
    labels, count, boxes, specks = _components(mask, stroke)
    height = _typical_height((boxes[:, 3] - boxes[:, 1])[~specks])
    if count and remove_rules(mask, labels, boxes, height, stroke, rgb):
        labels, count, boxes, specks = _components(mask, stroke)
        height = _typical_height((boxes[:, 3] - boxes[:, 1])[~specks])
    n_printed = 0
    if skip_print and count:
        ticks = check_boxes.box_pixels(labels, boxes, np.flatnonzero(~specks), height, stroke)
        if ticks:   # before print is looked for: a printed "Yes" touching its box is then a shape of its own
            for index, erase in ticks:
                x0, y0, x1, y1 = boxes[index]
                mask[y0:y1, x0:x1] &= ~erase
            labels, count, boxes, specks = _components(mask, stroke)
            n_printed = len(ticks)
    if skip_print and count:
        printed = print_ink.printed(labels, boxes, ~specks)
        n_printed += int(printed.sum())
        if printed.any():
            specks |= printed
            stroke = stroke_width(mask & ~np.concatenate([[False], printed])[labels])   # the hand's pen alone
            height = _typical_height((boxes[:, 3] - boxes[:, 1])[~specks])
            # what is left of a printed table's frame once its straight rules are gone: far taller than writing
            frames = ~specks & (boxes[:, 3] - boxes[:, 1] > RULE_LENGTH * height)
            n_printed += int(frames.sum())
            specks |= frames
    stacked = stack_strokes(np.flatnonzero(~specks), boxes, height, stroke)
    if not stacked:
        return Layout([], labels, stroke, height, 0.0, int(count) - n_printed, None, n_printed)
    gboxes = np.array([_glyph_box(g, boxes) for g in stacked])
    # Not letters: dots, commas and specks (small every way), and dashes, underlines and the pieces of a broken
    # ruled line (however long, no taller than a pen stroke). Only the dots may belong to a letter (i, j); a
    # loose bar of a T or F was stacked onto its stem above.
    tall = gboxes[:, 3] - gboxes[:, 1]
    dots = np.maximum(gboxes[:, 2] - gboxes[:, 0], tall) < MARK_SIZE * height
    small = dots | (tall <= 1.5 * stroke)
    main = np.flatnonzero(~small)
    if main.size == 0:
        return Layout([], labels, stroke, height, 0.0, int(count) - n_printed, None, n_printed)
    centres = np.stack([(gboxes[main, 0] + gboxes[main, 2]) / 2, (gboxes[main, 1] + gboxes[main, 3]) / 2], axis=1)
    angle = estimate_skew(centres, height)
    groups = group_lines(centres, height, angle)
    # a line of nothing but blobs no taller than BLOB pen strokes is smudges or dust: a letter has room inside
    groups = [g for g in groups if (tall[main[np.asarray(g)]] > BLOB * stroke).any()]
    line_glyphs = [[stacked[main[i]] for i in g] for g in groups]
    if not line_glyphs:
        return Layout([], labels, stroke, height, 0.0, int(count) - n_printed, None, n_printed)
    _attach_marks([stacked[i] for i in np.flatnonzero(dots)], line_glyphs, boxes, height)
    line_glyphs = [_merge_overlapping(glyphs, boxes) for glyphs in line_glyphs]
    sizes = _size_bands(line_glyphs, boxes, height)
    line_glyphs = [_join_broken(glyphs, boxes, sizes) for glyphs in line_glyphs]
    sizes = _size_bands(line_glyphs, boxes, height)
    # gaps in letter heights of the writing on either side, so that large and small writing share one threshold
    line_gaps = [_relative_gaps(glyphs, boxes, sizes) for glyphs in line_glyphs]
    gaps = np.array([gap for gaps in line_gaps for gap in gaps])
    threshold = word_gap_threshold(gaps, 1.0, stroke / height) if height > 0 else float("inf")
    lines = []
    for glyphs, gaps_of_line in zip(line_glyphs, line_gaps):
        lines.append(_build_line(glyphs, gaps_of_line, boxes, labels, threshold, sizes, angle))
    kept = sum(len(g) for glyphs in line_glyphs for g in glyphs)
    return Layout(lines, labels, stroke, height, angle, int(count - kept) - n_printed, sizes, n_printed)


def same_letter(a: np.ndarray, b: np.ndarray) -> bool:
    """Two boxes are pieces of one letter: columns overlapping by half the narrower, and stacked, not side by side.

    Stacked (the bar over the stem of a T, the dot of an i) means they share at most
    half the rows of the shorter one; side by side (sharing more) is how two
    neighbouring letters look when slanted writing makes their columns overlap,
    unless one box is under half the other's height (a loose bar) or lies mostly
    inside the other.
    """
    overlap = min(a[2], b[2]) - max(a[0], b[0])
    if overlap < 0.5 * min(a[2] - a[0], b[2] - b[0]):
        return False
    shared_rows = min(a[3], b[3]) - max(a[1], b[1])
    if shared_rows <= 0.5 * min(a[3] - a[1], b[3] - b[1]):
        return True
    short, tall = (a, b) if a[3] - a[1] <= b[3] - b[1] else (b, a)
    if short[3] - short[1] <= 0.5 * (tall[3] - tall[1]) and overlap >= 0.5 * (short[2] - short[0]):
        return True   # a stroke under half the other's height, over its columns: the loose bar of a T, E or F
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return overlap * shared_rows >= 0.6 * smaller   # mostly inside the other: the arm of an E, a broken bowl


def stack_strokes(main: np.ndarray, boxes: np.ndarray, height: float, stroke: float) -> list[list[int]]:
    """Group components stacked in one letter (the bar and stem of a T, a broken E) before lines are found.

    Two components join when they are pieces of one letter (:func:`same_letter`),
    the vertical gap between them is under half a letter height (the dot of an i), and together
    they are no taller than two letter heights (so letters of two text lines do not join).
    A flat stroke (no taller than a pen stroke) joins only when at most one of its
    partners is not flat: the loose bars of an F lie by one stem, an underline or
    a piece of ruled line under several letters.
    """
    b = boxes[main]
    order = np.argsort(b[:, 0], kind="stable")
    rows, cols = [], []
    for rank, i in enumerate(order):
        for j in order[rank + 1:]:
            if b[j, 0] >= b[i, 2]:
                break
            gap = max(b[j, 1] - b[i, 3], b[i, 1] - b[j, 3])
            tall = max(b[i, 3], b[j, 3]) - min(b[i, 1], b[j, 1])
            if gap < height / 2 and tall <= 2 * height and same_letter(b[i], b[j]):
                rows.append(i)
                cols.append(j)
    flat = b[:, 3] - b[:, 1] <= 1.5 * stroke
    ends, others = np.asarray(rows + cols, np.int64), np.asarray(cols + rows, np.int64)
    letters = np.bincount(ends[~flat[others]], minlength=main.size)   # partners that are not flat themselves
    shared = flat & (letters > 1)
    keep = [k for k, (i, j) in enumerate(zip(rows, cols)) if not (shared[i] or shared[j])]
    rows, cols = [rows[k] for k in keep], [cols[k] for k in keep]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(main.size, main.size))
    count, which = connected_components(graph, directed=False)
    groups: list[list[int]] = [[] for _ in range(count)]
    for index, group in zip(main, which):
        groups[group].append(int(index))
    return groups


def _attach_marks(marks: list[list[int]], line_glyphs: list[list[list[int]]], boxes: np.ndarray,
                  height: float) -> None:
    """Join each small glyph (dot, short stroke) to the letter it belongs to, in place; drop the rest.

    It belongs to a letter within a letter height that it is a piece of
    (:func:`same_letter`), or that it sits straight above or below (the dot of an
    i or j: centre within the letter's columns widened by the dot's width, no rows
    shared). Small glyphs belonging nowhere are specks, full stops and commas,
    which are not letters.
    """
    if not marks:
        return
    flat = [(li, gi) for li, glyphs in enumerate(line_glyphs) for gi in range(len(glyphs))]
    gboxes = np.array([_glyph_box(line_glyphs[li][gi], boxes) for li, gi in flat])
    for mark in marks:
        box = np.array(_glyph_box(mark, boxes))
        vertical = np.maximum(gboxes[:, 1] - box[3], box[1] - gboxes[:, 3])
        centre, width = (box[0] + box[2]) / 2, box[2] - box[0]
        over = (vertical >= 0) & (gboxes[:, 0] - width <= centre) & (centre < gboxes[:, 2] + width)
        near = [k for k in np.flatnonzero(vertical < height) if over[k] or same_letter(gboxes[k], box)]
        if near:
            li, gi = flat[min(near, key=lambda k: vertical[k])]
            line_glyphs[li][gi] = line_glyphs[li][gi] + mark


def _gaps(glyphs: list[list[int]], boxes: np.ndarray) -> list[float]:
    """Horizontal gaps between consecutive glyphs of a line (left to right; overlaps count as 0)."""
    right = -np.inf
    gaps = []
    for glyph in glyphs:
        x0, x1 = boxes[glyph, 0].min(), boxes[glyph, 2].max()
        if right > -np.inf:
            gaps.append(max(0.0, float(x0 - right)))
        right = max(right, x1)
    return gaps


def _relative_gaps(glyphs: list[list[int]], boxes: np.ndarray, sizes: SizeBands) -> list[float]:
    """:func:`_gaps` in letter heights of the writing around each gap (the taller neighbour's)."""
    tall = [boxes[g, 3].max() - boxes[g, 1].min() for g in glyphs]
    return [gap / max(sizes.height(max(a, b)), 1.0) for gap, a, b in zip(_gaps(glyphs, boxes), tall, tall[1:])]


def _size_bands(line_glyphs: list[list[list[int]]], boxes: np.ndarray, height: float) -> SizeBands:
    """The page's glyph sizes; its typical letter width is the median width of the glyphs no wider than a letter
    height (single letters in any script)."""
    gboxes = np.array([_glyph_box(g, boxes) for glyphs in line_glyphs for g in glyphs], float).reshape(-1, 4)
    widths, heights = gboxes[:, 2] - gboxes[:, 0], gboxes[:, 3] - gboxes[:, 1]
    narrow = widths[widths <= height]
    return SizeBands.of(np.stack([widths, heights], 1), height, float(np.median(narrow)) if narrow.size else height)


def _build_line(glyphs: list[list[int]], gaps: list[float], boxes: np.ndarray, labels: np.ndarray,
                threshold: float, sizes: SizeBands, angle: float) -> Line:
    """Split a line's glyphs into words where a (relative) gap exceeds the threshold; find each word's letters."""
    words: list[list[list[int]]] = [[glyphs[0]]]
    for glyph, gap in zip(glyphs[1:], gaps):
        if gap > threshold:
            words.append([glyph])
        else:
            words[-1].append(glyph)
    built = []
    for word in words:
        widths = [boxes[g, 2].max() - boxes[g, 0].min() for g in word]
        letter_width = sizes.width(float(np.median([boxes[g, 3].max() - boxes[g, 1].min() for g in word])))
        pieces = [int(w // letter_width) if w > MULTI_LETTER * letter_width else 1 for w in widths]
        joined = sum(w for w, n in zip(widths, pieces) if n > 1)
        # Printed letters touch now and then; joined-up writing is mostly multi-letter glyphs.
        cursive = bool(max(pieces) >= CURSIVE_LETTERS or joined >= 0.5 * sum(widths))
        components = sorted(int(c) + 1 for g in word for c in g)
        box = _union(np.array([_glyph_box(g, boxes) for g in word]))
        letters: list[Letter] = []
        if not cursive:
            for glyph, n in zip(word, pieces):
                if n > 1:
                    letters.extend(_split_touching(glyph, n, labels, boxes))
                else:
                    letters.append(Letter(_glyph_box(glyph, boxes), sorted(int(c) + 1 for c in glyph)))
        built.append(Word(box, cursive, letters, components))
    line_box = _union(np.array([w.box for w in built]))
    return Line(line_box, angle, built)
