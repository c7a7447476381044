"""The vision front end's commands: ``seqdl segment``, ``seqdl train letters|digits``, ``seqdl eval letters``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, Optional

import typer

from vision.letters_model import LettersConfig
from vision.letters_options import DataOptions, LetterOptions

from ..errors import SeqdlError
from .common import (
    CHECKPOINT_MINUTES, FORCE, MINUTES, MODEL_OUT, RESUME, STEPS,
    THREADS, app, default_is, emit_json, eval_app, json_option, make_directories, quiet_option,
    seed_option, thread_plan, train_app,
)

LETTERS_CONFIG = LettersConfig()
LETTERS_SEED = seed_option(str(LetterOptions.seed))  # the options both training commands share
QUIET = quiet_option()
SUMMARY_JSON = json_option("Print the training summary as JSON.")


@app.command()
def segment(
    inputs: list[str] = typer.Argument(..., metavar="IMAGE", help="Page images (photos or scans) or globs."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", metavar="DIR", help="Directory (created if missing) "
                                            "for a PNG per page with the line, word and letter boxes drawn. "
                                            + default_is("none")),
    out: Optional[Path] = typer.Option(None, "--out", metavar="PATH", help="Parquet file: a row per letter (with its "
                                       "28x28 EMNIST-style crop) or joined-up word. " + default_is("none")),
    max_megapixels: float = typer.Option(200.0, "--max-megapixels", min=0.001, metavar="X", help="Refuse larger "
                                         "images (decompression bombs) before decoding them."),
    keep_print: bool = typer.Option(False, "--keep-print", help="Keep machine print (a form's printed labels, found "
                                    "because print repeats the same letter shapes exactly) and check boxes; by default "
                                    "both are left out."),
    threads: Optional[int] = THREADS,
    quiet: bool = quiet_option(),
    as_json: bool = json_option("JSON Lines: one object per page with its boxes."),
) -> None:
    """Find the text lines, words and letters on photos of handwriting, and prepare the letters like EMNIST."""
    from vision.segment import page_record, segment_pages, summary_line

    from ..io import check_output_path, command_line, expand_inputs

    if annotate is not None and annotate.exists() and not annotate.is_dir():
        raise SeqdlError("--annotate needs a directory; this is a file", str(annotate))
    if out is not None:
        check_output_path(out)
    paths = expand_inputs(inputs)
    created = make_directories(annotate) if annotate is not None else []
    with thread_plan(threads).use("large"):   # letter crops are prepared on the cores that are free
        results, failures = segment_pages(paths, annotate, out, command_line(), quiet, int(max_megapixels * 1e6),
                                          keep_print)
    if not results:  # every page failed: leave nothing behind, not even the directories made for them
        for directory in reversed(created):
            directory.rmdir()
    for result in results:
        if as_json:
            emit_json(page_record(result))
        else:
            typer.echo(summary_line(result))
    for _, exc in failures:
        sys.stderr.write(f"seqdl: error: {exc}\n")
    if failures:
        raise typer.Exit(2 if not results else 3)


DATA_HELP = ("EMNIST-style pair PREFIX-images-idx3-ubyte.gz + PREFIX-labels-idx1-ubyte.gz (images stored transposed "
             "as in EMNIST, labels 1..26 = a..z).")


@train_app.command("letters")
def train_letters(
    data: str = typer.Option(..., "--data", metavar="PREFIX", help="Training pool: " + DATA_HELP + " A validation "
                             "split is held out of it."),
    out: Path = MODEL_OUT,
    arch: Optional[Literal["vgg", "hello-dl"]] = typer.Option(None, "--arch", metavar="vgg|hello-dl", help="vgg: three BatchNorm conv "
                                       "blocks; hello-dl: Hello Deep Learning's CNN. " + default_is("vgg")),
    minutes: Optional[float] = MINUTES,
    steps: Optional[int] = STEPS,
    resume: bool = RESUME,
    force: bool = FORCE,
    test: Optional[str] = typer.Option(None, "--test", metavar="PREFIX", help="Held-out test pair, laid out like "
                                       "--data, scored once at the end into the model card (never used to choose "
                                       "anything). " + default_is("none")),
    channels: Optional[tuple[int, int, int]] = typer.Option(None, "--channels", min=1, metavar="N N N", help="vgg: "
                                                            "channels of the three conv blocks. "
                                                            + default_is(" ".join(map(str, LETTERS_CONFIG.channels)))),
    hidden: Optional[int] = typer.Option(None, "--hidden", min=1, metavar="N", help="vgg: units of the hidden "
                                         "layer. " + default_is(LETTERS_CONFIG.hidden)),
    dropout: Optional[float] = typer.Option(None, "--dropout", min=0.0, max=0.95, metavar="X", help="Dropout "
                                            "probability. " + default_is(f"{LETTERS_CONFIG.dropout} (hello-dl: 0)")),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, metavar="N", help="Images per step. "
                                             + default_is(LetterOptions.batch_size)),
    lr: Optional[float] = typer.Option(None, "--lr", metavar="X", help="Peak learning rate (AdamW, warm-up then "
                                       "cosine). " + default_is(LetterOptions.lr)),
    label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing", min=0.0, max=0.5, metavar="X",
                                                    help="Label smoothing. " + default_is(LetterOptions.label_smoothing)),
    augment: Optional[float] = typer.Option(None, "--augment", min=0.0, max=3.0, metavar="X", help="Strength of "
                                            "the augmentation (shifts, rotations, scales, shears, elastic distortion, "
                                            "stroke width); 0 turns it off. " + default_is(LetterOptions.augment)),
    balance: Optional[bool] = typer.Option(None, "--balance/--no-balance", help="Sample every letter equally often "
                                           "(the pool follows English letter frequency). " + default_is("balance")),
    patience: Optional[int] = typer.Option(None, "--patience", min=1, metavar="N", help="Stop after N validations "
                                           "without a lower validation error. " + default_is(LetterOptions.patience)),
    val_per_class: Optional[int] = typer.Option(None, "--val-per-class", min=0, metavar="N", help="Validation "
                                                "images held out per letter (the first N of each in the file). "
                                                + default_is(DataOptions.val_per_class)),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", min=1, metavar="N", help="Validate every N steps. "
                                             + default_is("fitted to the budget")),
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
    seed: Optional[int] = LETTERS_SEED,
    threads: Optional[int] = THREADS,
    quiet: bool = QUIET,
    as_json: bool = SUMMARY_JSON,
) -> None:
    """Train a letter classifier on EMNIST-style 28x28 letters (a..z, upper and lower case merged)."""
    _train(data, out, dict(steps=steps, minutes=minutes), threads, quiet, as_json, resume=resume, force=force,
           model_options=dict(arch=arch, channels=channels, hidden=hidden, dropout=dropout),
           train_options=dict(batch_size=batch_size, lr=lr, label_smoothing=label_smoothing, augment=augment,
                              balance=balance, patience=patience, seed=seed),
           data_options=dict(val_per_class=val_per_class), test_prefix=test,
           settings=dict(eval_every=eval_every, checkpoint_minutes=checkpoint_minutes))


@train_app.command("digits")
def train_digits(
    data: str = typer.Option(..., "--data", metavar="PREFIX", help="Handwritten digits: an EMNIST-style pair "
                             "PREFIX-images-idx3-ubyte.gz + PREFIX-labels-idx1-ubyte.gz (images stored transposed "
                             "as in EMNIST Digits, labels 0..9; `python -m vision.digits` makes one from MNIST)."),
    letters: str = typer.Option(..., "--letters", metavar="PREFIX", help="The letters pool (as `train letters "
                                "--data`): every letter is one class, 'not a digit'."),
    out: Path = MODEL_OUT,
    minutes: Optional[float] = MINUTES,
    steps: Optional[int] = STEPS,
    resume: bool = RESUME,
    force: bool = FORCE,
    test: Optional[str] = typer.Option(None, "--test", metavar="PREFIX", help="Held-out digits, laid out like "
                                       "--data, scored once at the end into the model card. " + default_is("none")),
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
    seed: Optional[int] = LETTERS_SEED,
    threads: Optional[int] = THREADS,
    quiet: bool = QUIET,
    as_json: bool = SUMMARY_JSON,
) -> None:
    """Train the numbers model `seqdl ocr` reads numbers with: ten digits and one class for any letter."""
    _train(letters, out, dict(steps=steps, minutes=minutes), threads, quiet, as_json, resume=resume, force=force,
           train_options=dict(seed=seed), digits_prefix=data, test_prefix=test,
           settings=dict(checkpoint_minutes=checkpoint_minutes))


def _train(data: str, out: Path, budget: dict[str, Any], threads: int | None, quiet: bool, as_json: bool,
           settings: dict[str, Any], **options: Any) -> None:
    """Run :func:`vision.letters_train.train` on the thread plan for large work, then :func:`_report`."""
    from vision import letters_train

    from ..io import command_line
    from ..training import Budget, Settings

    with thread_plan(threads).use("large"):
        result, metrics = letters_train.train(data, out, budget=Budget(**budget),
                                              settings=Settings(quiet=quiet, **settings), command=command_line(),
                                              **options)
    _report(result, metrics, out, quiet, as_json)


def _report(result: Any, metrics: dict[str, Any], out: Path, quiet: bool, as_json: bool) -> None:
    """The end of a training command: exit 130 after Ctrl-C, else the summary (JSON or one line)."""
    if result.interrupted:
        sys.stderr.write(f"seqdl: interrupted at step {result.step}; checkpoint saved, continue with --resume\n")
        raise typer.Exit(130)
    record = {"model": str(out), "step": result.step, "seconds": result.seconds,
              "images_per_second": result.items_per_second, "stopped_early": result.stopped_early,
              "train_loss": result.train_loss, **{k: v for k, v in metrics.items() if k != "best_steps"}}
    if as_json:
        emit_json(record)
    elif not quiet:
        shown = "  ".join(f"{name} {metrics[name]:.4f}" for name in ("val_accuracy", "test_accuracy") if name in metrics)
        sys.stderr.write(f"seqdl: trained {out} to step {result.step} (best step {metrics.get('best_step')})  {shown}\n")


@eval_app.command("letters")
def eval_letters(
    data: str = typer.Option(..., "--data", metavar="PREFIX", help="Labelled letters: " + DATA_HELP),
    model: Optional[Path] = typer.Option(None, "--model", metavar="PATH", help="Letters model (float or int8). "
                                         + default_is("the shipped model")),
    confusion: Optional[Path] = typer.Option(None, "--confusion", metavar="PNG", help="Write the confusion matrix "
                                             "as a PNG. " + default_is("none")),
    threads: Optional[int] = THREADS,
    as_json: bool = json_option("One JSON object: accuracy, n, per-letter accuracy, most confused pairs."),
) -> None:
    """Accuracy of a letters model on labelled EMNIST-style letters, per letter, and what it confuses."""
    from vision.letters_data import read_letters
    from vision.letters_eval import plot_confusion, summarize
    from vision.letters_model import load_letters_model

    from ..io import check_output_path

    if confusion is not None:
        check_output_path(confusion)
    letters = read_letters(data)
    loaded = load_letters_model(model)
    with thread_plan(threads).use("large"):
        predicted = loaded.logits(letters.images).argmax(axis=1)
    report = {"model": str(loaded.path), "data": str(letters.images_path), **summarize(letters.labels, predicted)}
    if confusion is not None:
        plot_confusion(letters.labels, predicted, confusion, title=f"{loaded.path.name} on {letters.images_path.name}")
    if as_json:
        emit_json(report)
    else:
        typer.echo(f"{report['data']}: accuracy {report['accuracy']:.4f} on {report['n']} letters")
        pairs = ", ".join(f"{p['true']}->{p['predicted']} {p['count']}" for p in report["confused_pairs"][:5])
        typer.echo(f"most confused: {pairs or 'none'}")
