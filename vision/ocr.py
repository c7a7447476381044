"""``seqdl ocr``: page image -> layout -> letter crops and cut pieces -> one batched classification -> text.

A page goes through the same steps as ``seqdl segment`` (load, ink mask,
:func:`vision.layout.analyse`); then each word becomes a run of *glyphs*. A
glyph that is one letter gives one crop. A glyph that may hold several letters
(touching letters split by the layout, a joined-up word, a glyph much wider than
the page's letters) is cut by recognition (:mod:`vision.cuts`): every letter-
sized piece between candidate cuts gives a crop. All crops of the page go
through the classifier in one call. Each text line is then a lattice (one arc
per letter or piece, a fixed space arc between words) that the core's beam
search (:mod:`seqdl.beam`) decodes, with a language model's scores when one is
given as a callback. EMNIST letters have no case: the text is lower case. A
numbers model (:mod:`vision.digits`) then reads the words that are numbers.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageFont

from seqdl.beam import Arc, Scorer, beam_search

from . import cuts, digits, emnist, heights
from .images import MAX_PIXELS, binarise, darkest_channel, ink_darkness, load_rgb
from .layout import Box, Layout, Word, analyse
from .segment import annotation_canvas, annotation_path, letter_ink, pages_in_order

SYMBOLS = emnist.ALPHABET + " "        # what the beam search and a language model see; the space is fixed
SPACE = len(emnist.ALPHABET)
LOW_CONFIDENCE = 0.5                   # a letter the classifier gives less than this is flagged
WIDE_GLYPH = 1.5                       # a glyph wider than this many median letter widths may hold several letters
PIECE_BONUS = 0.0                      # log-prior per letter read in a cut glyph (more pieces vs fewer)
LM_WEIGHT = 0.3                        # default --lm-weight and share of a uniform distribution mixed into the
LM_MIX = 0.3                           # language model (both chosen on validation pages: benchmarks/ocr.py)
BEAM_WIDTH = 8
READ_PIXELS = 4_000_000                # larger pages are read at a reduced size (an integer factor) ...
MIN_STROKE = 2.5                       # ... unless their pen strokes would end up thinner than this (pixels)
FLOOR = 1e-6                           # classifier probabilities are floored here before the log

Classifier = Callable[[np.ndarray], np.ndarray]
"""Upright uint8 crops (N, 28, 28) -> (N, 26) letter probabilities, column k = ``emnist.ALPHABET[k]``."""


@dataclass(frozen=True)
class LanguageHelp:
    """A language model's scores as the beam search's callback, and how much they count (see seqdl.beam)."""

    scorer: Scorer
    weight: float = LM_WEIGHT
    mix: float = LM_MIX


@dataclass
class ReadLetter:
    line: int
    word: int
    index: int
    box: Box
    letter: str
    probability: float                 # the classifier's probability of ``letter``
    top3: list[tuple[str, float]]      # the classifier's three most probable letters
    from_cut: bool                     # a piece chosen by cut-by-recognition, not a box the layout found
    crop: int = -1                     # its crop in the page's batch

    @property
    def low_confidence(self) -> bool:
        return self.probability < LOW_CONFIDENCE


@dataclass
class PageText:
    path: Path
    width: int
    height: int
    layout: Layout
    letters: list[ReadLetter]
    seconds: float
    n_crops: int = 0
    scale: int = 1                     # the page was read reduced by this factor (layout is in reduced pixels)

    @property
    def lines(self) -> list[str]:
        """Each text line's words, lower case, one space between words."""
        words: dict[tuple[int, int], str] = {}
        for letter in self.letters:
            words[letter.line, letter.word] = words.get((letter.line, letter.word), "") + letter.letter
        out: list[list[str]] = [[] for _ in self.layout.lines]
        for (line, _), word in sorted(words.items()):
            out[line].append(word)
        return [" ".join(w) for w in out if w]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def n_words(self) -> int:
        return len({(letter.line, letter.word) for letter in self.letters})

    @property
    def mean_confidence(self) -> float:
        return float(np.mean([letter.probability for letter in self.letters])) if self.letters else float("nan")


