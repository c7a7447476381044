"""``seqdl ocr``: read handwriting; wires a text model (pipelines) into the OCR's beam search (vision) as a callback."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import SeqdlError
from .common import THREADS, app, default_is, emit_json, json_option, make_directories, quiet_option, thread_plan


@app.command()
def ocr(
    inputs: list[str] = typer.Argument(..., metavar="IMAGE", help="Page images (photos or scans) or globs."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="PATH", help="Letters model (safetensors). "
                                         + default_is("the model shipped in data/")),
    lm: Optional[Path] = typer.Option(None, "--lm", metavar="PATH", help="A character model made by `seqdl "
                                      "textgen` (e.g. data/shakespeare-char.safetensors) to help read each line. "
                                      + default_is("none")),
    lm_weight: Optional[float] = typer.Option(None, "--lm-weight", min=0.0, metavar="X", help="How much the "
                                              "language model counts against the letter classifier. "
                                              + default_is("the weight chosen on validation pages")),
    annotate: Optional[Path] = typer.Option(None, "--annotate", metavar="DIR", help="Directory (created if missing) for a PNG per page "
                                            "with every letter's box and the letter read drawn. " + default_is("none")),
    out: Optional[Path] = typer.Option(None, "--out", metavar="PATH", help="Parquet file: a row per letter with its "
                                       "box, letter, probability, top 3 and flags. " + default_is("none")),
    max_megapixels: float = typer.Option(200.0, "--max-megapixels", min=0.001, metavar="X", help="Refuse larger "
                                         "images (decompression bombs) before decoding them."),
    digits_model: Optional[Path] = typer.Option(None, "--digits-model", metavar="PATH", help="Numbers model "
                                                "(`seqdl train digits`) that reads words of digits as numbers. "
                                                + default_is("the model shipped in data/")),
    no_digits: bool = typer.Option(False, "--no-digits", help="Read every word as letters (digits come out as "
                                   "the letters they look like)."),
    keep_print: bool = typer.Option(False, "--keep-print", help="Read machine print too (a form's printed labels, "
                                    "found because print repeats the same letter shapes exactly) and check boxes; "
                                    "by default both are left out, as the letters model knows only handwriting."),
    threads: Optional[int] = THREADS,
    quiet: bool = quiet_option(),
    as_json: bool = json_option("JSON Lines: one object per page (text, n_lines, n_words, n_letters, "
                                "mean_confidence, ...)."),
) -> None:
    """Read handwritten pages and print their text, line by line.

    EMNIST letters have no case, so the text is printed in lower case; a word
    of handwritten digits is read as a number; punctuation is not read, and
    machine print is left out. A blank page gives no text and a warning.
    """
    from vision import ocr as reader
    from vision.digits import DEFAULT_NUMBERS_MODEL, load_numbers_model
    from vision.letters_model import DEFAULT_MODEL, load_letters_model

    from ..io import check_output_path, command_line, expand_inputs

    if annotate is not None and annotate.exists() and not annotate.is_dir():
        raise SeqdlError("--annotate needs a directory; this is a file", str(annotate))
    if out is not None:
        check_output_path(out)
    classify = load_letters_model(model).classify
    model = model or DEFAULT_MODEL
    if no_digits and digits_model is not None:
        raise SeqdlError("--no-digits and --digits-model contradict each other: give one")
    numbers = None if no_digits else load_numbers_model(digits_model)
    helper = None
    if lm is not None:
        from pipelines.text_model import load_text_model
        from pipelines.text_scorer import CharModelScorer

        text_model, vocab, _ = load_text_model(lm)
        try:
            scorer = CharModelScorer(text_model, vocab, reader.SYMBOLS)
        except SeqdlError as exc:   # a text model of another alphabet
            raise SeqdlError(str(exc), str(lm)) from None
        helper = reader.LanguageHelp(scorer, reader.LM_WEIGHT if lm_weight is None else lm_weight)
    paths = expand_inputs(inputs)
    params = {"model": str(model), "lm": str(lm) if lm else None, "lm_weight": helper.weight if helper else None,
              "lm_mix": helper.mix if helper else None, "max_megapixels": max_megapixels,
              "annotate": str(annotate) if annotate else None, "out": str(out) if out else None,
              "keep_print": keep_print,
              "digits_model": None if numbers is None else str(digits_model or DEFAULT_NUMBERS_MODEL)}
    created = make_directories(annotate) if annotate is not None else []
    with thread_plan(threads).use("large"):
        pages, failures = reader.read_pages(paths, classify, annotate, out, {"command": command_line(),
                                            "params": params, "model": model}, helper, quiet, int(max_megapixels * 1e6),
                                            keep_print, None if numbers is None else numbers.classify)
    if not pages:  # every page failed: leave nothing behind, not even the directories made for them
        for directory in reversed(created):
            directory.rmdir()
    for page in pages:
        if as_json:
            emit_json(reader.page_record(page))
        elif page.text:
            typer.echo(page.text)
    for _, exc in failures:
        sys.stderr.write(f"seqdl: error: {exc}\n")
    if failures:
        raise typer.Exit(2 if not pages else 3)
