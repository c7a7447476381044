"""``seqdl segment`` on a 12-megapixel photo: seconds per page, file to lines, words, letters and crops.

    python -m benchmarks.segment [--page PATH] [--repeats 5]
    python -m benchmarks.segment --accuracy 100

``--accuracy N`` instead renders N pages from EMNIST test letters in the tests'
default conditions (random words and spacing, rotation +-3 degrees, uneven light,
noise, specks, ruled lines) and N in varied ones (letter size, line spacing,
light, noise, specks and rules drawn per page), and prints how many pages gave
exactly the rendered lines, words and letters, and the share of letters found
with the right line, word and position (target >= 99 %).

Without ``--page`` it makes two 12 MP JPEGs in a temp directory: the shared
bmitt_latin_caps.jpg scan scaled up to 4648x2582 (where ../shared/data is
present) and a page rendered from EMNIST letters at 4000x3000. Each is
segmented ``--repeats`` times in this process (the first run is reported too:
it pays for imports and page-ins); the target is <= 2 s per page on 2 cores.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vision import emnist, render
from vision.segment import segment_array, segment_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MEGAPIXELS = 12_000_000


def rendered_photo(directory: Path) -> Path | None:
    """A 4000x3000 JPEG of EMNIST letters (random words), or None without the EMNIST files."""
    source = SHARED / "emnist-letters"
    if not source.is_dir():
        return None
    images, labels = emnist.load_emnist_letters(source)
    rng = np.random.default_rng(0)
    options = render.Options(letter_height=110, margin=150)
    page = render.render_page(images, labels, render.random_text(rng, 12, (5, 7)), seed=0, options=options)
    picture = Image.fromarray(page.rgb).resize((4000, 3000), Image.Resampling.BILINEAR)
    path = directory / "rendered-12mp.jpg"
    picture.save(path, quality=90)
    return path


def scaled_scan(directory: Path) -> Path | None:
    """The bmitt scan scaled to 12 MP (same aspect), or None where the shared data is absent."""
    source = SHARED / "pages" / "bmitt_latin_caps.jpg"
    if not source.is_file():
        return None
    with Image.open(source) as picture:
        scale = (MEGAPIXELS / (picture.width * picture.height)) ** 0.5
        big = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.Resampling.BICUBIC)
    path = directory / "bmitt-12mp.jpg"
    big.save(path, quality=90)
    return path


def time_page(path: Path, repeats: int) -> list[str]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result, _ = segment_file(path)
        seconds.append(time.perf_counter() - start)
    return [path.name, f"{result.width}x{result.height}", f"{result.width * result.height / 1e6:.1f}",
            str(result.n_lines), str(result.n_words), str(result.n_letters), f"{seconds[0]:.2f}",
            f"{statistics.median(seconds):.2f}"]


def varied_options(rng: np.random.Generator) -> render.Options:
    """The conditions of tests/test_segment.py's varied-conditions test, drawn per page."""
    return render.Options(letter_height=int(rng.integers(32, 72)), line_pitch=float(rng.uniform(1.6, 2.4)),
                          lighting=float(rng.uniform(0.1, 0.5)), noise=float(rng.uniform(2, 10)),
                          specks=int(rng.integers(0, 120)), ruled=bool(rng.integers(0, 2)))


def accuracy(pages: int) -> None:
    images, labels = emnist.load_emnist_letters(SHARED / "emnist-letters")
    print("conditions  pages  exact pages  letters  right line+word+index")
    for name, first_seed, varied in (("default", 0, False), ("varied", 1000, True)):
        exact = good = total = 0
        for seed in range(pages):
            rng = np.random.default_rng(first_seed + seed)
            options = varied_options(rng) if varied else None
            text = render.random_text(rng, int(rng.integers(2, 7) if varied else rng.integers(3, 7)))
            page = render.render_page(images, labels, text, seed=seed, options=options)
            result = segment_array(Path(f"{name}-{seed}"), page.rgb)
            truth = (len(page.lines), sum(len(words) for words in page.lines), len(page.letters))
            exact += (result.n_lines, result.n_words, result.n_letters) == truth
            found = [(r.line, r.word, r.index, r.box) for r in result.rows if r.kind == "letter"]
            good += render.score_letters(page, found) * len(page.letters)
            total += len(page.letters)
        print(f"{name:<10}  {pages:>5}  {exact:>11}  {total:>7}  {100 * good / total:>20.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=Path, action="append", help="Page image(s) to time instead.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--accuracy", type=int, metavar="N", help="Score N rendered pages per condition instead.")
    args = parser.parse_args()
    if args.accuracy:
        accuracy(args.accuracy)
        return
    with tempfile.TemporaryDirectory() as temp:
        pages = args.page or [p for p in (scaled_scan(Path(temp)), rendered_photo(Path(temp))) if p is not None]
        if not pages:
            raise SystemExit("no page to time: pass --page PATH (the shared data is absent)")
        rows = [time_page(page, args.repeats) for page in pages]
    header = ["page", "pixels", "MP", "lines", "words", "letters", "first s", "median s"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths)))


if __name__ == "__main__":
    main()
