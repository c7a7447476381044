"""vision.emnist: idx files, and letters prepared from pages the way EMNIST was made (checked by statistics)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from seqdl.errors import SeqdlError
from vision import emnist, render
from vision.segment import segment_array, segment_file

# How close prepared crops must come to EMNIST's own statistics (means over many letters).
TOLERANCE = {"ink_fraction": 0.15, "com_row": 1.0, "com_col": 1.0, "bbox_height": 1.5, "bbox_width": 1.5,
             "bbox_long_side": 1.0}   # ink_fraction: relative; the rest: pixels of 28


@pytest.fixture(scope="module")
def letters(shared_data):
    return emnist.load_emnist_letters(shared_data / "emnist-letters")


def drawn_letter(height: int, pen: int) -> np.ndarray:
    """An upright 'A' drawn with a pen ``pen`` pixels wide in a box ``height`` pixels tall (ink = 1)."""
    picture = Image.new("L", (height, height), 0)
    draw = ImageDraw.Draw(picture)
    top, bottom, left, right = 0.05 * height, 0.95 * height, 0.15 * height, 0.85 * height
    draw.line([(left, bottom), (height / 2, top), (right, bottom)], fill=255, width=pen)
    draw.line([(0.3 * height, 0.6 * height), (0.7 * height, 0.6 * height)], fill=255, width=pen)
    return np.asarray(picture) > 127


def test_idx_files_round_trip_and_come_out_upright(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    header = (0x803).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (3, 28, 28))
    stored = images.transpose(0, 2, 1).tobytes()   # the idx files hold every image transposed
    with gzip.open(tmp_path / "x-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(header + stored)
    assert np.array_equal(emnist.read_idx_images(tmp_path / "x-images-idx3-ubyte.gz"), images)
    (tmp_path / "bad-idx").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(SeqdlError, match="header says"):
        emnist.read_idx_labels(tmp_path / "bad-idx")
    with pytest.raises(SeqdlError, match="not an idx file"):
        emnist.read_idx_images(tmp_path / "bad-idx")


def test_prepared_crop_is_centred_and_white_on_black_with_emnist_stroke_weight():
    thin = emnist.prepare_crop(drawn_letter(200, 4))
    thick = emnist.prepare_crop(drawn_letter(200, 30))
    for crop in (thin, thick):
        assert crop.shape == (28, 28) and crop.dtype == np.uint8 and crop.max() == 255
        assert crop[0].max() == crop[-1].max() == crop[:, 0].max() == crop[:, -1].max() == 0   # black border
        stats = emnist.crop_statistics(crop[None])
        assert abs(stats["com_row"] - 13.5) < 2.5 and abs(stats["com_col"] - 13.5) < 1.0
        assert 20 <= stats["bbox_long_side"] <= 24
    # A ballpoint and a marker give the classifier the same stroke weight.
    ink_thin, ink_thick = (emnist.crop_statistics(c[None])["ink_fraction"] for c in (thin, thick))
    assert abs(ink_thin - ink_thick) < 0.3 * ink_thick


def test_letter_on_a_tilted_line_comes_out_upright():
    upright = emnist.prepare_crop(drawn_letter(120, 8))
    tilted = np.asarray(Image.fromarray(drawn_letter(120, 8).astype(np.uint8) * 255).rotate(
        4.0, Image.Resampling.BILINEAR, expand=True)) > 127
    turned_back = emnist.prepare_crop(tilted, angle_degrees=-4.0)
    as_is = emnist.prepare_crop(tilted)
    difference = np.abs(turned_back.astype(int) - upright).mean()
    assert difference < 0.6 * np.abs(as_is.astype(int) - upright).mean()


def test_prepared_crops_match_emnist_statistics(letters, shared_data):
    """Ink fraction, centre of mass and ink box of prepared letters vs the EMNIST test images."""
    images, labels = letters
    reference = emnist.crop_statistics(images[::4])
    rendered = []
    for seed in range(4):
        text = render.random_text(np.random.default_rng(seed), 4)
        page = render.render_page(images, labels, text, seed=seed)
        rendered.append(segment_array(Path("rendered"), page.rgb).crops)
    real, _ = segment_file(shared_data / "pages" / "bmitt_latin_caps.jpg")
    found = {"rendered EMNIST pages": emnist.crop_statistics(np.concatenate(rendered)),
             "bmitt_latin_caps.jpg": emnist.crop_statistics(real.crops)}
    print(f"\n{'statistic':<16}{'EMNIST test':>14}" + "".join(f"{name:>24}" for name in found))
    for key in TOLERANCE:
        print(f"{key:<16}{reference[key]:>14.3f}" + "".join(f"{stats[key]:>24.3f}" for stats in found.values()))
    for name, stats in found.items():
        assert stats["n"] >= 78, name
        for key, tolerance in TOLERANCE.items():
            allowed = tolerance * reference[key] if key == "ink_fraction" else tolerance
            assert abs(stats[key] - reference[key]) <= allowed, (name, key, stats[key], reference[key])