@dataclass
class _Glyph:
    """One letter, or a run of ink that may hold several (then cut by recognition)."""

    box: Box
    ink: np.ndarray                    # float32 (H, W) ink in the box
    cut: bool
    crops: list[int] = field(default_factory=list)       # indices into the page's crop batch
    pieces: list[cuts.Piece] = field(default_factory=list)
    n_cuts: int = 2


# ---------------------------------------------------------------- reading
def read_array(path: Path, rgb: np.ndarray, classify: Classifier, lm: LanguageHelp | None = None,
               beam_width: int = BEAM_WIDTH, keep_print: bool = False, numbers: Classifier | None = None
               ) -> PageText:
    """Read an already loaded (H, W, 3) uint8 page; boxes are in its pixels whatever size it was read at.

    A 12-megapixel photo holds letters 100-200 pixels tall, far more than the
    32-pixel NIST frame a crop is made from, so a page larger than READ_PIXELS is
    read reduced by an integer factor (a box filter), which makes every step
    cheaper; if its strokes would then be thinner than MIN_STROKE it is read at
    full size. Machine print (a form's labels) is left out unless ``keep_print``.
    With a ``numbers`` model (:mod:`vision.digits`), words of digits are read as numbers.
    """
    start = time.perf_counter()
    factor = max(1, math.ceil(math.sqrt(rgb.shape[0] * rgb.shape[1] / READ_PIXELS)))
    darkness, layout = _analyse(rgb, factor, keep_print)
    if factor > 1 and 0 < layout.stroke < MIN_STROKE:
        factor = 1
        darkness, layout = _analyse(rgb, factor, keep_print)
    lines = [[_glyphs(word, layout, darkness) for word in line.words] for line in layout.lines]
    inks: list[np.ndarray] = []
    angles: list[float] = []
    for line, words in zip(layout.lines, lines):
        for glyphs in words:
            for glyph in glyphs:
                _add_crops(glyph, layout, inks)
                angles.extend([line.angle_degrees] * (len(inks) - len(angles)))
    crops = emnist.prepare_crops(inks, angles)
    probs = np.asarray(classify(crops), np.float64) if len(crops) else np.zeros((0, len(emnist.ALPHABET)))
    letters: list[ReadLetter] = []
    for li, words in enumerate(lines):
        if lm is not None and hasattr(lm.scorer, "reset"):
            lm.scorer.reset()   # lines are read independently: the scorer's cache of histories starts afresh
        letters.extend(_read_line(li, words, probs, layout, lm, beam_width))
    if numbers is not None and letters:
        _read_numbers(letters, crops, numbers)
    for letter in letters:
        letter.box = tuple(int(v * factor) for v in letter.box)   # type: ignore[assignment]
    height, width = rgb.shape[:2]
    return PageText(path, width, height, layout, letters, time.perf_counter() - start, len(crops), factor)


def _analyse(rgb: np.ndarray, factor: int, keep_print: bool) -> tuple[np.ndarray, Layout]:
    """Ink darkness and layout of the page reduced by ``factor``."""
    small = np.asarray(Image.fromarray(rgb).reduce(factor)) if factor > 1 else rgb
    darkness = ink_darkness(darkest_channel(small))
    return darkness, analyse(binarise(darkness), skip_print=not keep_print, rgb=small)


def read_file(path: str | os.PathLike, classify: Classifier, lm: LanguageHelp | None = None,
              max_pixels: int = MAX_PIXELS, keep_print: bool = False, numbers: Classifier | None = None
              ) -> tuple[PageText, np.ndarray]:
    """Load and read one page; returns the result and the upright RGB image (for annotation)."""
    start = time.perf_counter()
    rgb = load_rgb(path, max_pixels)
    page = read_array(Path(path), rgb, classify, lm, keep_print=keep_print, numbers=numbers)
    page.seconds = time.perf_counter() - start
    return page, rgb


