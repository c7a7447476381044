"""``seqdl train letters``: a letter classifier trained by the shared loop (:mod:`seqdl.training`).

What letters add to the loop: the validation split and class-balanced
sampling (:mod:`vision.letters_data`), batched handwriting augmentation
(:mod:`vision.augment`), label smoothing, and a model card that records the
data, validation accuracy and, with ``test``, accuracy on a held-out test set
(measured once at the end, never used to choose anything).

Files beside ``<model>.safetensors``: ``.checkpoint.safetensors`` (resume) and
``.metrics.parquet`` (train loss and error, lr, validation loss and error;
``seqdl plot`` draws it).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

import seqdl
from seqdl import checkpoint, training
from seqdl.errors import SeqdlError
from seqdl.io import sha256_file
from seqdl.nn import functional as F

from .augment import AugmentOptions, augment
from .letters_data import LetterData, Sampler, read_letters, split_validation
from .letters_eval import evaluate
from .letters_model import (CLASSES, KIND, LettersConfig, build_model, load_letters_model, logits, model_metadata,
                            to_input)
from .letters_options import DataOptions, LetterOptions


def draw_batch(data: LetterData, sampler: Sampler, options: LetterOptions, augmentation: AugmentOptions,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One class-balanced batch of (augmented) images and their classes."""
    rows = sampler.draw(rng, options.batch_size)
    images = augment(data.images[rows], rng, augmentation) if options.augment > 0 else data.images[rows]
    return images, data.labels[rows]


def batch_loss(model: seqdl.nn.Module, batch: tuple[np.ndarray, np.ndarray], rows: slice,
               options: LetterOptions) -> tuple[seqdl.Tensor, dict[str, float]]:
    """Cross-entropy (label-smoothed) of the batch's ``rows`` and their error rate, as shares of the batch's."""
    images, labels = batch[0][rows], batch[1][rows]
    share = len(labels) / len(batch[1])
    out = model(to_input(images))
    loss = F.cross_entropy(out, labels, label_smoothing=options.label_smoothing)
    return loss * share, {"train_error": float((out.data.argmax(1) != labels).sum()) / len(batch[1])}


def validation_metrics(model: seqdl.nn.Module, data: LetterData, limit: int, n_classes: int) -> dict[str, float]:
    """Loss and error on the first ``limit`` validation images (a balanced prefix)."""
    out = logits(model, data.images[:limit], n_classes=n_classes)
    labels = data.labels[:limit]
    loss = float(F.cross_entropy(seqdl.Tensor(out), labels).data)
    return {"val_loss": loss, "val_error": float((out.argmax(1) != labels).mean())}


def train(data_prefix: str, model_path: Path, *, budget: training.Budget, resume: bool = False,
          force: bool = False, model_options: dict[str, Any] | None = None,
          train_options: dict[str, Any] | None = None, data_options: dict[str, Any] | None = None,
          settings: training.Settings = training.Settings(), test_prefix: str | None = None,
          command: str = "", digits_prefix: str | None = None) -> tuple[training.Result, dict[str, Any]]:
    """Train (or with ``resume`` continue) the letters model at ``model_path``; returns the loop's result and the
    model card's metrics (validation accuracy, and test accuracy when ``test_prefix`` is given).

    With ``digits_prefix`` (a digits pair) the model is a numbers model instead
    (:func:`vision.digits.numbers_task`): digits and one class for the letters of
    ``data_prefix``; ``test_prefix`` then names digits too.
    Option dicts hold what the user typed (None: not given); ``model_options`` may name ``arch``.
    """
    from . import digits as numbers

    outputs = training.Outputs(model_path, resume=resume, force=force)
    saved = seqdl.load(outputs.checkpoint, kind=KIND) if resume else None
    model_options = dict(model_options or {})
    if model_options.get("channels") is not None:
        model_options["channels"] = list(model_options["channels"])  # as the checkpoint stores them
    groups = training.resolve_options(saved, {"train": train_options, "model": model_options,
                                              "data": data_options})
    options = LetterOptions(**groups["train"])
    classes = numbers.NUMBER_CLASSES if digits_prefix else CLASSES
    if groups["model"].get("classes", classes) != classes:
        raise SeqdlError(f"holds a model of the classes {groups['model']['classes']!r}, not {classes!r}: resume it "
                         f"with the command that started it", str(outputs.checkpoint))
    config = _config({**groups["model"], "classes": classes})
    split = DataOptions(**groups["data"])
    read_test = numbers.read_digits if digits_prefix else read_letters
    test = read_test(test_prefix) if test_prefix else None  # a bad test file fails before training, not after
    pool = read_letters(data_prefix)
    if digits_prefix:
        train_set, val_set, shares = numbers.numbers_task(numbers.read_digits(digits_prefix), pool,
                                                          split.val_per_class)
        sampler = Sampler(train_set.labels, True, shares)
    else:
        train_set, val_set = split_validation(pool, split.val_per_class)
        sampler = Sampler(train_set.labels, options.balance)
    augmentation = AugmentOptions().scaled(options.augment)

    seqdl.manual_seed(options.seed)  # before building the model; a resume restores the generator afterwards
    model = build_model(config)
    task = training.Task(
        model=model,
        draw=lambda rng: draw_batch(train_set, sampler, options, augmentation, rng),
        loss=lambda net, batch, rows: batch_loss(net, batch, rows, options),
        validate=(lambda limit: validation_metrics(model, val_set, limit, len(classes))) if len(val_set) else None,
        val_items=len(val_set), items_per_step=options.batch_size, unit="images", kind=KIND,
        config=config.to_dict(),
        metadata={**model_metadata(classes), "seqdl.command": command, "seqdl.seed": options.seed,
                  "seqdl.trained_on": _trained_on(pool, train_set, val_set, split, options, digits_prefix)},
        keep_best={"": "val_error"},
        options={"model": config.to_dict(), "data": asdict(split)})
    result = training.Loop(task, options, outputs, budget, settings, saved).run()
    if result.interrupted:  # the user wants out: no minutes of evaluation before the exit
        return result, dict(load_letters_model(outputs.model, classes).metadata.get("seqdl.metrics") or {})
    return result, record_accuracy(outputs.model, val_set, test, classes)


