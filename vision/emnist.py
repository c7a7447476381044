"""EMNIST letters: reading the idx files, preparing page crops the way EMNIST was made, and crop statistics.

EMNIST (Cohen et al. 2017, arXiv:1702.05373) made each 28x28 letter from a
bilevel 128x128 NIST scan: Gaussian blur (sigma 1), crop to the ink, centre the
crop in a square with a 2-pixel border (aspect ratio kept), bicubic resampling to
28x28, intensities stretched to 0..255, white ink on black. :func:`prepare_crops`
repeats those steps on letters cut out of a page, after scaling each letter to
the size a NIST character has in its 128x128 box and bringing its strokes to the
width of NIST's pens (a fine pen on a large letter would otherwise come out as
hairlines), so that a classifier trained on EMNIST sees the same kind of image.
The idx files store every image transposed; :func:`read_idx_images` returns
them upright (``img.T``) and so do the crops.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from seqdl.errors import SeqdlError
from seqdl.io import gzip_errors, open_input
from seqdl.threads import in_batches

from .images import stroke_width

SIZE = 28
NIST_LETTER_SIDE = 32   # long side of a letter's ink in NIST pixels: gives EMNIST's ink box (22 of 28 px)
NIST_BLUR_SIGMA = 1.0   # EMNIST's Gaussian blur, in NIST pixels
NIST_BORDER = 2         # EMNIST's border around the region of interest, in NIST pixels
SUPERSAMPLE = 3         # the NIST frame is worked on at this many times its resolution: at 3, pages rendered
                        # from validation letters read as well as at 4 (87.3 vs 87.1 %) with the same crop
                        # statistics, and a page's crops take a third less time
NIST_STROKE = 4         # NIST's typical pen width in NIST pixels: EMNIST test letters prepared again keep most
                        # of their ink (fraction 0.176 vs 0.188) and their stroke width (3.30 vs 3.25 px of 28)
# EMNIST's blur as the 1-D weights scipy's gaussian_filter uses (truncated at 4 sigma), applied axis by axis with
# them computed once: for a crop-sized image the filter's own set-up costs more than the filtering.
_BLUR_RADIUS = int(4 * NIST_BLUR_SIGMA + 0.5)
_BLUR_WEIGHTS = ndimage.gaussian_filter1d(np.eye(1, 2 * _BLUR_RADIUS + 1, _BLUR_RADIUS)[0], NIST_BLUR_SIGMA,
                                          mode="constant")
IDX_IMAGES_MAGIC = 0x803
IDX_LABELS_MAGIC = 0x801
ALPHABET = "abcdefghijklmnopqrstuvwxyz"  # EMNIST letters label k (1..26) is ALPHABET[k - 1], either case


def _read_idx(path: str | os.PathLike, magic: int, ndim: int) -> np.ndarray:
    path = Path(path)
    with open_input(path, "an idx file") as handle, gzip_errors(path):  # gzip or plain, by content
        raw = handle.read()
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise SeqdlError(f"not an idx file with magic {magic:#x}", str(path))
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != int(np.prod(shape)):
        raise SeqdlError(f"idx file holds {len(raw) - header} bytes of data, header says {shape}", str(path))
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """(N, 28, 28) uint8 images, upright (the file stores them transposed), white ink on black."""
    images = _read_idx(path, IDX_IMAGES_MAGIC, 3)
    return np.ascontiguousarray(images.transpose(0, 2, 1))


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """(N,) uint8 labels; for EMNIST letters 1..26 = a..z (upper and lower case share a label)."""
    return _read_idx(path, IDX_LABELS_MAGIC, 1).copy()


def write_idx_pair(prefix: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> None:
    """Write upright (N, 28, 28) uint8 images and their labels as ``PREFIX-images-idx3-ubyte.gz`` and
    ``PREFIX-labels-idx1-ubyte.gz``, images transposed as EMNIST stores them."""
    from seqdl.io import atomic_path

    stored = np.ascontiguousarray(np.asarray(images, np.uint8).transpose(0, 2, 1))
    for part, magic, array in (("images-idx3-ubyte", IDX_IMAGES_MAGIC, stored),
                               ("labels-idx1-ubyte", IDX_LABELS_MAGIC, np.asarray(labels, np.uint8))):
        header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
        with atomic_path(f"{prefix}-{part}.gz") as temp:
            temp.write_bytes(gzip.compress(header + array.tobytes(), mtime=0))


def load_emnist_letters(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The EMNIST letters test images and labels held in ``directory`` (the shared-data layout)."""
    directory = Path(directory)
    images = read_idx_images(directory / "emnist-letters-test-first10000-images-idx3-ubyte.gz")
    labels = read_idx_labels(directory / "emnist-letters-test-first10000-labels-idx1-ubyte.gz")
    if len(images) != len(labels):
        raise SeqdlError(f"{len(images)} images but {len(labels)} labels", str(directory))
    return images, labels


