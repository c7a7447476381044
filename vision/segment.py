"""``seqdl segment``: page image -> lines, words, letters, EMNIST-style crops, annotated PNG and Parquet rows.

A page goes through :func:`segment_file`: load and binarise (``images``), find
the layout (``layout``), cut every letter out and prepare it like EMNIST
(``emnist.prepare_crops``). The result holds the letters in reading order and
their crops as one (N, 28, 28) uint8 array, which is what a letter classifier
takes in a single batched call; unsplit (cursive) words are kept as word rows.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np
from PIL import Image, ImageDraw

from . import emnist
from .images import MAX_PIXELS, darkest_channel, ink_darkness, binarise, load_rgb
from .layout import Box, Layout, analyse

ANNOTATION_MAX_SIDE = 2400   # annotated PNGs are scaled down to this long side (a 12 MP PNG is ~20 MB)
COLOURS = {"line": (220, 30, 30), "word": (20, 160, 40), "cursive": (240, 140, 0), "letter": (30, 90, 230)}


@dataclass
class Row:
    """One letter, or one word kept whole: where it sits in the reading order and its pixel box."""

    line: int
    word: int
    index: int      # letter number within the word (0 for a word kept whole)
    box: Box
    kind: str       # "letter" or "word"


@dataclass
class PageResult:
    path: Path
    width: int
    height: int
    layout: Layout
    rows: list[Row]
    crops: np.ndarray        # (n_letters, 28, 28) uint8, one per "letter" row, in row order
    seconds: float

    @property
    def n_lines(self) -> int:
        return len(self.layout.lines)

    @property
    def n_words(self) -> int:
        return sum(len(line.words) for line in self.layout.lines)

    @property
    def n_letters(self) -> int:
        return sum(row.kind == "letter" for row in self.rows)

    @property
    def n_cursive_words(self) -> int:
        return sum(row.kind == "word" for row in self.rows)


def segment_array(path: Path, rgb: np.ndarray, keep_print: bool = False) -> PageResult:
    """Segment an already loaded (H, W, 3) uint8 page; machine print is left out unless ``keep_print``."""
    start = time.perf_counter()
    darkness = ink_darkness(darkest_channel(rgb))
    mask = binarise(darkness)
    layout = analyse(mask, skip_print=not keep_print, rgb=rgb)
    rows: list[Row] = []
    inks: list[np.ndarray] = []
    angles: list[float] = []
    for li, line in enumerate(layout.lines):
        for wi, word in enumerate(line.words):
            if word.cursive:
                rows.append(Row(li, wi, 0, word.box, "word"))
                continue
            for ci, letter in enumerate(word.letters):
                rows.append(Row(li, wi, ci, letter.box, "letter"))
                inks.append(letter_ink(layout.labels, darkness, letter.box, letter.components, letter.columns))
                angles.append(line.angle_degrees)
    crops = emnist.prepare_crops(inks, angles)
    height, width = mask.shape
    return PageResult(path, width, height, layout, rows, crops, time.perf_counter() - start)


def segment_file(path: str | os.PathLike, max_pixels: int = MAX_PIXELS, keep_print: bool = False
                 ) -> tuple[PageResult, np.ndarray]:
    """Load and segment one page; returns the result and the upright RGB image (for annotation)."""
    start = time.perf_counter()
    rgb = load_rgb(path, max_pixels)
    result = segment_array(Path(path), rgb, keep_print)
    result.seconds = time.perf_counter() - start
    return result, rgb


def letter_ink(labels: np.ndarray, darkness: np.ndarray, box: Box, components: list[int],
                columns: tuple[int, int] | None) -> np.ndarray:
    """The letter's own pixels in its box, as the bilevel image NIST scanned (neighbours' strokes left out).

    The ink mask is cut at the paper's noise level so that faint strokes stay
    connected, which takes in the blurred fringe of every stroke; the pen's edge
    is where the darkness is half the stroke's own, so only those pixels are kept.
    """
    x0, y0, x1, y1 = box
    ink = np.isin(labels[y0:y1, x0:x1], components)
    if columns is not None:
        ink[:, : max(0, columns[0] - x0)] = False
        ink[:, max(0, columns[1] - x0):] = False
    dark = darkness[y0:y1, x0:x1]
    if ink.any():
        ink &= dark >= 0.5 * np.percentile(dark[ink], 90)
    return ink.astype(np.float32)


def page_record(result: PageResult) -> dict[str, Any]:
    """The ``--json`` object for one page: counts, then boxes line > word > letter (x0, y0, x1, y1)."""
    lines = []
    for line in result.layout.lines:
        words = [{"box": list(word.box), "cursive": word.cursive, "letters": [list(l.box) for l in word.letters]}
                 for word in line.words]
        lines.append({"box": list(line.box), "words": words})
    return {
        "file": str(result.path), "width": result.width, "height": result.height,
        "n_lines": result.n_lines, "n_words": result.n_words, "n_letters": result.n_letters,
        "n_cursive_words": result.n_cursive_words, "skew_degrees": round(result.layout.angle_degrees, 3),
        "n_printed": result.layout.n_printed, "stroke_pixels": round(result.layout.stroke, 2), "letter_height_pixels": round(result.layout.letter_height, 1),
        "seconds": round(result.seconds, 3), "lines": lines,
    }


def summary_line(result: PageResult) -> str:
    cursive = f" ({result.n_cursive_words} joined-up words kept whole)" if result.n_cursive_words else ""
    printed = f", {result.layout.n_printed} pieces of machine print left out" if result.layout.n_printed else ""
    return (f"{result.path}: {result.n_lines} lines, {result.n_words} words, {result.n_letters} letters{cursive}"
            f"{printed}  [{result.seconds:.2f} s]")


def annotation_canvas(rgb: np.ndarray) -> tuple[Image.Image, ImageDraw.ImageDraw, float, int]:
    """The page to draw boxes on, shrunk to at most ANNOTATION_MAX_SIDE: (picture, its pen, scale, line width)."""
    picture = Image.fromarray(rgb)
    scale = min(1.0, ANNOTATION_MAX_SIDE / max(picture.size))
    if scale < 1.0:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                 Image.Resampling.BILINEAR)
    return picture, ImageDraw.Draw(picture), scale, max(1, round(max(picture.size) / 800))


def annotate(result: PageResult, rgb: np.ndarray, out: str | os.PathLike) -> Path:
    """Write a PNG of the page with line (red), word (green; orange if joined-up) and letter (blue) boxes."""
    from seqdl.io import atomic_path

    picture, draw, scale, thick = annotation_canvas(rgb)

    def box(b: Box, colour: tuple[int, int, int], pad: int) -> None:
        x0, y0, x1, y1 = (v * scale for v in b)
        draw.rectangle((x0 - pad, y0 - pad, x1 - 1 + pad, y1 - 1 + pad), outline=colour, width=thick)

    for line in result.layout.lines:
        box(line.box, COLOURS["line"], 3 * thick)
        for word in line.words:
            box(word.box, COLOURS["cursive" if word.cursive else "word"], 2 * thick)
            for letter in word.letters:
                box(letter.box, COLOURS["letter"], 0)
    with atomic_path(out) as temp:
        picture.save(temp, format="PNG")
    return Path(out)


def parquet_table(results: Sequence[PageResult], metadata: dict[str, str]) -> Any:
    """One row per letter or whole word: file, line, word, index, x0, y0, x1, y1, kind, crop (784 bytes or null)."""
    import pyarrow as pa

    columns: dict[str, list] = {k: [] for k in ("file", "line", "word", "index", "x0", "y0", "x1", "y1", "kind",
                                                "crop")}
    for result in results:
        crops = iter(result.crops)
        for row in result.rows:
            columns["file"].append(str(result.path))
            for key, value in (("line", row.line), ("word", row.word), ("index", row.index)):
                columns[key].append(value)
            for key, value in zip(("x0", "y0", "x1", "y1"), row.box):
                columns[key].append(int(value))
            columns["kind"].append(row.kind)
            columns["crop"].append(next(crops).tobytes() if row.kind == "letter" else None)
    types = {"file": pa.string(), "kind": pa.string(), "crop": pa.binary()}
    table = pa.table({k: pa.array(v, types.get(k, pa.int32())) for k, v in columns.items()})
    metadata = {**metadata, "seqdl.crop_shape": "28x28 uint8, row-major, upright, white ink on black (EMNIST)"}
    return table.replace_schema_metadata(metadata)


def write_parquet(results: Sequence[PageResult], out: str | os.PathLike, metadata: dict[str, str]) -> Path:
    import pyarrow.parquet as pq

    from seqdl.io import atomic_path

    table = parquet_table(results, metadata)
    with atomic_path(out) as temp:
        pq.write_table(table, temp)
    return Path(out)


def crops_from_parquet(path: str | os.PathLike) -> np.ndarray:
    """The letter crops of a ``segment --out`` file as the (N, 28, 28) uint8 batch a classifier takes."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["kind", "crop"]).to_pydict()
    crops = [np.frombuffer(c, np.uint8) for k, c in zip(table["kind"], table["crop"]) if k == "letter"]
    return np.stack(crops).reshape(-1, emnist.SIZE, emnist.SIZE) if crops else np.zeros((0, 28, 28), np.uint8)


