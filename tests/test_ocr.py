"""vision.ocr, vision.cuts and the language-model callback: reading pages, cutting touching letters, scoring."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.text_model import load_text_model
from pipelines.text_scorer import CharModelScorer
from seqdl.beam import beam_search, chain
from vision import cuts, emnist, heights, ocr, render

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


@pytest.fixture(scope="module")
def classify():
    from vision.letters_model import DEFAULT_MODEL, load_letters_model

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"no shipped letters model at {DEFAULT_MODEL}")
    return load_letters_model(DEFAULT_MODEL).classify


@pytest.fixture(scope="module")
def test_letters(shared_data):
    return emnist.load_emnist_letters(shared_data / "emnist-letters")


def test_character_accuracy_counts_letters_only() -> None:
    assert ocr.character_accuracy("Hello, World!", "hello world") == 1.0
    assert ocr.character_accuracy("helo world", "hello world") == pytest.approx(0.9)
    assert ocr.character_accuracy("", "abcd") == 0.0
    assert ocr.character_accuracy("xxxxxxxxxx", "ab") == 0.0      # never negative
    assert ocr.character_accuracy("", "") == 1.0


def test_cut_points_find_the_join_between_two_blobs() -> None:
    ink = np.zeros((40, 70), bool)
    ink[5:35, 2:30] = True          # a letter
    ink[18:21, 30:40] = True        # a thin join, 3 pixels high
    ink[5:35, 40:68] = True         # another letter
    points = cuts.cut_points(ink, stroke=3.0)
    assert points[0] == 0 and points[-1] == 70
    assert any(30 <= p <= 40 for p in points[1:-1])
    spans = {(p.x0, p.x1) for p in cuts.pieces(points, height=30.0)}
    assert (0, 70) in spans                       # the whole glyph is always a candidate
    assert any(x0 == 0 and 30 <= x1 <= 40 for x0, x1 in spans)


def test_width_prior_is_flat_for_letters_and_falls_for_pairs() -> None:
    assert cuts.width_prior(0.3 * 50, 50) == 0.0 == cuts.width_prior(1.2 * 50, 50)
    assert cuts.width_prior(2.5 * 50, 50) < cuts.width_prior(1.6 * 50, 50) < 0


def _line(spec: str, x_height: int = 20, slope: float = 0.0) -> np.ndarray:
    """Boxes of a line of letters: 's' short, 't' tall, 'd' short and descending, on a baseline at y=100."""
    boxes = []
    for i, kind in enumerate(spec):
        x0 = 30 * i
        top = 100 - (2 * x_height if kind == "t" else x_height)
        bottom = 100 + (x_height if kind == "d" else 0)
        shift = (x0 + 10) * slope
        boxes.append((x0, top + shift, x0 + 20, bottom + shift))
    return np.array(boxes)


def test_height_priors_rule_out_ascenders_on_short_letters() -> None:
    column = emnist.ALPHABET.index
    for slope in (0.0, 0.05):                     # a slanted line is measured across its slant
        priors = heights.line_priors(_line("tsssdsstss", slope=slope), np.degrees(np.arctan(slope)))
        short, tall, hanging = priors[1], priors[0], priors[4]
        assert short[column("d")] < 0 and short[column("g")] < 0 and short[column("a")] == 0
        assert not tall.any()                          # a tall letter may be a capital of anything
        assert hanging[column("g")] == 0 and hanging[column("a")] < 0


def test_height_priors_are_silent_without_two_heights() -> None:
    assert not heights.line_priors(_line("tttttttt"), 0.0).any()      # capitals only
    assert not heights.line_priors(_line("ssssssss"), 0.0).any()      # one size (rendered EMNIST letters)
    assert not heights.line_priors(_line("tst"), 0.0).any()           # too few letters to tell


def test_scorer_folds_case_and_sums_to_one(tiny_text_model) -> None:
    model, vocab, _ = load_text_model(tiny_text_model)
    scorer = CharModelScorer(model, vocab, ocr.SYMBOLS)
    histories = [(), (0,), (0, 26), (7, 4, 11)]
    log_probs = scorer(histories)
    assert log_probs.shape == (4, 27)
    assert np.allclose(np.exp(log_probs).sum(axis=1), 1.0)
    # Case folded: P(a) is P('a') + P('A') from the model itself, renormalised over letters and space.
    import seqdl

    with seqdl.no_grad():
        logits, _ = model(np.array([[vocab.encode("\n")[0]]]))
    p = np.exp(logits.data[0, 0] - logits.data[0, 0].max())
    p /= p.sum()
    ids = {c: int(vocab.encode(c)[0]) for c in "aA "}
    letters_and_space = sum(p[vocab.encode(c)[0]] for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    assert np.exp(log_probs[0, 0]) == pytest.approx((p[ids["a"]] + p[ids["A"]]) / letters_and_space, rel=1e-4)
    assert np.allclose(scorer([(7, 4, 11)]), log_probs[3:])   # cached and recomputed agree


def test_uniform_language_model_keeps_the_classifier_argmax() -> None:
    rng = np.random.default_rng(0)
    letters = np.log(rng.dirichlet(np.ones(26), size=9))
    rows = np.concatenate([letters, np.full((9, 1), -np.inf)], axis=1)
    uniform = lambda h: np.full((len(h), 27), -np.log(27))   # noqa: E731
    best = beam_search(10, chain(rows), uniform, weight=1.0)[0]
    assert best.symbols == tuple(letters.argmax(axis=1))


def test_blank_page_reads_as_nothing() -> None:
    blank = np.full((300, 400, 3), 240, np.uint8)
    page = ocr.read_array(Path("blank"), blank, lambda crops: np.full((len(crops), 26), 1 / 26))
    assert page.text == "" and page.letters == [] and page.n_crops == 0


def test_example_page(classify) -> None:
    """data/examples/page-emnist.png (EMNIST test letters) reads as its true text, line for line."""
    page, _ = ocr.read_file(EXAMPLES / "page-emnist.png", classify)
    truth = (EXAMPLES / "page-emnist.txt").read_text()
    assert len(page.lines) == len(truth.splitlines())
    assert ocr.character_accuracy(page.text, truth) >= 0.85
    assert all(len(letter.top3) == 3 and letter.top3[0][1] >= letter.top3[1][1] for letter in page.letters)


def test_cut_by_recognition_recovers_touching_letters(classify, test_letters) -> None:
    """Letters drawn touching and overlapping their neighbours: reading the layout's boxes as they are loses most
    of them; cutting by recognition gets most back."""
    from vision.segment import segment_array

    images, labels = test_letters
    options = render.Options(letter_gap=(-0.08, 0.0), word_gap=(1.2, 1.6), specks=0)
    boxes = read = truth = ""
    n_cut = 0
    for seed in range(3):
        text = render.random_text(np.random.default_rng(seed), 4, (2, 3))
        page = render.render_page(images, labels, text, seed=seed, options=options)
        layout_only = segment_array(Path(f"touching-{seed}"), page.rgb)
        boxes += "".join(emnist.ALPHABET[k] for k in classify(layout_only.crops).argmax(axis=1))
        result = ocr.read_array(Path(f"touching-{seed}"), page.rgb, classify)
        n_cut += sum(letter.from_cut for letter in result.letters)
        read, truth = read + result.text + "\n", truth + "\n".join(text) + "\n"
    assert n_cut >= 0.5 * len(read.replace(" ", "").replace("\n", ""))
    assert ocr.character_accuracy(read, truth) >= max(0.55, ocr.character_accuracy(boxes, truth) + 0.2)


def test_bmitt_capitals(classify, shared_data) -> None:
    """The shared scan of capitals A-Z three times: every line in order, >= 95 % of letters right."""
    path = shared_data / "pages" / "bmitt_latin_caps.jpg"
    page, _ = ocr.read_file(path, classify)
    truth = path.with_suffix(".txt").read_text().split()
    lines = [line.replace(" ", "") for line in page.lines]
    assert len(lines) == len(truth)
    assert ocr.character_accuracy(page.text, "\n".join(truth)) >= 0.95
    assert all(ocr.character_accuracy(a, b) >= 0.8 for a, b in zip(lines, truth))   # each line where it belongs
