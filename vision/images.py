"""Page images: loading what people photograph, and turning it into an ink mask.

The steps, each derived from the page itself rather than fixed constants:
1. Load with Pillow, apply the EXIF orientation, flatten any mode (16-bit,
   CMYK, palette, alpha) to 8-bit RGB on white.
2. Grey = darkest channel, so blue, black and pencil ink are all dark while
   white, cream and grey paper stay light.
3. Illumination: estimate the paper brightness everywhere (a maximum filter wider
   than any stroke, on a reduced image, then smoothed) and divide it out; what
   remains is ink darkness 0 (paper) .. 1 (black).
4. Hysteresis threshold: the paper's own noise level (median + robust spread of
   darkness) gives the low threshold, Otsu's threshold among the pixels above it
   (at least 8 noise levels above the paper, so a blank page stays blank) gives
   the high one; a stroke is kept where its low-threshold component holds a
   high-threshold pixel, so faint pencil keeps its full width and paper grain goes.

And the one measure of ink every step uses: the pen's stroke width.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError
from scipy import ndimage

from seqdl.errors import SeqdlError

MAX_PIXELS = 200_000_000   # default limit: larger images are refused as decompression bombs (a 12 MP photo is 12e6)
BACKGROUND_CELLS = 150     # the paper-brightness estimate has this many cells along the short side
NOISE_SIGMAS = 4.0         # low threshold: this many robust standard deviations of paper noise
INK_SIGMAS = 8.0           # ink must be this far above the paper noise somewhere (a blank page has none)


def load_rgb(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Any image Pillow reads -> upright (H, W, 3) uint8 RGB; every failure is one SeqdlError naming the file.

    Images of more than ``max_pixels`` are refused from their header, before any pixel is decoded.
    """
    path = Path(path)
    if path.is_dir():
        raise SeqdlError("is a directory, expected an image", str(path))
    if not path.is_file():
        raise SeqdlError("no such file", str(path))
    if path.stat().st_size == 0:
        raise SeqdlError("empty file, not an image", str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
            try:
                with Image.open(path) as picture:
                    picture.load()
                    picture = ImageOps.exif_transpose(picture)
                    rgb = _to_rgb(picture)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SeqdlError(f"image too large to be a page (decompression bomb?): {exc}", str(path)) from exc
    except UnidentifiedImageError as exc:
        kind = (" (a PDF: export the page as an image)" if _is_pdf(path)
                else " (unknown format, or a damaged or zero-size header)")
        raise SeqdlError(f"not an image Pillow can read{kind}", str(path)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise SeqdlError(f"damaged or truncated image: {exc}", str(path)) from exc
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise SeqdlError("image has zero size", str(path))
    return rgb


def _is_pdf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(5) == b"%PDF-"


def _to_rgb(picture: Image.Image) -> np.ndarray:
    """Flatten every Pillow mode to 8-bit RGB; transparency becomes white paper."""
    if picture.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(picture, np.float64)
        top = 65535.0 if picture.mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if picture.mode == "P":
        picture = picture.convert("RGBA")
    if picture.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        picture = picture.convert("RGBA")
        white = Image.new("RGBA", picture.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(white, picture)
    return np.asarray(picture if picture.mode == "RGB" else picture.convert("RGB"))  # convert() would copy an RGB one


def darkest_channel(rgb: np.ndarray) -> Image.Image:
    """Per pixel the darkest of R, G, B (as an 'L' image): ink of any colour is dark in some channel."""
    picture = Image.fromarray(rgb, "RGB")
    red, green, blue = picture.split()
    return ImageChops.darker(ImageChops.darker(red, green), blue)


def ink_darkness(grey: Image.Image) -> np.ndarray:
    """Divide out the paper brightness: (H, W) float32, 0 where the paper is, up to 1 for black ink."""
    factor = max(1, min(grey.size) // BACKGROUND_CELLS)
    small = grey.reduce(factor) if factor > 1 else grey
    paper = np.asarray(small, np.float32)
    # A window of 7 cells is wider than any stroke (a cell is ~1/150 of the short side), so every
    # window sees paper; the median filter then removes the odd dark blot larger than a window.
    paper = ndimage.maximum_filter(paper, size=7, mode="nearest")
    paper = ndimage.median_filter(paper, size=5, mode="nearest")
    paper = ndimage.uniform_filter(paper, size=5, mode="nearest")
    paper_full = np.asarray(Image.fromarray(paper, "F").resize(grey.size, Image.Resampling.BILINEAR))
    darkness = 1.0 - np.asarray(grey, np.float32) / np.maximum(paper_full, 1.0)
    np.clip(darkness, 0.0, 1.0, out=darkness)
    return darkness


def otsu_split(values: np.ndarray, counts: np.ndarray | None = None) -> int:
    """Otsu's split of sorted ``values`` (each seen ``counts`` times, default once) into a low and a high group.

    Returns how many of the values go to the low group: the split that maximises the
    between-group variance. Used on a histogram (bin centres and counts) and on raw samples.
    """
    values = np.asarray(values, np.float64)
    counts = np.ones_like(values) if counts is None else np.asarray(counts, np.float64)
    weight0 = np.cumsum(counts)[:-1]
    weight1 = counts.sum() - weight0
    sum0 = np.cumsum(counts * values)[:-1]
    mean0 = sum0 / np.maximum(weight0, 1)
    mean1 = (np.dot(counts, values) - sum0) / np.maximum(weight1, 1)
    return int(np.argmax(weight0 * weight1 * (mean0 - mean1) ** 2)) + 1


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1], from their histogram."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    return float(edges[otsu_split((edges[:-1] + edges[1:]) / 2, hist)])


def binarise(darkness: np.ndarray) -> np.ndarray:
    """Ink mask by hysteresis between the paper-noise level and Otsu's ink threshold (see module doc)."""
    sample = darkness[::3, ::3].ravel()
    median = float(np.median(sample))
    spread = 1.4826 * float(np.median(np.abs(sample - median)))
    noise = max(spread, 1.0 / 255)
    low = median + NOISE_SIGMAS * noise
    candidates = sample[sample > low]
    if candidates.size < 16:
        return np.zeros(darkness.shape, bool)
    high = max(otsu_threshold(candidates), median + INK_SIGMAS * noise)
    weak = darkness > low
    labels, count = ndimage.label(weak)
    strong_labels = np.unique(labels[darkness > high])
    keep = np.zeros(count + 1, bool)
    keep[strong_labels] = True
    keep[0] = False
    return keep[labels]


def stroke_width(mask: np.ndarray) -> float:
    """Mean pen width: a stroke of width w and length l has area w*l and a boundary of about 2*l pixels."""
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    boundary = area - _interior(mask)
    return 2.0 * area / max(boundary, 1)


def _interior(mask: np.ndarray) -> int:
    """Ink pixels whose four neighbours are ink too (``ndimage.binary_erosion``'s count, with the image's edge as
    background; slicing does it in a seventh of the time, and every letter crop asks)."""
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return int(np.count_nonzero(inner))
