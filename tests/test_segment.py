"""vision.layout / vision.segment: lines, words and letters on rendered EMNIST pages, the example and real pages."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vision import emnist, layout, render
from vision.segment import segment_array, segment_file

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


@pytest.fixture(scope="module")
def letters(shared_data):
    return emnist.load_emnist_letters(shared_data / "emnist-letters")


def found_letters(result) -> list[tuple[int, int, int, tuple[int, int, int, int]]]:
    return [(row.line, row.word, row.index, row.box) for row in result.rows if row.kind == "letter"]


def truth_counts(page: render.RenderedPage) -> tuple[int, int, int]:
    return len(page.lines), sum(len(words) for words in page.lines), len(page.letters)


def harsh_options(rng: np.random.Generator) -> render.Options:
    """Letter size, line spacing, lighting, noise, specks and rules drawn at random for each page."""
    return render.Options(letter_height=int(rng.integers(32, 72)), line_pitch=float(rng.uniform(1.6, 2.4)),
                          lighting=float(rng.uniform(0.1, 0.5)), noise=float(rng.uniform(2, 10)),
                          specks=int(rng.integers(0, 120)), ruled=bool(rng.integers(0, 2)))


def test_rendered_pages_give_exactly_the_rendered_lines_words_and_letters(letters):
    """Random words, spacing, rotation (+-3 degrees), uneven light, noise, specks and ruled lines."""
    images, labels = letters
    scores, sizes = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        text = render.random_text(rng, int(rng.integers(3, 7)))
        page = render.render_page(images, labels, text, seed=seed)
        result = segment_array(Path(f"rendered-{seed}"), page.rgb)
        assert (result.n_lines, result.n_words, result.n_letters) == truth_counts(page), (seed, text)
        assert result.n_cursive_words == 0
        scores.append(render.score_letters(page, found_letters(result)))
        sizes.append(len(page.letters))
    assert np.average(scores, weights=sizes) >= 0.99


def test_lines_slanted_up_to_five_degrees(letters):
    images, labels = letters
    for seed, degrees in enumerate((-5.0, -4.0, 4.0, 5.0)):
        rng = np.random.default_rng(seed)
        page = render.render_page(images, labels, render.random_text(rng, 5), seed=seed,
                                  options=render.Options(rotation=degrees))
        result = segment_array(Path(f"slanted-{seed}"), page.rgb)
        assert (result.n_lines, result.n_words, result.n_letters) == truth_counts(page), (seed, page.angle_degrees)


def test_rendered_pages_in_varied_conditions_keep_99_percent_of_letters_in_the_right_line_and_word(letters):
    images, labels = letters
    good = total = 0
    for seed in range(12):
        rng = np.random.default_rng(1000 + seed)
        options = harsh_options(rng)
        page = render.render_page(images, labels, render.random_text(rng, int(rng.integers(2, 7))), seed=seed,
                                  options=options)
        result = segment_array(Path(f"harsh-{seed}"), page.rgb)
        assert result.n_lines == len(page.lines), (seed, options)
        good += render.score_letters(page, found_letters(result)) * len(page.letters)
        total += len(page.letters)
    assert good / total >= 0.99


def test_the_shipped_example_page_matches_its_text():
    result, _ = segment_file(EXAMPLES / "page-emnist.png")
    text = [line.split() for line in (EXAMPLES / "page-emnist.txt").read_text().splitlines()]
    assert [[len(word.letters) for word in line.words] for line in result.layout.lines] == \
        [[len(word) for word in words] for words in text]
    assert result.crops.shape == (sum(len(word) for words in text for word in words), 28, 28)


def test_bmitt_capitals_six_lines_of_thirteen_letters_in_reading_order(shared_data):
    result, _ = segment_file(shared_data / "pages" / "bmitt_latin_caps.jpg")
    text = (shared_data / "pages" / "bmitt_latin_caps.txt").read_text().split()
    assert (result.n_lines, result.n_letters) == (6, 78) and result.n_cursive_words == 0
    assert [sum(len(w.letters) for w in line.words) for line in result.layout.lines] == [len(t) for t in text]
    rows = [row for row in result.rows if row.kind == "letter"]
    for line in range(6):
        boxes = [row.box for row in rows if row.line == line]
        assert all(a[2] <= b[0] for a, b in zip(boxes, boxes[1:]))      # left to right, no overlaps
    tops = [line.box[1] for line in result.layout.lines]
    assert tops == sorted(tops)                                          # top to bottom


def test_worddetector_cursive_two_lines_eight_words(shared_data):
    result, _ = segment_file(shared_data / "pages" / "worddetectornn_random.jpg")
    text = (shared_data / "pages" / "worddetectornn_random.txt").read_text().splitlines()
    assert [len(line.words) for line in result.layout.lines] == [len(line.split()) for line in text]
    assert (result.n_lines, result.n_words) == (2, 8)
    assert result.n_cursive_words >= 1   # joined-up words are kept whole and flagged
    lefts = [[word.box[0] for word in line.words] for line in result.layout.lines]
    assert all(xs == sorted(xs) for xs in lefts)


def test_blank_page_has_no_lines():
    rgb = np.full((400, 600, 3), 235, np.uint8)
    result = segment_array(Path("blank"), rgb)
    assert (result.n_lines, result.n_words, result.n_letters) == (0, 0, 0) and result.crops.shape == (0, 28, 28)


def test_ruled_lines_and_a_form_box_alone_are_not_text():
    mask = np.zeros((600, 900), bool)
    for y in range(100, 600, 90):
        mask[y:y + 3, 20:880] = True                 # ruled lines
    mask[40:560, 40:43] = mask[40:560, 850:853] = True  # a form box's sides
    mask[200:240, 300:306] = True                   # one letter-sized stroke
    result = layout.analyse(mask)
    assert len(result.lines) == 1 and len(result.lines[0].words) == 1


def test_word_gap_threshold_from_the_page_gaps():
    letters_gaps = np.array([4, 6, 5, 7, 3, 6, 5, 4], float)
    word_gaps = np.array([30, 34, 28], float)
    threshold = layout.word_gap_threshold(np.concatenate([letters_gaps, word_gaps]), height=40, stroke=4)
    assert 7 < threshold < 28
    assert layout.word_gap_threshold(letters_gaps, height=40, stroke=4) == float("inf")   # one word per line
    spaced = layout.word_gap_threshold(np.array([60, 64, 58, 61], float), height=40, stroke=4)
    assert spaced < 58                                                                   # a form: one letter each
    fields = np.array([600, 850, 1200], float)                  # a form's gaps between fields do not move it
    assert 7 < layout.word_gap_threshold(np.concatenate([letters_gaps, word_gaps, fields]), 40, 4) < 28


def test_writing_of_two_sizes_on_one_page_is_measured_by_its_own_size(letters):
    """Large hand print on a page of small writing (a filled-in form) keeps its letters and words."""
    images, labels = letters
    small = render.render_page(images, labels, ["made a face", "big milk jade"], seed=1,
                               options=render.Options(letter_height=30, ruled=False, max_rotation=0.0))
    large = render.render_page(images, labels, ["face mild"], seed=2,
                               options=render.Options(letter_height=90, ruled=False, max_rotation=0.0))
    width = max(small.rgb.shape[1], large.rgb.shape[1])
    pad = lambda rgb: np.pad(rgb, ((0, 0), (0, width - rgb.shape[1]), (0, 0)), mode="edge")
    stacked = np.concatenate([pad(small.rgb), pad(large.rgb), pad(small.rgb)])
    result = segment_array(Path("two-sizes"), stacked)
    truth = [small, large, small]
    assert result.n_cursive_words == 0
    assert result.n_lines == sum(len(page.lines) for page in truth)
    assert result.n_letters == sum(len(page.letters) for page in truth)


def test_skew_is_found_within_half_a_degree():
    rng = np.random.default_rng(0)
    for degrees in (-5.0, -2.0, 0.0, 3.0, 5.0):
        xs = np.tile(np.arange(0, 1000, 40.0), 4)
        ys = np.repeat([100.0, 200.0, 300.0, 400.0], xs.size // 4) + xs * np.tan(np.radians(degrees))
        centres = np.stack([xs, ys + rng.normal(0, 2, xs.size)], axis=1)
        assert abs(layout.estimate_skew(centres, height=40) - degrees) <= 0.5


def test_a_letter_broken_into_a_short_piece_and_the_rest_is_one_letter():
    mask = np.zeros((300, 600), bool)

    def ring(x0, y0, x1, y1):   # a letter-like outline with 4-pixel strokes
        mask[y0:y1, x0:x1] = True
        mask[y0 + 4:y1 - 4, x0 + 4:x1 - 4] = False

    for x in (100, 150, 300, 350):
        ring(x, 100, x + 30, 140)
    mask[100:140, 200:204] = mask[136:140, 200:222] = True   # an L: the main part of a broken letter
    mask[104:124, 218:230] = True                             # its short piece, not touching it
    mask[108:120, 222:226] = False
    result = layout.analyse(mask)
    assert [len(word.letters) for line in result.lines for word in line.words] == [3, 2]
    assert result.lines[0].words[0].letters[2].box == (200, 100, 230, 140)


def test_a_line_of_nothing_but_blobs_is_no_writing():
    """Smudges under the writing, each about two pen strokes tall and too wide to be dots: no line; a ring of the
    letters' stroke on that line, with room for its counter, makes it one."""
    mask = np.zeros((400, 600), bool)
    for x in (100, 150, 200, 250):   # rings 40 tall with 4-pixel strokes: letters
        mask[100:140, x:x + 30] = True
        mask[104:136, x + 4:x + 26] = False
    mask[300:308, 120:138] = mask[302:309, 180:198] = True   # two blobs, 8 and 7 tall: not dots, 18 wide
    result = layout.analyse(mask.copy())
    assert len(result.lines) == 1 and len(result.lines[0].words[0].letters) == 4
    mask[296:316, 240:256] = True                           # a letter-sized ring on the blobs' line
    mask[300:312, 244:252] = False
    assert len(layout.analyse(mask).lines) == 2