def prepare_crop(ink: np.ndarray, angle_degrees: float = 0.0) -> np.ndarray:
    """One letter's ink (2-D, ink > 0.5) -> a 28x28 uint8 EMNIST-style image.

    ``angle_degrees`` is the slant of the letter's text line; the letter is turned
    back by it so that letters on a tilted page come out upright.
    """
    ink = np.asarray(ink, np.float32)
    if abs(angle_degrees) > 0.25:
        ink = _values(_picture(ink).rotate(angle_degrees, resample=Image.Resampling.BILINEAR, expand=True))
    letter = _crop_to_ink(ink > 0.5)
    if letter is None:
        return np.zeros((SIZE, SIZE), np.uint8)
    # Scale to the NIST frame (the letter's long side becomes NIST_LETTER_SIDE pixels), bilevel like a NIST
    # scan, at SUPERSAMPLE times the resolution so that stroke edges can move by fractions of a NIST pixel.
    scale = NIST_LETTER_SIDE * SUPERSAMPLE / max(letter.shape)
    size = (max(1, round(letter.shape[1] * scale)), max(1, round(letter.shape[0] * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    fine = _values(_picture(letter).resize(size, resample)) >= 0.5
    # Room for a stroke grown to NIST_STROKE (each edge moves by less than half of it), then, after the reduction,
    # for the blur: the distance transform, most of a crop's cost, sees no more border than it needs.
    grow = NIST_STROKE // 2 + 1
    fine = normalise_stroke(_bordered(fine, grow * SUPERSAMPLE), NIST_STROKE * SUPERSAMPLE)
    nist = _bordered(_reduce(fine, SUPERSAMPLE), _BLUR_RADIUS + NIST_STROKE + 1 - grow)
    soft = np.empty_like(nist)
    ndimage.correlate1d(nist, _BLUR_WEIGHTS, 0, soft, mode="constant")
    ndimage.correlate1d(soft, _BLUR_WEIGHTS, 1, soft, mode="constant")
    bounds = _ink_bounds(soft > 1 / 255)
    if bounds is None:
        return np.zeros((SIZE, SIZE), np.uint8)
    roi = soft[bounds]
    side = max(roi.shape) + 2 * NIST_BORDER
    square = np.zeros((side, side), np.float32)
    top, left = (side - roi.shape[0]) // 2, (side - roi.shape[1]) // 2
    square[top: top + roi.shape[0], left: left + roi.shape[1]] = roi
    small = _values(_picture(square).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
    small = np.clip(small, 0, None)
    return np.round(small * (255 / small.max())).astype(np.uint8)


def _picture(values: np.ndarray) -> Image.Image:
    """An array as a float32 (mode F) image. This and :func:`_values` go round ``fromarray`` / ``asarray``, whose
    checks cost more than the copy at a crop's size (six calls a crop, under the GIL)."""
    values = np.ascontiguousarray(values, np.float32)
    return Image.frombuffer("F", (values.shape[1], values.shape[0]), values, "raw", "F", 0, 1)


def _values(picture: Image.Image) -> np.ndarray:
    """A mode F image as a (read-only) float32 array."""
    return np.frombuffer(picture.tobytes(), np.float32).reshape(picture.height, picture.width)


def _crop_to_ink(mask: np.ndarray) -> np.ndarray | None:
    bounds = _ink_bounds(mask)
    return None if bounds is None else mask[bounds]


def _ink_bounds(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The rows and columns that hold the mask's ink (None if it has none), from its rows' and columns' any():
    half the time of ``np.nonzero`` on a crop, which counts under the GIL, thousands of crops a page."""
    rows, cols = mask.any(axis=1), mask.any(axis=0)
    if not rows.any():
        return None
    return (slice(rows.argmax(), len(rows) - rows[::-1].argmax()),
            slice(cols.argmax(), len(cols) - cols[::-1].argmax()))


def _bordered(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` with ``border`` zeros around it (``np.pad``'s result in a tenth of its time, which counts here:
    two calls a crop, thousands of crops a page)."""
    out = np.zeros((image.shape[0] + 2 * border, image.shape[1] + 2 * border), image.dtype)
    out[border: border + image.shape[0], border: border + image.shape[1]] = image
    return out


def _reduce(mask: np.ndarray, factor: int) -> np.ndarray:
    """float32 share of ink in each factor x factor block of a bool mask (zeros pad it to a multiple of factor).

    Counted as the sum of the blocks' strided slices, rows then columns: a third of the time of a mean over a 4-D
    view's two axes, and the same values (small integer counts, then one division).
    """
    h, w = -(-mask.shape[0] // factor) * factor, -(-mask.shape[1] // factor) * factor
    padded = np.zeros((h, w), np.uint8)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    rows = sum((padded[k::factor] for k in range(1, factor)), padded[0::factor])
    counts = sum((rows[:, k::factor] for k in range(1, factor)), rows[:, 0::factor])
    return counts.astype(np.float32) / np.float32(factor * factor)


def normalise_stroke(letter: np.ndarray, target: float) -> np.ndarray:
    """Thicken or thin a bilevel letter to the pen width ``target`` (pixels).

    Pens differ: a fine ballpoint on a large letter leaves strokes half as wide,
    relative to the letter, as the NIST forms have. Moving every stroke edge by
    half the difference (a distance transform) gives the classifier the stroke
    weight EMNIST was made with.
    """
    width = stroke_width(letter)
    change = (target - width) / 2
    if change > 0:
        return ndimage.distance_transform_edt(~letter) <= change
    thinner = ndimage.distance_transform_edt(letter) > -change
    return thinner if thinner.any() else letter


def prepare_crops(inks: Sequence[np.ndarray], angles: Sequence[float] | None = None) -> np.ndarray:
    """Many letters at once: the (N, 28, 28) uint8 batch a letter classifier takes in one call.

    The letters are shared among the cores that are free (the distance transforms and resampling release the
    GIL): a page cut by recognition gives thousands of crops.
    """
    angles = [0.0] * len(inks) if angles is None else angles
    out = np.zeros((len(inks), SIZE, SIZE), np.uint8)

    def prepare(start: int, stop: int) -> None:
        for i in range(start, stop):
            out[i] = prepare_crop(inks[i], angles[i])

    in_batches(prepare, len(inks), batch_size=32, min_batch=8)
    return out


def crop_statistics(images: np.ndarray) -> dict[str, float]:
    """Means of what tells prepared crops from EMNIST's: ink fraction, centre of mass, ink bounding box.

    ``ink_fraction`` is the share of pixels above half intensity; the centre of
    mass is intensity-weighted (row, column); the bounding box covers pixels above
    half intensity.
    """
    images = np.asarray(images, np.float32) / 255.0
    n = len(images)
    ink = images > 0.5
    weights = images.sum(axis=(1, 2))
    keep = weights > 0
    grid = np.arange(SIZE, dtype=np.float32)
    com_row = (images.sum(axis=2) @ grid)[keep] / weights[keep]
    com_col = (images.sum(axis=1) @ grid)[keep] / weights[keep]
    any_rows, any_cols = ink.any(axis=2), ink.any(axis=1)
    height = np.where(any_rows.any(1), SIZE - np.argmax(any_rows[:, ::-1], 1) - np.argmax(any_rows, 1), 0)
    width = np.where(any_cols.any(1), SIZE - np.argmax(any_cols[:, ::-1], 1) - np.argmax(any_cols, 1), 0)
    return {
        "n": float(n),
        "ink_fraction": float(ink.mean()),
        "mean_intensity": float(images.mean()),
        "com_row": float(com_row.mean()),
        "com_col": float(com_col.mean()),
        "bbox_height": float(height.mean()),
        "bbox_width": float(width.mean()),
        "bbox_long_side": float(np.maximum(height, width).mean()),
    }