def _glyphs(word: Word, layout: Layout, darkness: np.ndarray) -> list[_Glyph]:
    """The word's glyphs in reading order; letters the layout split from one glyph are joined again."""
    if word.cursive:
        return [_glyph(layout, darkness, word.box, word.components, cut=True)]
    widths = [l.box[2] - l.box[0] for l in word.letters if l.columns is None]
    glyphs: list[_Glyph] = []
    run: list = []
    for letter in word.letters + [None]:
        if run and (letter is None or letter.columns is None or letter.components != run[0].components):
            box = (run[0].box[0], min(l.box[1] for l in run), run[-1].box[2], max(l.box[3] for l in run))
            glyphs.append(_glyph(layout, darkness, box, run[0].components, cut=True))
            run = []
        if letter is None:
            break
        if letter.columns is not None:
            run.append(letter)
            continue
        tall = layout.height_near(letter.box[3] - letter.box[1])
        wide = (letter.box[2] - letter.box[0]) > WIDE_GLYPH * _median_width(widths, tall)
        glyphs.append(_glyph(layout, darkness, letter.box, letter.components, cut=wide))
    return glyphs


def _median_width(widths: list[int], height: float) -> float:
    return float(np.median(widths)) if len(widths) >= 3 else 0.7 * height


def _glyph(layout: Layout, darkness: np.ndarray, box: Box, components: list[int], cut: bool) -> _Glyph:
    return _Glyph(box, letter_ink(layout.labels, darkness, box, components, None), cut)


def _add_crops(glyph: _Glyph, layout: Layout, inks: list[np.ndarray]) -> None:
    """Append the glyph's letter ink, or every piece's ink if it is to be cut, and remember their indices."""
    if not glyph.cut:
        glyph.crops = [len(inks)]
        inks.append(glyph.ink)
        return
    points = cuts.cut_points(glyph.ink > 0.5, layout.stroke)
    glyph.n_cuts = len(points)
    glyph.pieces = cuts.pieces(points, _height(glyph, layout))
    for piece in glyph.pieces:
        glyph.crops.append(len(inks))
        inks.append(cuts.piece_ink(glyph.ink, piece))


def _height(glyph: _Glyph, layout: Layout) -> float:
    """Letter height of the writing the glyph belongs to (a page may hold several sizes)."""
    return layout.height_near(glyph.box[3] - glyph.box[1])


def _read_line(li: int, words: list[list[_Glyph]], probs: np.ndarray, layout: Layout, lm: LanguageHelp | None,
               beam_width: int) -> list[ReadLetter]:
    """Build the line's lattice, search it, and turn the best path into letters.

    Each arc's letter posteriors are weighed by where its box sits on the line
    (:func:`vision.heights.line_priors`).
    """
    boxes = {glyph.crops[0]: glyph.box for glyphs in words for glyph in glyphs if not glyph.cut}
    boxes.update({glyph.crops[k]: _piece_box(glyph, piece) for glyphs in words for glyph in glyphs if glyph.cut
                  for k, piece in enumerate(glyph.pieces)})
    crops = sorted(boxes)
    angle = layout.lines[li].angle_degrees
    prior = heights.line_priors(np.array([boxes[c] for c in crops]), angle)
    rows = dict(zip(crops, _log_rows(probs[crops], prior)))
    arcs: list[Arc] = []
    meaning: list[tuple[int, _Glyph, int] | None] = []   # per arc: (word, glyph, piece or -1) or None (space)
    node = 0
    space = np.full(len(SYMBOLS), -np.inf)
    space[SPACE] = 0.0
    for wi, glyphs in enumerate(words):
        if wi:
            arcs.append(Arc(node, node + 1, space))
            meaning.append(None)
            node += 1
        for glyph in glyphs:
            if not glyph.cut:
                arcs.append(Arc(node, node + 1, rows[glyph.crops[0]]))
                meaning.append((wi, glyph, -1))
                node += 1
                continue
            inked, height = glyph.ink.any(axis=0), _height(glyph, layout)
            for k, piece in enumerate(glyph.pieces):
                if not inked[piece.x0:piece.x1].any():
                    continue
                bonus = PIECE_BONUS + cuts.width_prior(piece.x1 - piece.x0, height)
                arcs.append(Arc(node + piece.first, node + piece.last, rows[glyph.crops[k]], bonus))
                meaning.append((wi, glyph, k))
            node += glyph.n_cuts - 1
    if not arcs:
        return []
    best = (beam_search(node + 1, arcs, width=beam_width) if lm is None
            else beam_search(node + 1, arcs, lm.scorer, lm.weight, beam_width, lm.mix))
    if not best:
        return []
    letters: list[ReadLetter] = []
    index: dict[int, int] = {}
    for symbol, arc in zip(best[0].symbols, best[0].arcs):
        if meaning[arc] is None:
            continue
        wi, glyph, k = meaning[arc]   # type: ignore[misc]
        crop = glyph.crops[0] if k < 0 else glyph.crops[k]
        box = glyph.box if k < 0 else _piece_box(glyph, glyph.pieces[k])
        order = np.argsort(-probs[crop])[:3]
        letters.append(ReadLetter(li, wi, index.get(wi, 0), box, SYMBOLS[symbol], float(probs[crop, symbol]),
                                  [(SYMBOLS[c], float(probs[crop, c])) for c in order], glyph.cut, crop))
        index[wi] = index.get(wi, 0) + 1
    return letters