def test_a_piece_of_ruled_line_under_a_letter_is_not_part_of_it():
    mask = np.zeros((300, 600), bool)
    for x in (100, 150, 200):
        mask[100:140, x:x + 30] = True
        mask[104:136, x + 4:x + 26] = False
    mask[148:151, 140:220] = True   # what is left of a broken ruled line, just under the letters
    result = layout.analyse(mask)
    assert [letter.box for letter in result.lines[0].words[0].letters] == \
        [(100, 100, 130, 140), (150, 100, 180, 140), (200, 100, 230, 140)]


def test_letters_crossing_pale_rules_of_another_colour_keep_their_strokes(letters):
    """A notebook: black writing on pale blue rules that cross every letter's lower part. The rules go, the letters
    keep their full boxes (as on the same page without rules)."""
    images, labels = letters
    scores = []
    for seed in range(4):
        text = render.random_text(np.random.default_rng(seed), 4)
        options = dict(letter_height=44, max_rotation=1.0, ink_colour=(60, 57, 64), rule_colour=(110, 170, 215),
                       rule_at=0.75, specks=0)
        ruled = render.render_page(images, labels, text, seed=seed, options=render.Options(**options))
        plain = render.render_page(images, labels, text, seed=seed, options=render.Options(**options, ruled=False))
        found, clean = (found_letters(segment_array(Path("page"), page.rgb)) for page in (ruled, plain))
        assert [f[:3] for f in found] == [f[:3] for f in clean], seed
        scores.append(np.mean([np.abs(np.subtract(a[3], b[3])).max() <= 2 for a, b in zip(found, clean)]))
        assert render.score_letters(ruled, found) >= 0.98
    assert np.mean(scores) >= 0.95
