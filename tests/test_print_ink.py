"""vision.print_ink: machine print found by its exact repeats and left out; hand print kept."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

from vision import print_ink
from vision.ocr import read_array
from vision.segment import segment_array

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
LABELS = ("First Name:", "Last Name:", "Date of Birth:", "Address:", "Relationship to Patient:")
LABEL_WIDTH, BELOW = 420, 260   # pixels of printed form left of and below the hand-printed page
QUESTIONS = ("Did you feel fever or feverish lately?", "Are you having shortness of breath?",
             "Do you have a cough?", "Did you experience loss of taste or smell?")


def printed_form(hand: np.ndarray, seed: int = 0) -> np.ndarray:
    """The hand-printed ``hand`` page with a printed label to the left of each of its five lines and printed
    questions below, as a phone photo of a filled-in form: drawn three times larger at random sub-pixel
    offsets, reduced, blurred a little and noisy."""
    rng = np.random.default_rng(seed)
    scale, pitch = 3, hand.shape[0] / 5.6
    height, width = hand.shape[0] + BELOW, LABEL_WIDTH + hand.shape[1]
    big = Image.new("L", (width * scale, height * scale), 255)
    draw = ImageDraw.Draw(big)
    font = ImageFont.truetype(str(FONT), 22 * scale)
    for k, label in enumerate(LABELS):
        y = 60 + 24 + k * pitch
        draw.text(((10 + rng.uniform(0, 1)) * scale, (y + rng.uniform(0, 1)) * scale), label, fill=0, font=font)
    for k, question in enumerate(QUESTIONS):
        y = hand.shape[0] + 20 + 50 * k
        draw.text(((10 + rng.uniform(0, 1)) * scale, (y + rng.uniform(0, 1)) * scale), question, fill=0, font=font)
    darkness = 1 - np.asarray(big.reduce(scale).filter(ImageFilter.GaussianBlur(0.5)), np.float32) / 255
    page = np.concatenate([np.repeat(_paper(hand, axis=1)[:, None], LABEL_WIDTH, axis=1), hand], axis=1)
    page = np.concatenate([page, np.repeat(_paper(page[::-1], axis=0)[None], BELOW, axis=0)], axis=0)
    page = page * (1 - darkness[:, :, None]) + np.array([20, 20, 20], np.float32) * darkness[:, :, None]
    page += rng.normal(0, 4, page.shape[:2])[:, :, None]
    return np.clip(np.round(page), 0, 255).astype(np.uint8)


def _paper(rgb: np.ndarray, axis: int) -> np.ndarray:
    """The paper's colour along the first 60 columns (axis 1) or rows (axis 0) of ``rgb``, ruled lines and ink left
    out: a median across them, then along them."""
    edge = rgb[:, :60] if axis == 1 else rgb[:60]
    return ndimage.median_filter(np.median(edge.astype(np.float32), axis=axis), size=(15, 1))


@pytest.fixture(scope="module")
def hand() -> np.ndarray:
    return np.asarray(Image.open(EXAMPLES / "page-emnist.png").convert("RGB"))


def test_a_shape_drawn_three_times_has_two_twins_and_a_different_one_none():
    ring = np.zeros((12, 10), bool)
    ring[1:-1, 1:-1] = True
    ring[3:-3, 3:-3] = False
    shifted = np.zeros((13, 10), bool)       # the same ring a pixel lower in a box a pixel taller
    shifted[1:, :] = ring
    cross = np.zeros((12, 10), bool)
    cross[5:7, :] = cross[:, 4:6] = True
    assert print_ink.twin_counts([ring, ring.copy(), shifted, cross]).tolist() == [2, 2, 2, 0]


def test_printed_labels_and_questions_are_left_out_and_the_hand_print_kept(hand):
    alone = segment_array(Path("hand"), hand)
    form = segment_array(Path("form"), printed_form(hand))
    kept = segment_array(Path("form"), printed_form(hand), keep_print=True)
    assert alone.layout.n_printed == 0
    assert form.layout.n_printed > 100
    words = lambda result: [[len(word.letters) for word in line.words] for line in result.layout.lines]
    assert words(form) == words(alone)
    assert kept.n_letters > form.n_letters + 100


def test_ocr_of_the_form_reads_the_hand_print_as_on_the_page_alone(hand):
    """Every letter read lies in the handwriting, and the reading agrees with the page's own (the paper's ink
    statistics differ a little between the two, so an uncertain letter may flip)."""
    from vision.letters_model import load_letters_model
    from vision.ocr import character_accuracy

    classify = load_letters_model(None).classify
    alone = read_array(Path("hand"), hand, classify)
    form = read_array(Path("form"), printed_form(hand, seed=1), classify)
    assert form.layout.n_printed > 100
    assert [len(line.replace(" ", "")) for line in form.lines] == [len(line.replace(" ", "")) for line in alone.lines]
    assert min(letter.box[0] for letter in form.letters) >= LABEL_WIDTH
    assert max(letter.box[3] for letter in form.letters) <= hand.shape[0]
    assert character_accuracy(form.text, alone.text) >= 0.9


def test_the_shared_form_loses_its_print_and_the_hand_printed_pages_nothing(shared_data):
    from vision.letters_model import load_letters_model
    from vision.ocr import read_file

    classify = load_letters_model(None).classify
    for path in sorted((shared_data / "pages").glob("*.jp*g")):
        page, _ = read_file(path, classify)
        if path.name.startswith("aws-samples_patient_intake_form"):
            assert page.layout.n_printed > 200
            assert {"alejandro", "rosalez", "carlos", "salazar", "brother"} <= set(page.text.split())
            assert not {"name", "phone", "first", "last"} & set(page.text.split())
        else:
            assert page.layout.n_printed == 0, path.name