def _config(given: dict[str, Any]) -> LettersConfig:
    given = dict(given)
    if "channels" in given:
        given["channels"] = tuple(given["channels"])
    return LettersConfig.for_arch(given.pop("arch", "vgg"), **given)


def _trained_on(pool: LetterData, train_set: LetterData, val_set: LetterData, split: DataOptions,
                options: LetterOptions, digits_prefix: str | None) -> dict[str, Any]:
    from . import digits as numbers

    where = {"images": str(pool.images_path), "images_sha256": sha256_file(pool.images_path),
             "labels": str(pool.labels_path), "n_pool": len(pool), "n_train": len(train_set),
             "n_validation": len(val_set)}
    if digits_prefix:
        where.update(digits=str(train_set.images_path), digits_sha256=sha256_file(train_set.images_path),
                     validation=f"the first {numbers.DIGITS_VAL_PER_CLASS} images of each digit and "
                                f"{numbers.LETTERS_VAL_PER_CLASS} of each letter in file order; the first "
                                f"{split.val_per_class} of each letter are not trained on",
                     sampling=f"digits balanced, letters {numbers.LETTER_SHARE:.0%} of every batch")
    else:
        where.update(validation=f"the first {split.val_per_class} images of each letter in file order",
                     sampling="class-balanced" if options.balance else "uniform over images")
    return {**where,
            "augmentation": {"strength": options.augment, **asdict(AugmentOptions().scaled(options.augment))},
            "label_smoothing": options.label_smoothing}


def record_accuracy(model_path: Path, val_set: LetterData, test: LetterData | None,
                    classes: str = CLASSES) -> dict[str, Any]:
    """Measure a saved glyph classifier (float or quantised) on the whole validation set and the test set, and
    add both to its card; the tensors are written back as stored, so an int8 file stays int8."""
    loaded = load_letters_model(model_path, classes)
    metrics = dict(loaded.metadata.get("seqdl.metrics") or {})
    if len(val_set):
        metrics["val_accuracy"] = evaluate(loaded.fast, val_set.images, val_set.labels, classes)["accuracy"]
        metrics["val_n"] = len(val_set)
    if test is not None:
        report = evaluate(loaded.fast, test.images, test.labels, classes)
        metrics.update(test_accuracy=report["accuracy"], test_n=report["n"], test_data=str(test.images_path))
    header = checkpoint.read_header(model_path)["__metadata__"]
    kept = {key: header[key] for key in (checkpoint.STEP, checkpoint.QUANTIZATION) if key in header}
    checkpoint.write_safetensors(model_path, load_file(model_path), kind=KIND, config=loaded.config.to_dict(),
                                 metadata={**loaded.metadata, "seqdl.metrics": metrics}, entries=kept)
    return metrics