def _read_numbers(letters: list[ReadLetter], crops: np.ndarray, numbers: Classifier) -> None:
    """Read as digits every word whose glyphs' log-odds of being digits (:func:`vision.digits.number_log_odds`)
    pass NUMBER_ODDS; its letters take the digit, probability and top 3 of the numbers model."""
    probs = np.asarray(numbers(crops[[letter.crop for letter in letters]]), np.float64)
    words: dict[tuple[int, int], list[int]] = {}
    for k, letter in enumerate(letters):
        words.setdefault((letter.line, letter.word), []).append(k)
    for rows in words.values():
        if digits.number_log_odds(probs[rows]) <= digits.NUMBER_ODDS:
            continue
        for k in rows:
            order = np.argsort(-probs[k, : len(digits.DIGITS)])[:3]
            letters[k].letter = digits.DIGITS[order[0]]
            letters[k].probability = float(probs[k, order[0]])
            letters[k].top3 = [(digits.DIGITS[c], float(probs[k, c])) for c in order]


def _log_rows(p: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Classifier rows and their log-priors as log scores over SYMBOLS (never the space)."""
    return np.hstack([np.log(np.maximum(p, FLOOR)) + prior, np.full((len(p), 1), -np.inf)])


def _piece_box(glyph: _Glyph, piece: cuts.Piece) -> Box:
    rows = np.flatnonzero(glyph.ink[:, piece.x0:piece.x1].any(axis=1))
    x0, y0 = glyph.box[0], glyph.box[1]
    top, bottom = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, glyph.ink.shape[0])
    return (x0 + piece.x0, y0 + top, x0 + piece.x1, y0 + bottom)


# ---------------------------------------------------------------- outputs
def page_record(page: PageText) -> dict[str, Any]:
    """The ``--json`` object for one page."""
    low = sum(letter.low_confidence for letter in page.letters)
    return {
        "file": str(page.path), "text": page.text, "n_lines": len(page.lines), "n_words": page.n_words,
        "n_letters": len(page.letters), "n_digits": sum(l.letter.isdigit() for l in page.letters),
        "n_low_confidence": low, "n_from_cut": sum(l.from_cut for l in page.letters),
        "mean_confidence": round(page.mean_confidence, 4) if page.letters else None,
        "n_printed": page.layout.n_printed, "n_crops": page.n_crops, "seconds": round(page.seconds, 3),
    }


def annotate(page: PageText, rgb: np.ndarray, out: str | os.PathLike) -> Path:
    """A PNG of the page with every letter's box (blue; orange if cut by recognition, red if low confidence)
    and the letter read drawn above it."""
    from seqdl.io import atomic_path

    picture, draw, scale, thick = annotation_canvas(rgb)
    size = max(10, round(0.5 * page.layout.letter_height * page.scale * scale))
    font = ImageFont.load_default(size=size)
    for letter in page.letters:
        x0, y0, x1, y1 = (v * scale for v in letter.box)
        colour = (220, 30, 30) if letter.low_confidence else (240, 140, 0) if letter.from_cut else (30, 90, 230)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=thick)
        draw.text(((x0 + x1) / 2, y0 - thick), letter.letter, fill=colour, font=font, anchor="md")
    with atomic_path(out) as temp:
        picture.save(temp, format="PNG")
    return Path(out)


def parquet_table(pages: Sequence[PageText], metadata: dict[str, str]) -> Any:
    """One row per letter: where it is, what it was read as, the top 3, and the flags."""
    import pyarrow as pa

    names = ("file", "line", "word", "index", "x0", "y0", "x1", "y1", "letter", "probability", "top3_letters",
             "top3_probabilities", "low_confidence", "from_cut")
    columns: dict[str, list] = {name: [] for name in names}
    for page in pages:
        for letter in page.letters:
            values = (str(page.path), letter.line, letter.word, letter.index, *letter.box, letter.letter,
                      letter.probability, "".join(c for c, _ in letter.top3), [p for _, p in letter.top3],
                      letter.low_confidence, letter.from_cut)
            for name, value in zip(names, values):
                columns[name].append(value)
    types = {"file": pa.string(), "letter": pa.string(), "probability": pa.float32(), "top3_letters": pa.string(),
             "top3_probabilities": pa.list_(pa.float32()), "low_confidence": pa.bool_(), "from_cut": pa.bool_()}
    table = pa.table({k: pa.array(v, types.get(k, pa.int32())) for k, v in columns.items()})
    return table.replace_schema_metadata({**metadata, "seqdl.case": "EMNIST letters have no case: lower case",
                                          "seqdl.digits": "a letter is a digit where its word was read as a number"})


def write_parquet(pages: Sequence[PageText], out: str | os.PathLike, metadata: dict[str, str]) -> Path:
    import pyarrow.parquet as pq

    from seqdl.io import atomic_path

    with atomic_path(out) as temp:
        pq.write_table(parquet_table(pages, metadata), temp)
    return Path(out)


def read_pages(paths: Sequence[Path], classify: Classifier, annotate_dir: Path | None = None,
               out: Path | None = None, provenance: dict[str, Any] | None = None, lm: LanguageHelp | None = None,
               quiet: bool = False, max_pixels: int = MAX_PIXELS, keep_print: bool = False,
               numbers: Classifier | None = None,
               ) -> tuple[list[PageText], list[tuple[Path, Exception]]]:
    """Read pages in order; a bad page is recorded and skipped, the others go on.

    ``provenance`` holds :func:`seqdl.io.provenance`'s ``command``, ``params`` and
    ``model`` for ``--out``; its inputs are the pages that were read. Annotated
    PNGs are written page by page, the Parquet file once at the end (not at all
    if no page was read). A page with no text gets a warning.
    """
    from seqdl.io import provenance as provenance_metadata, warn

    pages: list[PageText] = []
    failures: list[tuple[Path, Exception]] = []
    taken: set[Path] = set()
    def read(path: Path) -> tuple[PageText, np.ndarray]:
        return read_file(path, classify, lm, max_pixels, keep_print, numbers)

    for path, page, rgb in pages_in_order(paths, "ocr", read, quiet, failures):
        if not page.letters:
            warn(f"{path}: no text found (blank page?)")
        if annotate_dir is not None:
            annotate(page, rgb, annotation_path(annotate_dir, path, taken, "ocr"))
        pages.append(page)
    if out is not None and pages:
        args = {"command": "seqdl ocr", "params": {}, **(provenance or {})}
        write_parquet(pages, out, provenance_metadata(inputs=[p.path for p in pages], **args))
    return pages, failures


def character_accuracy(read: str, truth: str, digits: bool = False) -> float:
    """1 - edit distance / length over letters only (and digits, with ``digits``), case-insensitive, spaces and
    punctuation ignored."""
    keep = str.isalnum if digits else str.isalpha
    a = [c for c in read.lower() if keep(c)]
    b = [c for c in truth.lower() if keep(c)]
    if not b:
        return float(not a)
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b, 1):
        current = [j] + [0] * len(a)
        for i, ca in enumerate(a, 1):
            current[i] = min(previous[i] + 1, current[i - 1] + 1, previous[i - 1] + (ca != cb))
        previous = current
    return max(0.0, 1.0 - previous[-1] / len(b))
