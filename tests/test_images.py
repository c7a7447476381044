"""vision.images: loading what people photograph, grey conversion, illumination correction, binarisation."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seqdl.errors import SeqdlError
from vision.images import binarise, darkest_channel, ink_darkness, load_rgb

PAPER = {"white": (250, 250, 250), "cream": (246, 238, 214), "grey": (200, 200, 196)}
INK = {"black": (20, 20, 20), "blue": (30, 45, 150), "pencil": (120, 120, 125)}


def page_with_square(paper=(245, 245, 245), ink=(20, 20, 20), size=(120, 80)) -> np.ndarray:
    """A small page (H=size[1], W=size[0]) with one ink square in its top-left quarter."""
    rgb = np.empty((size[1], size[0], 3), np.uint8)
    rgb[:] = paper
    rgb[10:30, 15:35] = ink
    return rgb


def ink_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(rgb.min(axis=2) < 128)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def test_exif_orientation_is_applied(tmp_path):
    picture = Image.fromarray(page_with_square())
    exif = Image.Exif()
    exif[0x0112] = 6   # "rotate 90 clockwise to view"
    picture.save(tmp_path / "turned.jpg", quality=95, exif=exif)
    rgb = load_rgb(tmp_path / "turned.jpg")
    assert rgb.shape == (120, 80, 3)   # width and height swapped
    x0, y0, x1, y1 = ink_box(rgb)
    # Turned clockwise, the square in the top-left corner ends up in the top-right corner.
    assert 80 - 30 - 2 <= x0 and x1 <= 80 - 10 + 2 and 15 - 2 <= y0 and y1 <= 35 + 2


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "LA", "1", "CMYK", "I;16", "I", "F"])
def test_every_pillow_mode_becomes_rgb_with_the_ink_in_place(tmp_path, mode):
    picture = Image.fromarray(page_with_square())
    if mode == "I;16":
        grey = np.asarray(picture.convert("L"), np.uint16) * 257   # full 16-bit range
        picture = Image.fromarray(grey)   # uint16 -> mode I;16
    elif mode in ("I", "F"):
        picture = picture.convert("L").convert(mode)
    else:
        picture = picture.convert(mode, dither=Image.Dither.NONE)   # a dithered bilevel page would be all specks
    suffix = ".tif" if mode in ("CMYK", "I", "F") else ".png"
    picture.save(tmp_path / f"page{suffix}")
    rgb = load_rgb(tmp_path / f"page{suffix}")
    assert rgb.dtype == np.uint8 and rgb.shape == (80, 120, 3)
    assert ink_box(rgb) == (15, 10, 35, 30)
    assert rgb[60, 100].min() > 200   # paper stays light


def test_transparent_background_becomes_white_paper(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)   # fully transparent black...
    rgba[10:20, 10:30] = (0, 0, 0, 255)       # ...except an opaque black stroke
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    rgb = load_rgb(tmp_path / "t.png")
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[15, 20].tolist() == [0, 0, 0]


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("TIFF", ".tiff"), ("BMP", ".bmp"),
                                        ("WEBP", ".webp")])
def test_common_formats_load(tmp_path, fmt, suffix):
    Image.fromarray(page_with_square()).save(tmp_path / f"page{suffix}", format=fmt, quality=95)
    x0, y0, x1, y1 = ink_box(load_rgb(tmp_path / f"page{suffix}"))
    assert abs(x0 - 15) <= 1 and abs(y0 - 10) <= 1 and abs(x1 - 35) <= 1 and abs(y1 - 30) <= 1


@pytest.mark.parametrize("paper", PAPER)
@pytest.mark.parametrize("ink", INK)
def test_any_ink_on_any_paper_under_uneven_light_gives_exactly_the_stroke(paper, ink):
    rgb = page_with_square(PAPER[paper], INK[ink], size=(400, 300)).astype(np.float32)
    rgb[150:156, 40:360] = INK[ink]                                    # a long thin stroke too
    light = np.linspace(1.0, 0.6, 400, dtype=np.float32)[None, :, None]   # darker towards the right
    noise = np.random.default_rng(0).normal(0, 3, rgb.shape[:2])[:, :, None]
    rgb = np.clip(rgb * light + noise, 0, 255).astype(np.uint8)
    mask = binarise(ink_darkness(darkest_channel(rgb)))
    truth = np.zeros(mask.shape, bool)
    truth[10:30, 15:35] = truth[150:156, 40:360] = True
    assert np.count_nonzero(mask & ~truth) <= 10      # no paper (the dark right side included) taken for ink
    assert np.count_nonzero(truth & ~mask) <= 0.02 * truth.sum()


def test_blank_page_has_no_ink():
    rng = np.random.default_rng(1)
    rgb = np.full((300, 400, 3), (240, 236, 220), np.float32)
    rgb *= np.linspace(1.0, 0.7, 300, dtype=np.float32)[:, None, None]   # a shadow across the sheet
    rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
    assert not binarise(ink_darkness(darkest_channel(rgb))).any()


def test_unreadable_files_raise_one_seqdl_error_naming_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture\n")
    with pytest.raises(SeqdlError, match="not an image") as caught:
        load_rgb(tmp_path / "notes.png")
    assert str(caught.value).startswith(str(tmp_path / "notes.png") + ": ")
    with pytest.raises(SeqdlError, match="is a directory"):
        load_rgb(tmp_path)
    with pytest.raises(SeqdlError, match="no such file"):
        load_rgb(tmp_path / "missing.png")


def test_otsu_split_maximises_the_between_group_variance():
    """Against brute force on samples and on a histogram (the page threshold and the word-gap split share it)."""
    from vision.images import otsu_split, otsu_threshold

    rng = np.random.default_rng(3)
    for _ in range(50):
        values = np.sort(rng.exponential(3.0, rng.integers(2, 30)))
        def between(k: int) -> float:
            lo, hi = values[:k], values[k:]
            return k * (len(values) - k) * (hi.mean() - lo.mean()) ** 2
        best = max(between(k) for k in range(1, len(values)))
        assert between(otsu_split(values)) == pytest.approx(best)
    dark = np.concatenate([rng.normal(0.2, 0.03, 3000), rng.normal(0.7, 0.05, 1000)]).clip(0, 1)
    assert 0.3 < otsu_threshold(dark) < 0.6
