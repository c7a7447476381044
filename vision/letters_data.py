"""EMNIST-style letter data for training and evaluation: reading a ``--data PREFIX`` pair, the validation split and
class-balanced sampling.

``PREFIX`` names ``PREFIX-images-idx3-ubyte.gz`` and ``PREFIX-labels-idx1-ubyte.gz``
(EMNIST orientation: images stored transposed, labels 1..26 = a..z). Images come
back upright, labels as classes 0..25.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqdl.errors import SeqdlError

from .emnist import read_idx_images, read_idx_labels
from .letters_model import CLASSES, SIZE


@dataclass(frozen=True)
class LetterData:
    """Upright uint8 images (N, 28, 28) and their classes (0..25 for letters), with the files they came from."""

    images: np.ndarray
    labels: np.ndarray
    images_path: Path
    labels_path: Path

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> "LetterData":
        return LetterData(self.images[rows], self.labels[rows], self.images_path, self.labels_path)


def idx_paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """The images and labels files of ``prefix`` (gzipped, or plain where only the plain file exists)."""
    paths = []
    for part in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        gz = Path(f"{prefix}-{part}.gz")
        plain = Path(f"{prefix}-{part}")
        paths.append(plain if not gz.exists() and plain.exists() else gz)
    return paths[0], paths[1]


def read_letters(prefix: str | os.PathLike, classes: str = CLASSES, first_label: int = 1,
                 what: str = "EMNIST letters") -> LetterData:
    """An EMNIST letters pair (or, with ``classes`` and ``first_label``, another EMNIST-style set such as digits
    labelled 0..9); a wrong magic, size, shape, count or label range is one error naming the file."""
    images_path, labels_path = idx_paths(prefix)
    for path in (images_path, labels_path):
        if not path.exists():
            raise SeqdlError(f"no such file (--data {prefix} names {images_path.name} and {labels_path.name})",
                             str(path))
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if images.shape[1:] != (SIZE, SIZE):
        raise SeqdlError(f"images are {images.shape[1]}x{images.shape[2]}, letters must be {SIZE}x{SIZE}",
                         str(images_path))
    if len(images) != len(labels):
        raise SeqdlError(f"holds {len(labels)} labels for {len(images)} images in {images_path.name}",
                         str(labels_path))
    if len(labels) == 0:
        raise SeqdlError("holds no images", str(images_path))
    last = first_label + len(classes) - 1
    bad = (labels < first_label) | (labels > last)
    if bad.any():
        first = int(np.argmax(bad))
        raise SeqdlError(f"label {labels[first]} at index {first} is outside {first_label}..{last} ({what})",
                         str(labels_path))
    return LetterData(images, (labels - first_label).astype(np.int64), images_path, labels_path)


def split_validation(data: LetterData, per_class: int, classes: str = CLASSES) -> tuple[LetterData, LetterData]:
    """(train, validation): the first ``per_class`` images of each class, in file order, are held out.

    Deterministic (no seed: the same pool always gives the same split) and
    balanced like the EMNIST test sets. The validation rows are interleaved
    letter by letter, so any prefix of them (what a short validation scores) is
    balanced too.
    """
    if per_class < 0:
        raise SeqdlError(f"--val-per-class must be >= 0, not {per_class}")
    held = []
    for letter in range(len(classes)):
        rows = np.flatnonzero(data.labels == letter)
        if per_class and len(rows) <= per_class:
            raise SeqdlError(f"has only {len(rows)} images of {classes[letter]!r}: too few to hold out {per_class} "
                             f"for validation and train on the rest (lower --val-per-class)", str(data.labels_path))
        held.append(rows[:per_class])
    val_rows = np.stack(held, axis=1).reshape(-1) if per_class else np.zeros(0, np.int64)
    keep = np.ones(len(data), bool)
    keep[val_rows] = False
    return data.subset(np.flatnonzero(keep)), data.subset(val_rows)


class Sampler:
    """Training rows for a batch: every class equally likely (``balance``), or every image equally likely.

    The pool follows English letter frequency (e is six times as common as k)
    while the test sets are balanced, so balanced sampling trains for the
    prior the model is judged on. ``shares`` (one per class, balance only) makes
    some classes more likely than others.
    """

    def __init__(self, labels: np.ndarray, balance: bool, shares: np.ndarray | None = None) -> None:
        counts = np.bincount(labels, minlength=len(CLASSES) if shares is None else len(shares)).astype(np.float64)
        share = np.ones(len(counts)) if shares is None else np.asarray(shares, np.float64)
        weights = share[labels] / counts[labels] if balance else np.ones(len(labels))
        self.cumulative = np.cumsum(weights / weights.sum())
        self.cumulative[-1] = 1.0

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.searchsorted(self.cumulative, rng.random(size), side="right")
