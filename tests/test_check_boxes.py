"""vision.check_boxes: a form's check boxes (empty or ticked) are found and erased; letters with holes are not."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from vision import check_boxes
from vision.layout import EIGHT_CONNECTED, _component_table

HEIGHT, STROKE = 40, 4


def page() -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """A page of check boxes and of letters that close holes, each at a known place (ink = True)."""
    picture = Image.new("L", (900, 160), 0)
    draw = ImageDraw.Draw(picture)
    where = {}
    for k, kind in enumerate(("empty", "cross", "tick")):
        x, y = 20 + 90 * k, 40
        draw.rectangle((x, y, x + 50, y + 50), outline=255, width=STROKE)
        if kind == "cross":
            draw.line((x + 4, y + 4, x + 46, y + 46), fill=255, width=STROKE)
            draw.line((x + 46, y + 4, x + 4, y + 46), fill=255, width=STROKE)
        if kind == "tick":
            draw.line((x + 8, y + 26, x + 22, y + 44, x + 44, y + 6), fill=255, width=STROKE)
        where[kind] = (x + 5, y + 2)
    font = ImageFont.load_default(size=70)
    for k, letter in enumerate("ODBo0a"):
        x = 300 + 95 * k
        draw.text((x, 20), letter, fill=255, font=font)
        where[letter] = (x, 20)
    # a round ring drawn with a thick pen, and a square drawn round a handwritten letter that touches it
    draw.ellipse((860 - 40, 40, 860 + 30, 110), outline=255, width=12)
    where["ring"] = (825, 45)
    return np.asarray(picture) > 127, where


def test_boxes_empty_or_ticked_are_erased_and_letters_with_holes_are_not():
    mask, where = page()
    labels, count = ndimage.label(mask, EIGHT_CONNECTED)
    boxes, _ = _component_table(labels, count)
    found = check_boxes.box_pixels(labels, boxes, np.arange(count), HEIGHT, STROKE)
    found_labels = {index + 1 for index, _ in found}
    for name, (x, y) in where.items():
        near = labels[y - 3:y + 60, x - 3:x + 40]
        component = np.bincount(near[near > 0]).argmax()   # the ink at the named place
        assert component > 0, name
        is_box = name in ("empty", "cross", "tick")
        assert (component in found_labels) == is_box, name
    for index, erase in found:   # a box and the mark inside it go together
        x0, y0, x1, y1 = boxes[index]
        assert np.array_equal(erase, labels[y0:y1, x0:x1] == index + 1)


def test_ink_beyond_the_box_stays():
    picture = Image.new("L", (200, 120), 0)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((20, 20, 70, 70), outline=255, width=STROKE)
    draw.line((10, 10, 150, 100), fill=255, width=STROKE)     # a stroke through the box and far past it
    mask = np.asarray(picture) > 127
    labels, count = ndimage.label(mask, EIGHT_CONNECTED)
    boxes, _ = _component_table(labels, count)
    (index, erase), = check_boxes.box_pixels(labels, boxes, np.arange(count), HEIGHT, STROKE)
    x0, y0, x1, y1 = boxes[index]
    kept = (labels[y0:y1, x0:x1] == index + 1) & ~erase
    assert kept[:, 100 - x0:].any()                            # the stroke's far end is kept
    assert not erase[:, 100 - x0:].any()
