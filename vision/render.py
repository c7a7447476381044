"""Synthetic handwritten pages made of EMNIST letters, with known lines, words and letter positions.

Used by the tests (every layout decision checked against the truth) and to make
``data/examples/page-emnist.png``. A page is drawn as ink darkness on a canvas,
turned by a small angle, then composited in blue ink on cream paper under uneven
light, with pale ruled lines, sensor noise and specks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .emnist import ALPHABET

EXAMPLE_TEXT = ("a bad face", "jam like milk", "each big lime", "fled mad deal", "glide like a hike")
EXAMPLE_WORDS = ("a", "bad", "cab", "face", "jam", "milk", "each", "big", "lime", "fled", "made", "deal", "glide",
                 "like", "hike", "black", "head", "image", "fig", "jade", "mild", "held", "beam", "dime")


@dataclass
class Options:
    """How a page is drawn (sizes in pixels, angles in degrees)."""

    letter_height: int = 48            # EMNIST's 28x28 box scaled to this
    margin: int = 60
    line_pitch: float = 1.9            # line spacing in letter heights (randomised +-10 %)
    letter_gap: tuple[float, float] = (0.08, 0.3)   # gap inside a word, in letter heights
    word_gap: tuple[float, float] = (0.9, 1.5)      # gap between words, in letter heights
    max_rotation: float = 3.0
    rotation: float | None = None      # this angle instead of a random one within +-max_rotation
    lighting: float = 0.3              # paper is up to this much darker in one corner
    noise: float = 5.0                 # grey levels of Gaussian sensor noise
    specks: int = 60                   # small dark dots scattered on the paper
    ruled: bool = True
    rule_at: float = 1.3               # a line's rule this many letter heights below its top (under the letters)
    rule_colour: tuple[int, int, int] | None = None   # None: the ink's, pale; else drawn in this colour
    ink_colour: tuple[int, int, int] = (25, 35, 120)


@dataclass
class TruthLetter:
    char: str
    line: int
    word: int
    index: int
    centre: tuple[float, float]        # x, y on the final page


@dataclass
class RenderedPage:
    rgb: np.ndarray                    # (H, W, 3) uint8
    lines: list[list[str]]             # words per line
    letters: list[TruthLetter] = field(default_factory=list)
    angle_degrees: float = 0.0


def random_text(rng: np.random.Generator, n_lines: int, words_per_line: tuple[int, int] = (2, 5),
                words: tuple[str, ...] = EXAMPLE_WORDS) -> list[str]:
    return [" ".join(rng.choice(words, size=int(rng.integers(words_per_line[0], words_per_line[1] + 1))))
            for _ in range(n_lines)]


def _letter_ink(images: np.ndarray, labels: np.ndarray, char: str, rng: np.random.Generator,
                height: int, symbols: str) -> np.ndarray:
    """A random EMNIST image of ``char`` (label k + 1 is ``symbols[k]``), cropped to its ink and scaled (0..1
    darkness)."""
    choices = np.flatnonzero(labels == symbols.index(char.lower()) + 1)
    if choices.size == 0:
        raise ValueError(f"no EMNIST image for letter {char!r} in the images given")
    image = images[rng.choice(choices)].astype(np.float32) / 255.0
    rows, cols = np.nonzero(image > 0.1)
    image = image[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    scale = height / 28.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return np.asarray(Image.fromarray(image, "F").resize(size, Image.Resampling.BILINEAR))


def render_page(images: np.ndarray, labels: np.ndarray, text: list[str] | tuple[str, ...], seed: int = 0,
                options: Options | None = None, symbols: str = ALPHABET) -> RenderedPage:
    """Draw ``text`` (one string per line, words separated by spaces) from EMNIST ``images`` (upright); label
    k + 1 is ``symbols[k]`` (EMNIST letters' labels by default)."""
    o = options or Options()
    rng = np.random.default_rng(seed)
    h = o.letter_height
    lines = [line.split() for line in text]
    placed = []   # (line, word, index, char, ink, x, y)
    y = float(o.margin)
    width = 0
    rules = []
    for li, words in enumerate(lines):
        x = float(o.margin)
        for wi, word in enumerate(words):
            for ci, char in enumerate(word):
                ink = _letter_ink(images, labels, char, rng, h, symbols)
                top = y + (h - ink.shape[0]) / 2 + rng.uniform(-0.05, 0.05) * h
                placed.append((li, wi, ci, char, ink, int(round(x)), int(round(top))))
                x += ink.shape[1] + rng.uniform(*o.letter_gap) * h
            x += rng.uniform(*o.word_gap) * h - rng.uniform(*o.letter_gap) * h
        width = max(width, int(x))
        rules.append(y + o.rule_at * h)
        y += o.line_pitch * h * rng.uniform(0.9, 1.1)
    page_w, page_h = width + o.margin, int(y - (o.line_pitch - 1) * h + o.margin)
    canvas = np.zeros((page_h, page_w), np.float32)
    for _, _, _, _, ink, x0, y0 in placed:
        region = canvas[y0:y0 + ink.shape[0], x0:x0 + ink.shape[1]]
        np.maximum(region, ink[: region.shape[0], : region.shape[1]], out=region)
    # rules of their own colour are printed under the writing; otherwise they are pale lines of the ink's
    ruling = np.zeros_like(canvas) if o.rule_colour is not None else canvas
    if o.ruled:
        for rule in rules:
            r = int(rule)
            ruling[r:r + 2, :] = np.maximum(ruling[r:r + 2, :], 0.45 if o.rule_colour is None else 1.0)
    angle = float(rng.uniform(-o.max_rotation, o.max_rotation)) if o.rotation is None else o.rotation
    canvas = np.array(Image.fromarray(canvas, "F").rotate(angle, Image.Resampling.BILINEAR))
    cx, cy = page_w / 2, page_h / 2
    theta = np.radians(angle)
    truth = []
    for li, wi, ci, char, ink, x0, y0 in placed:
        px, py = x0 + ink.shape[1] / 2 - cx, y0 + ink.shape[0] / 2 - cy
        truth.append(TruthLetter(char, li, wi, ci, (cx + px * np.cos(theta) + py * np.sin(theta),
                                                    cy - px * np.sin(theta) + py * np.cos(theta))))
    for _ in range(o.specks):
        sy, sx = int(rng.integers(0, page_h - 2)), int(rng.integers(0, page_w - 2))
        canvas[sy:sy + 2, sx:sx + 2] = np.maximum(canvas[sy:sy + 2, sx:sx + 2], rng.uniform(0.3, 0.7))
    yy, xx = np.mgrid[0:page_h, 0:page_w].astype(np.float32)
    light = 1.0 - o.lighting * (xx / page_w * 0.6 + yy / page_h * 0.4)
    paper = np.array([246, 240, 222], np.float32)
    if o.rule_colour is not None:
        ruling = np.array(Image.fromarray(ruling, "F").rotate(angle, Image.Resampling.BILINEAR))
        beta = np.clip(ruling, 0, 1)[:, :, None]
        paper = paper * (1 - beta) + np.array(o.rule_colour, np.float32) * beta
    alpha = np.clip(canvas, 0, 1)[:, :, None]
    rgb = (paper * (1 - alpha) + np.array(o.ink_colour, np.float32) * alpha) * light[:, :, None]
    rgb += rng.normal(0, o.noise, rgb.shape[:2])[:, :, None]
    return RenderedPage(np.clip(np.round(rgb), 0, 255).astype(np.uint8), lines, truth, angle)


def write_example(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, seed: int = 0,
                  text: tuple[str, ...] = EXAMPLE_TEXT, symbols: str = ALPHABET) -> Path:
    """Write an example page (PNG; by default the README's) and its text beside it (``.txt``, one line per text
    line)."""
    from seqdl.io import atomic_open, atomic_path

    page = render_page(images, labels, text, seed=seed, symbols=symbols)
    path = Path(path)
    # 32 colours (no dithering) keep ink, paper, light and noise and make a ~260 KB palette PNG instead of ~700 KB.
    picture = Image.fromarray(page.rgb).quantize(colors=32, dither=Image.Dither.NONE)
    with atomic_path(path) as temp:
        picture.save(temp, format="PNG", optimize=True)
    with atomic_open(path.with_suffix(".txt")) as handle:
        handle.write("\n".join(text) + "\n")
    return path


def score_letters(page: RenderedPage, found: list[tuple[int, int, int, tuple[int, int, int, int]]]) -> float:
    """Fraction of the page's letters found once, alone, with the right line, word and position in the word.

    ``found`` holds (line, word, index, box) per detected letter in reading order; a
    truth letter counts when exactly one detected box holds its centre, that box
    holds no other letter's centre, and the numbering agrees.
    """
    if not page.letters:
        return 1.0
    centres = np.array([t.centre for t in page.letters])
    if not found:
        return 0.0
    boxes = np.array([f[3] for f in found], np.float64)
    inside = ((centres[:, None, 0] >= boxes[None, :, 0]) & (centres[:, None, 0] < boxes[None, :, 2])
              & (centres[:, None, 1] >= boxes[None, :, 1]) & (centres[:, None, 1] < boxes[None, :, 3]))
    good = 0
    for t, truth in enumerate(page.letters):
        hits = np.flatnonzero(inside[t])
        if hits.size == 1 and inside[:, hits[0]].sum() == 1:
            line, word, index, _ = found[hits[0]]
            good += (line, word, index) == (truth.line, truth.word, truth.index)
    return good / len(page.letters)
