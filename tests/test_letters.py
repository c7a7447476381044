"""Letters: idx pairs read upright with the right labels, the validation split and balanced sampling, augmentation
that keeps the letter in the frame, the two architectures, training by the shared loop, and `seqdl eval letters`."""
from __future__ import annotations

import gzip
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import seqdl
from seqdl import training
from seqdl.errors import SeqdlError
from vision.augment import AugmentOptions, augment
from vision.letters_data import Sampler, read_letters, split_validation
from vision.letters_eval import summarize
from vision.letters_model import (
    CLASSES, LettersConfig, build_model, classify, inference_net, load_letters_model, logits, to_input,
)
from vision.letters_train import record_accuracy, train

from PIL import Image, ImageDraw

from vision.emnist import prepare_crop

TEST_PREFIX = "emnist-letters/emnist-letters-test-first10000"
POOL_PREFIX = "emnist-letters/emnist-letters-pool"


def write_pair(prefix: Path, images: np.ndarray, labels: np.ndarray, magic: int = 0x803) -> str:
    """An EMNIST-style idx pair: images stored transposed (as EMNIST does), labels as given (1..26)."""
    n = len(images)
    header = magic.to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (n, 28, 28))
    with gzip.open(f"{prefix}-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(header + np.ascontiguousarray(images.transpose(0, 2, 1)).tobytes())
    with gzip.open(f"{prefix}-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write((0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.astype(np.uint8).tobytes())
    return str(prefix)


@pytest.fixture(scope="module")
def pool(shared_data):
    return read_letters(shared_data / POOL_PREFIX)


@pytest.fixture(scope="module")
def test_letters(shared_data):
    return read_letters(shared_data / TEST_PREFIX)


def ink_runs(row: np.ndarray) -> int:
    """How many separate strokes a line of pixels crosses."""
    ink = np.concatenate([[False], row > 127, [False]])
    return int(np.count_nonzero(ink[1:] & ~ink[:-1]))


# ------------------------------------------------------------- labels and orientation
def test_pair_is_read_upright_with_classes_from_zero(tmp_path):
    images = np.zeros((26, 28, 28), np.uint8)
    images[:, 4:24, 6:9] = 255          # an upright 'l'-like bar: tall, narrow
    images[np.arange(26), 0, np.arange(26)] = 7   # each image marked by its own index in the top row
    prefix = write_pair(tmp_path / "x", images, np.arange(1, 27))
    data = read_letters(prefix)
    assert np.array_equal(data.images, images)   # stored transposed, read upright
    assert data.labels.tolist() == list(range(26)) and data.labels.dtype == np.int64
    assert CLASSES[data.labels[3]] == "d"


def test_known_emnist_image_is_the_letter_its_label_says(test_letters):
    # MANIFEST: index 9617 has label 13 = 'm'; upright, a line through its middle crosses its three legs
    image, label = test_letters.images[9617], test_letters.labels[9617]
    assert CLASSES[label] == "m"
    across = [ink_runs(image[row]) for row in range(14, 20)]
    down = [ink_runs(image[:, col]) for col in range(10, 18)]
    assert max(set(across), key=across.count) == 3, across
    assert max(down) <= 2, down   # transposed, the legs would lie across the columns instead


@pytest.mark.parametrize("problem, match", [
    ("magic", "not an idx file"), ("label", "outside 1..26"), ("count", "labels for"), ("missing", "no such file"),
])
def test_bad_pair_is_one_error_naming_the_file(tmp_path, run, problem, match):
    images = np.zeros((4, 28, 28), np.uint8)
    labels = np.array([1, 2, 27 if problem == "label" else 3, 4])
    prefix = write_pair(tmp_path / "bad", images, labels[:3] if problem == "count" else labels,
                        magic=0x801 if problem == "magic" else 0x803)
    if problem == "missing":
        Path(f"{prefix}-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(SeqdlError, match=match) as caught:
        read_letters(prefix)
    assert "bad-" in str(caught.value)
    code, out, err = run("eval", "letters", "--data", prefix, "--model", tmp_path / "absent.safetensors")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("seqdl: error: ")


# ------------------------------------------------------------- split and sampling
def test_validation_split_is_balanced_interleaved_disjoint_and_fixed(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.full(8 + 3 * k, k + 1) for k in range(26)])
    rng.shuffle(labels)
    images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    data = read_letters(write_pair(tmp_path / "p", images, labels))
    train_set, val_set = split_validation(data, 5)
    assert len(val_set) == 130 and len(train_set) == len(data) - 130
    assert val_set.labels[:26].tolist() == list(range(26))   # a prefix is balanced too
    assert np.bincount(val_set.labels).tolist() == [5] * 26
    seen = {image.tobytes() for image in train_set.images}
    assert not any(image.tobytes() in seen for image in val_set.images)
    again = split_validation(data, 5)[1]
    assert np.array_equal(again.images, val_set.images)
    with pytest.raises(SeqdlError, match="too few"):
        split_validation(data, 8)


def test_balanced_sampler_draws_every_letter_equally_often():
    labels = np.repeat(np.arange(26), np.arange(1, 27) * 20)   # z is 26 times as common as a
    rng = np.random.default_rng(1)
    balanced = np.bincount(labels[Sampler(labels, True).draw(rng, 52_000)], minlength=26) / 52_000
    natural = np.bincount(labels[Sampler(labels, False).draw(rng, 52_000)], minlength=26) / 52_000
    assert np.abs(balanced - 1 / 26).max() < 0.006
    assert natural[25] > 15 * natural[0]


# ------------------------------------------------------------------ augmentation
def emnist_like_letters(n: int) -> np.ndarray:
    """An 'A' drawn and prepared the way EMNIST was made, shifted so some copies touch EMNIST's 2-pixel border."""
    picture = Image.new("L", (120, 120), 0)
    draw = ImageDraw.Draw(picture)
    draw.line([(18, 114), (60, 6), (102, 114)], fill=255, width=10)
    draw.line([(36, 72), (84, 72)], fill=255, width=10)
    crop = prepare_crop(np.asarray(picture) > 127)
    shifted = [np.roll(crop, (dy, dx), axis=(0, 1)) for dy in (-2, 0, 2) for dx in (-2, 0, 2)]
    return np.stack([shifted[i % len(shifted)] for i in range(n)])


def test_augmentation_keeps_the_letter_in_the_frame(request):
    try:
        images = request.getfixturevalue("pool").images[:600]
    except pytest.skip.Exception:
        images = emnist_like_letters(600)
    for strength, typical in ((1.0, 0.85), (2.0, 0.6)):
        out = augment(images, np.random.default_rng(3), AugmentOptions().scaled(strength))
        assert out.shape == images.shape and out.dtype == np.uint8
        border = np.concatenate([out[:, 0], out[:, -1], out[:, :, 0], out[:, :, -1]], axis=1)
        assert border.max() <= 64, int(border.max())   # no clear ink is cut by the frame
        # pixels of clear ink after / before: letters shrink to fit and strokes thin, but none vanishes
        kept = (out > 64).sum(axis=(1, 2)) / np.maximum((images > 64).sum(axis=(1, 2)), 1)
        assert kept.min() > 0.15 and np.median(kept) > typical, (kept.min(), np.median(kept))
    changed = np.abs(out.astype(int) - images).mean(axis=(1, 2))
    assert (changed > 5).mean() > 0.9   # and it does change nearly every image


def test_augmentation_is_repeatable_and_off_at_zero_strength():
    images = emnist_like_letters(40)
    first = augment(images, np.random.default_rng(5))
    assert np.array_equal(first, augment(images, np.random.default_rng(5)))
    assert not np.array_equal(first, augment(images, np.random.default_rng(6)))
    assert np.array_equal(augment(images, np.random.default_rng(5), AugmentOptions().scaled(0)), images)


# ------------------------------------------------------------------ architectures
def test_hello_dl_has_the_original_layout():
    net = build_model(LettersConfig.for_arch("hello-dl"))
    shapes = {name: tuple(a.shape) for name, a in net.state_dict().items()}
    assert shapes["conv1.weight"] == (32, 1, 3, 3) and shapes["conv2.weight"] == (64, 32, 3, 3)
    assert shapes["conv3.weight"] == (128, 64, 3, 3)
    assert shapes["fc1.weight"] == (64, 512) and shapes["fc2.weight"] == (128, 64) and shapes["fc3.weight"] == (26, 128)
    with pytest.raises(SeqdlError, match="fixed sizes"):
        LettersConfig.for_arch("hello-dl", hidden=10)


@pytest.mark.parametrize("arch", ["vgg", "hello-dl"])
def test_networks_give_26_probabilities_per_crop(arch):
    net = build_model(LettersConfig.for_arch(arch))
    crops = emnist_like_letters(5)
    probs = classify(net, crops)
    assert probs.shape == (5, 26) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert net(to_input(crops)).shape == (5, 26)
    with pytest.raises(ValueError, match="28, 28"):
        to_input(crops[:, :20])


def test_folding_batchnorm_changes_no_output():
    net = build_model(LettersConfig())
    rng = np.random.default_rng(2)
    for name, array in net.state_dict().items():   # trained-looking statistics and affine parameters
        if name.endswith(("running_mean", "bias")):
            array[...] = rng.normal(0, 0.3, array.shape)
        elif name.endswith(("running_var", ".1.weight", ".2.weight")) and array.ndim == 1:
            array[...] = rng.uniform(0.5, 2.0, array.shape)
    crops = emnist_like_letters(9)
    fast = inference_net(net)
    assert not any(type(m).__name__.startswith(("BatchNorm", "Dropout")) for m in fast.modules())
    np.testing.assert_allclose(logits(fast, crops), logits(net, crops), rtol=1e-4, atol=1e-4)



def test_batches_on_several_threads_give_the_same_logits():
    from threadpoolctl import threadpool_limits

    from seqdl.tensor import is_grad_enabled

    net = inference_net(build_model(LettersConfig()))
    crops = np.concatenate([emnist_like_letters(9)] * 8)
    with threadpool_limits(limits=1, user_api="blas"):
        one = logits(net, crops)
    with threadpool_limits(limits=2, user_api="blas"):   # two worker threads, one BLAS thread each
        two = logits(net, crops, batch_size=16)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-5)
    assert is_grad_enabled()                             # the grad switch is back as it was


# --------------------------------------------------------- training through the shared loop
@pytest.fixture(scope="module")
def trained(pool, test_letters, tmp_path_factory):
    """A tiny model trained for a few seconds on 100 pool images per letter."""
    folder = tmp_path_factory.mktemp("letters")
    rows = np.concatenate([np.flatnonzero(pool.labels == k)[:100] for k in range(26)])
    prefix = write_pair(folder / "small", pool.images[rows], pool.labels[rows] + 1)
    held = np.arange(0, len(test_letters), 25)   # 400 test images never trained on, a..m
    test_prefix = write_pair(folder / "held", test_letters.images[held], test_letters.labels[held] + 1)
    model_path = folder / "tiny.safetensors"
    result, metrics = train(prefix, model_path, budget=training.Budget(steps=100),
                            model_options={"channels": (8, 16, 32), "hidden": 64},
                            train_options={"batch_size": 32, "lr": 4e-3}, data_options={"val_per_class": 4},
                            settings=training.Settings(quiet=True), test_prefix=test_prefix, command="test")
    return model_path, test_prefix, result, metrics


@pytest.mark.parametrize("arch, sizes", [("vgg", {"channels": (4, 4, 8), "hidden": 8}), ("hello-dl", {})])
def test_resume_continues_with_the_saved_settings_and_refuses_others(tmp_path, arch, sizes):
    prefix = write_pair(tmp_path / "p", emnist_like_letters(26 * 3), np.tile(np.arange(1, 27), 3))
    model = tmp_path / "m.safetensors"
    common = dict(data_options={"val_per_class": 1}, settings=training.Settings(quiet=True))
    train(prefix, model, budget=training.Budget(steps=3), model_options={"arch": arch, **sizes}, **common)
    result, _ = train(prefix, model, budget=training.Budget(steps=2), resume=True, model_options=sizes, **common)
    assert result.step == 5
    with pytest.raises(SeqdlError, match="keeps its settings"):
        train(prefix, model, budget=training.Budget(steps=2), resume=True, train_options={"batch_size": 7},
              **common)


def test_resume_after_ctrl_c_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    """Augmentation, balanced sampling, dropout and BatchNorm all come back exactly after Ctrl-C and --resume."""
    prefix = write_pair(tmp_path / "p", emnist_like_letters(26 * 3), np.tile(np.arange(1, 27), 3))
    common = dict(budget=training.Budget(steps=8), model_options={"channels": (4, 4, 8), "hidden": 8},
                  train_options={"batch_size": 16}, data_options={"val_per_class": 1},
                  settings=training.Settings(eval_every=3, quiet=True))
    train(prefix, tmp_path / "a.safetensors", **common)
    original = training.Loop.train_step

    def train_step(self):
        out = original(self)
        if self.step == 4:
            os.kill(os.getpid(), signal.SIGINT)   # as Ctrl-C would
        return out

    with monkeypatch.context() as patch:
        patch.setattr(training.Loop, "train_step", train_step)
        first, _ = train(prefix, tmp_path / "b.safetensors", **common)
    assert first.interrupted and first.step == 4
    resumed, _ = train(prefix, tmp_path / "b.safetensors", resume=True, **common)
    assert resumed.step == 8 and not resumed.interrupted
    for name in ("safetensors", "checkpoint.safetensors"):   # the best model and the last step's weights
        a, b = (seqdl.load(tmp_path / f"{run}.{name}").state_dict for run in "ab")
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name


def test_tiny_model_beats_chance_by_a_wide_margin_on_held_out_crops(trained):
    model_path, test_prefix, result, metrics = trained
    assert result.step == 100 and not result.interrupted
    held = read_letters(test_prefix)
    model = load_letters_model(model_path)
    accuracy = float((model.classify(held.images).argmax(1) == held.labels).mean())
    assert accuracy > 0.3, accuracy   # chance is 1/26 = 0.04 (and 1/13 among a..m); this net reaches ~0.45
    assert metrics["test_accuracy"] == pytest.approx(accuracy) and metrics["test_n"] == len(held)
    assert 0 < metrics["val_accuracy"] <= 1 and metrics["val_n"] == 104


def test_model_file_carries_its_card_and_refuses_other_kinds(trained, tiny_text_model):
    model = load_letters_model(trained[0])
    card = model.metadata
    assert card["seqdl.classes"] == CLASSES and card["seqdl.command"] == "test"
    assert card["seqdl.trained_on"]["n_validation"] == 104 and card["seqdl.seed"] == 0
    assert model.config.channels == (8, 16, 32)
    assert {"val_error", "val_accuracy", "test_accuracy", "best_step"} <= set(card["seqdl.metrics"])
    with pytest.raises(SeqdlError, match="expected a 'letters' model"):
        load_letters_model(tiny_text_model)


def test_int8_copy_keeps_its_accuracy_and_records_it_in_its_card(trained, tmp_path):
    from seqdl.checkpoint import QUANTIZATION, read_header
    from seqdl.quantize import quantize_file

    model_path, test_prefix, _, metrics = trained
    small = quantize_file(model_path, tmp_path / "int8.safetensors")
    held = read_letters(test_prefix)
    int8 = record_accuracy(small, held.subset(np.zeros(0, np.int64)), held)
    assert abs(int8["test_accuracy"] - metrics["test_accuracy"]) <= 0.02   # 400 images: 8 may change
    assert QUANTIZATION in read_header(small)["__metadata__"]   # still int8 after the card was rewritten
    assert load_letters_model(small).metadata["seqdl.metrics"]["test_accuracy"] == int8["test_accuracy"]
    assert small.stat().st_size < model_path.stat().st_size


def test_eval_letters_prints_one_json_object_and_draws_the_confusion(trained, run, tmp_path):
    model_path, test_prefix, _, metrics = trained
    png = tmp_path / "confusion.png"
    code, out, err = run("eval", "letters", "--data", test_prefix, "--model", model_path, "--json",
                         "--confusion", png)
    assert code == 0, err
    report = json.loads(out)
    assert report["n"] == 400 and report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert set(report["per_letter"]) == set("abcdefghijklm")
    assert report["confused_pairs"] and {"true", "predicted", "count"} <= set(report["confused_pairs"][0])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_counts_letters_and_pairs():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    report = summarize(labels, predicted)
    assert report["accuracy"] == pytest.approx(3 / 6) and report["n"] == 6
    assert report["per_letter"]["a"] == {"accuracy": pytest.approx(1 / 3), "n": 3}
    assert report["confused_pairs"][0] == {"true": "a", "predicted": "b", "count": 2, "share_of_true": pytest.approx(2 / 3)}