Read = TypeVar("Read")


def pages_in_order(paths: Sequence[Path], label: str, read: Callable[[Path], tuple[Read, np.ndarray]], quiet: bool,
                   failures: list[tuple[Path, Exception]]) -> Iterator[tuple[Path, Read, np.ndarray]]:
    """``(path, read(path)...)`` for each page in order under one progress bar; a page whose reading fails with a
    SeqdlError is added to ``failures`` and skipped, so one bad page never stops the others."""
    from seqdl.errors import SeqdlError
    from seqdl.io import progress_bar

    with progress_bar(quiet, "pages") as bar:
        task = bar.add_task(label, total=len(paths), status="")
        for path in paths:
            bar.update(task, status=path.name)
            try:
                result, rgb = read(path)
            except SeqdlError as exc:
                failures.append((path, exc))
            else:
                yield path, result, rgb
            bar.advance(task)


def segment_pages(paths: Sequence[Path], annotate_dir: Path | None, out: Path | None, command: str = "segment",
                  quiet: bool = False, max_pixels: int = MAX_PIXELS, keep_print: bool = False,
                  ) -> tuple[list[PageResult], list[tuple[Path, Exception]]]:
    """Segment pages in order; a bad page is recorded and skipped, the others go on.

    Each page's annotated PNG is written as soon as it is done (atomically); the
    Parquet file, holding every page that succeeded, is written at the end, and
    not at all when no page succeeded. A page with no text gets a warning.
    """
    from seqdl.io import provenance, warn

    results: list[PageResult] = []
    failures: list[tuple[Path, Exception]] = []
    taken: set[Path] = set()
    def segment(path: Path) -> tuple[PageResult, np.ndarray]:
        return segment_file(path, max_pixels, keep_print)

    for path, result, rgb in pages_in_order(paths, "segment", segment, quiet, failures):
        if result.n_lines == 0:
            warn(f"{path}: no text found (blank page?)")
        if annotate_dir is not None:
            annotate(result, rgb, annotation_path(annotate_dir, path, taken))
        results.append(result)
    if out is not None and results:
        params = {"annotate": str(annotate_dir) if annotate_dir else None, "out": str(out), "keep_print": keep_print}
        write_parquet(results, out, provenance(command, params, [r.path for r in results]))
    return results, failures


def annotation_path(directory: Path, page: Path, taken: set[Path], command: str = "segment") -> Path:
    """``<dir>/<page stem>.<command>.png``; pages of one batch sharing a stem get ``.2``, ``.3``, ... added."""
    target, number = directory / f"{page.stem}.{command}.png", 1
    while target in taken:
        number += 1
        target = directory / f"{page.stem}.{number}.{command}.png"
    taken.add(target)
    return target
