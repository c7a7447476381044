"""Re-make page-emnist.png (and page-emnist.txt) from the EMNIST letters test images.

    python data/examples/make_page_emnist.py [EMNIST_DIR]

EMNIST_DIR defaults to ../shared/data/emnist-letters. The page is drawn by
vision.render from EMNIST test letters a-m with a fixed seed: five lines of known
text, random spacing, a small rotation, uneven light, ruled lines and specks.
"""
from __future__ import annotations

import sys
from pathlib import Path

from vision.emnist import load_emnist_letters
from vision.render import write_example

HERE = Path(__file__).resolve().parent
DEFAULT_EMNIST = HERE.parents[2] / "shared" / "data" / "emnist-letters"

if __name__ == "__main__":
    images, labels = load_emnist_letters(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_EMNIST)
    print(write_example(HERE / "page-emnist.png", images, labels))
