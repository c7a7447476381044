"""The ``seqdl`` command line: thin wrappers that parse options and call the libraries.

Every command follows CONVENTIONS.md: results on stdout, diagnostics on stderr;
expected failures (:class:`SeqdlError`) become one line ``seqdl: error: ...`` and
exit code 2; anything else is exit code 1 with the traceback only under ``--debug``.
"""
from __future__ import annotations

import json
import math
import platform
import sys
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from . import __version__
from .errors import SeqdlError

if TYPE_CHECKING:
    from .batch import Job

app = typer.Typer(
    name="seqdl",
    help="A GPU-free deep-learning toolkit: DNA scanning, text generation and handwriting OCR on NumPy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


train_app = typer.Typer(help="Train a model: text, dna or letters.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a model: text, dna or letters.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")


@app.callback()
def _root() -> None:
    """A GPU-free deep-learning toolkit: DNA scanning, text generation and handwriting OCR on NumPy."""


def emit_json(obj: dict) -> None:
    """One JSON Lines record on stdout; an undefined number (NaN, infinity) is null, as strict JSON needs."""
    sys.stdout.write(json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False) + "\n")


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


@app.command()
def info(
    model: Optional[Path] = typer.Argument(None, help="A seqdl model or checkpoint to describe."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show the seqdl version and environment, or describe a model file."""
    from threadpoolctl import threadpool_info

    import numpy as np

    if model is not None:
        from .checkpoint import describe

        record = describe(model)
    else:
        blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)" for p in threadpool_info()]
        record = {
            "seqdl_version": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "blas": blas,
        }
    if as_json:
        emit_json(record)
    else:
        for key, value in record.items():
            typer.echo(f"{key}: {value}")


@app.command()
def plot(
    metrics: Path = typer.Argument(..., help="A metrics Parquet file written during training."),
    out: Path = typer.Option(..., "-o", "--out", help="PNG file to write."),
    columns: Optional[list[str]] = typer.Option(None, "--column", "-c", help="Metric to draw (repeatable; default all)."),
    x: str = typer.Option("step", help="Column for the x axis: step or seconds."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing on success."),
    as_json: bool = typer.Option(False, "--json", help="Print the file written as JSON."),
) -> None:
    """Draw training curves from a metrics Parquet file."""
    from .metrics import plot_metrics

    if not metrics.is_file():
        raise SeqdlError("no such metrics file", str(metrics))
    written = plot_metrics(metrics, out, columns or None, x)
    if as_json:
        emit_json({"metrics": str(metrics), "out": str(written)})
    elif not quiet:
        typer.echo(str(written))


@app.command()
def quantize(
    model: Path = typer.Argument(..., help="A seqdl model or training checkpoint."),
    out: Path = typer.Option(..., "--out", help="The quantised model file to write."),
    bits: int = typer.Option(8, "--bits", help="8 (int8 per output channel) or 4 (4-bit groups)."),
    group_size: int = typer.Option(64, "--group-size", help="Inputs per scale for 4 bits."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing on success."),
    as_json: bool = typer.Option(False, "--json", help="Print the sizes as JSON."),
) -> None:
    """Write a smaller copy of a model with int8 or 4-bit weights (loads wherever the float model does)."""
    from .io import check_output_path
    from .quantize import quantize_file

    if bits not in (4, 8):
        raise SeqdlError(f"--bits must be 8 or 4, not {bits}")
    if group_size < 1:
        raise SeqdlError(f"--group-size must be positive, not {group_size}")
    if not model.is_file():
        raise SeqdlError("no such model file", str(model))
    check_output_path(out)
    written = quantize_file(model, out, bits, group_size)
    record = {"model": str(model), "out": str(written), "bits": bits, "bytes_before": model.stat().st_size,
              "bytes_after": written.stat().st_size}
    if as_json:
        emit_json(record)
    elif not quiet:
        typer.echo(f"{written}: {record['bytes_after']:,} bytes (from {record['bytes_before']:,}, {bits}-bit weights)")


# ------------------------------------------------------------------ text
def _text_inputs(patterns: Optional[list[str]]) -> list[Path]:
    from .io import expand_inputs

    return expand_inputs(patterns or [])


@app.command()
def textgen(
    inputs: Optional[list[str]] = typer.Argument(None, help="Text files (plain or .gz) or globs to train on."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file to write (training) or read "
                                         "(--no-train; default: the shipped Shakespeare model)."),
    resume: bool = typer.Option(False, "--resume", help="Continue training the --model from its checkpoint."),
    no_train: bool = typer.Option(False, "--no-train", help="Only sample from --model."),
    force: bool = typer.Option(False, "--force", help="Train a new model over an existing --model file."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Training budget in minutes (default 10)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training budget in optimizer steps."),
    cell: Optional[str] = typer.Option(None, "--cell", help="Recurrent cell: lstm or gru."),
    hidden: Optional[int] = typer.Option(None, "--hidden", help="Hidden units per layer."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Recurrent layers."),
    embed: Optional[int] = typer.Option(None, "--embed", help="Character embedding size."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout between layers and before the head."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Characters per training window."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (AdamW)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", help="Linear warm-up steps."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Last fraction of the text held out."),
    min_char_count: int = typer.Option(2, "--min-char-count", help="Rarer characters map to the unknown symbol."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the inputs."),
    errors: str = typer.Option("strict", "--errors", help="strict: refuse undecodable bytes; replace: U+FFFD."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Validate every N steps (default ~15 "
                                             "times per run)."),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes", help="Minutes between checkpoints."),
    prompt: str = typer.Option("", "--prompt", help="Text the samples continue."),
    temperature: float = typer.Option(0.8, "--temperature", help="Sampling temperature."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample among the k likeliest characters."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Sample among the likeliest characters holding "
                                          "probability p."),
    length: int = typer.Option(500, "--length", help="Characters per sample."),
    num_samples: int = typer.Option(1, "--num-samples", help="How many samples."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write samples to this Parquet file, not stdout."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for training and sampling."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: a training summary, then one per sample."),
) -> None:
    """Train a character-level GRU/LSTM language model on your text, then print a sample."""
    import numpy as np

    from pipelines import text_model, text_train
    from pipelines.text_corpus import CorpusOptions, describe_chars

    from .io import command_line, provenance, warn
    from .training import Budget

    sampling = text_model.SamplingOptions(length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                                          num_samples=num_samples)
    if out is not None:
        from .io import check_output_path

        check_output_path(out)
    if no_train:
        if inputs or resume:
            raise SeqdlError("--no-train only samples: give no corpus and no --resume")
        model_path = model or text_model.default_model_path()
    else:
        if resume and model is None:
            raise SeqdlError("--resume needs --model: the model to continue training")
        paths = _text_inputs(inputs)
        if not paths:
            raise SeqdlError("no corpus given: name one or more text files to train on (or --no-train)")
        model_path = model or Path(paths[0].name.split(".")[0] + ".safetensors")
        result = text_train.train(
            paths, model_path, budget=Budget(steps=steps, minutes=minutes), resume=resume, force=force,
            model_overrides=dict(cell=cell, hidden=hidden, layers=layers, embed=embed, dropout=dropout),
            train_overrides=dict(seq_len=seq_len, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                 warmup_steps=warmup_steps, seed=seed),
            corpus_options=CorpusOptions(encoding=encoding, errors=errors, min_count=min_char_count,
                                         val_fraction=val_fraction),
            settings=text_train.RunSettings(eval_every=eval_every, checkpoint_minutes=checkpoint_minutes, quiet=quiet),
            command=command_line())
        if result.interrupted:
            sys.stderr.write(f"seqdl: interrupted at step {result.step}; checkpoint saved, continue with "
                             f"--model {model_path} --resume\n")
            raise typer.Exit(130)
        if as_json:
            emit_json(result.record())
        elif not quiet:
            val = "no validation" if result.best_val is None else f"best validation {result.best_val:.4f} nats/char"
            sys.stderr.write(f"seqdl: trained {model_path} to step {result.step} ({val}, "
                             f"{result.chars_per_second:,.0f} chars/s)\n")
    net, vocab, _ = text_model.load_text_model(model_path)
    _, unknown = text_model.encode_prompt(vocab, prompt)
    if unknown:
        warn(f"prompt characters outside the model's vocabulary (treated as unknown): {describe_chars(unknown)}")
    rng = np.random.default_rng(seed)
    samples = text_model.generate(net, vocab, prompt, sampling, rng)
    if out is not None:
        params = {"prompt": prompt, "seed": seed, **sampling.__dict__}
        text_model.write_samples(out, samples, prompt, sampling, seed,
                                 provenance("textgen", params, [], model_path))
    elif as_json:
        for index, sample in enumerate(samples):
            emit_json({"sample_index": index, "prompt": prompt, "text": sample})
    else:
        typer.echo("\n\n".join(prompt + sample for sample in samples))


FROM_LIST = typer.Option(None, "--from-list", help="A file naming one input per line (with or instead of "
                         "INPUTS).")
WORKERS = typer.Option(None, "--workers", help="Batch mode on a local Dask cluster of N worker processes.")
SCHEDULER = typer.Option(None, "--scheduler", help="Batch mode on an existing Dask cluster, e.g. "
                         "tcp://host:8786.")
THREADS = typer.Option(1, "--threads", help="Batch mode: cores per worker (one task runs per worker).")


def _batch_inputs(patterns: Optional[list[str]], from_list: Optional[Path]) -> list[Path]:
    from .batch import read_list
    from .io import expand_inputs

    patterns = list(patterns or []) + (read_list(from_list) if from_list is not None else [])
    if not patterns:
        raise SeqdlError("no inputs: give files, globs or --from-list FILE")
    return expand_inputs(patterns)


def _run_batch(job: "Job", paths: list[Path], out: Optional[Path], workers: Optional[int], scheduler: Optional[str],
               quiet: bool, as_json: bool) -> None:
    """Batch mode: a Parquet file per input and a manifest in ``out``; exit 3 if some inputs failed."""
    from .batch import run_batch
    from .io import command_line

    if out is None:
        raise SeqdlError("batch mode needs --out DIR")
    result = run_batch(job, paths, out, workers=workers, scheduler=scheduler, quiet=quiet, command=command_line())
    summary = result.summary()
    if as_json:
        for record in result.records + [summary]:
            emit_json(record)
    elif not quiet:
        typer.echo(f"{out}: {summary['done']} of {summary['inputs']} inputs done ({summary['reused']} reused), "
                   f"{summary['rows']:,} rows, {summary['units']:,} {job.unit} in {summary['seconds']:.1f} s")
    for record in result.failed:
        sys.stderr.write(f"seqdl: error: {record['error']}\n")
    if result.failed:
        raise typer.Exit(3)


@eval_app.command("text")
def eval_text(
    inputs: Optional[list[str]] = typer.Argument(None, help="Text files (plain or .gz) or globs to score."),
    model: Optional[Path] = typer.Option(None, "--model", help="Text model (default: the shipped one)."),
    per_line: bool = typer.Option(False, "--per-line", help="Write a Parquet row per line to --out."),
    out: Optional[Path] = typer.Option(None, "--out", help="Parquet file for --per-line scores; a directory (or "
                                       "--workers/--scheduler): a Parquet file per input."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the inputs."),
    errors: str = typer.Option("strict", "--errors", help="strict: refuse undecodable bytes; replace: U+FFFD."),
    from_list: Optional[Path] = FROM_LIST,
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    threads: int = THREADS,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per file, then a summary."),
) -> None:
    """Score text with a character model: nats/char and bits/char per file (and per line with --per-line)."""
    from pipelines import text_model
    from pipelines.text_eval import evaluate_files

    from .batch import is_batch_out
    from .io import check_output_path, command_line

    if per_line != (out is not None):
        raise SeqdlError("--per-line and --out go together: --per-line --out scores.parquet")
    paths = _batch_inputs(inputs, from_list)
    model_path = model or text_model.default_model_path()
    if is_batch_out(out, workers, scheduler):
        if not per_line:
            raise SeqdlError("batch mode writes per-line scores: add --per-line --out DIR")
        from pipelines.batch_jobs import text_job

        _run_batch(text_job(model_path, encoding, errors, command_line(), threads), paths, out, workers, scheduler,
                   quiet, as_json)
        return
    if out is not None:
        check_output_path(out)
    params = {"encoding": encoding, "errors": errors, "per_line": per_line}
    records, summary = evaluate_files(model_path, paths, encoding, errors, out, params, command_line(), quiet)
    for record in records + [summary]:
        if as_json:
            emit_json(record)
        elif record.get("nats_per_char") is not None:
            name = record.get("file", "total")
            typer.echo(f"{record['nats_per_char']:.4f} nats/char  {record['bits_per_char']:.4f} bits/char  "
                       f"{record['characters']} chars  {name}")


# ------------------------------------------------------------------ dna
@train_app.command("dna")
def train_dna(
    fasta: Path = typer.Option(..., "--fasta", help="Genome FASTA (plain or gzip)."),
    annotation: Path = typer.Option(..., "--annotation", help="GFF3 or GenBank with the genes (CDS)."),
    out: Path = typer.Option(..., "--out", "--model", help="Model file to write (or continue with --resume)."),
    holdout: Optional[list[str]] = typer.Option(None, "--holdout", help="RECORD or RECORD:START-END never "
                                                "trained on (repeatable)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Training budget in minutes (default 10)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training budget in optimizer steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the model's training checkpoint."),
    force: bool = typer.Option(False, "--force", help="Train a new model over an existing file."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Conv1d channels of the coding model."),
    hidden: Optional[int] = typer.Option(None, "--hidden", help="Bidirectional GRU units per direction."),
    lm_hidden: Optional[int] = typer.Option(None, "--lm-hidden", help="GRU units of the language model."),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Bases per training window."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per step."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (AdamW)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Validate every N steps."),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes", help="Minutes between checkpoints."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for initialisation and batches."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the training summary as JSON."),
) -> None:
    """Train the coding and DNA language models on an annotated genome."""
    from pipelines import dna_train
    from .training import Budget

    from .io import command_line, expand_inputs

    expand_inputs([fasta, annotation])
    result = dna_train.train(
        fasta, annotation, out, holdout=holdout or [], budget=Budget(steps=steps, minutes=minutes), resume=resume,
        force=force, config_overrides=dict(channels=channels, hidden=hidden, lm_hidden=lm_hidden),
        train_overrides=dict(seq_len=seq_len, batch_size=batch_size, lr=lr, seed=seed), eval_every=eval_every,
        checkpoint_minutes=checkpoint_minutes, quiet=quiet, command=command_line())
    if result.interrupted:
        sys.stderr.write(f"seqdl: interrupted at step {result.step}; checkpoint saved, continue with --resume\n")
        raise typer.Exit(130)
    if as_json:
        emit_json(result.record())
    elif not quiet:
        sys.stderr.write(f"seqdl: trained {out} to step {result.step} (best step {result.best_step})\n")


@eval_app.command("dna")
def eval_dna(
    fasta: list[Path] = typer.Option(..., "--fasta", help="Genome FASTA (repeatable, paired with --annotation)."),
    annotation: list[Path] = typer.Option(..., "--annotation", help="GFF3 or GenBank for each --fasta."),
    model: Optional[Path] = typer.Option(None, "--model", help="DNA model (default: the shipped one)."),
    region: Optional[list[str]] = typer.Option(None, "--region", help="Only RECORD[:START-END] (repeatable), e.g. "
                                               "the held-out region."),
    adapt: bool = typer.Option(False, "--adapt", help="First fine-tune on the genome itself (long ORFs as labels)."),
    adapt_steps: int = typer.Option(400, "--adapt-steps", help="Optimizer steps of --adapt."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per genome."),
) -> None:
    """Base-level coding P/R/F1 per strand, gene 3'-end sensitivity/precision and bits/base against annotation."""
    from pipelines import dna_model
    from pipelines.dna_adapt import AdaptOptions
    from pipelines.dna_eval import evaluate

    from .io import expand_inputs

    if len(fasta) != len(annotation):
        raise SeqdlError(f"give one --annotation per --fasta ({len(fasta)} FASTA, {len(annotation)} annotations)")
    expand_inputs([*fasta, *annotation])
    adapt_options = AdaptOptions(steps=adapt_steps) if adapt else None
    for fasta_path, notes in zip(fasta, annotation):
        record = evaluate(model or dna_model.default_model_path(), fasta_path, notes, region,
                          adapt_options=adapt_options, quiet=quiet)
        if as_json:
            emit_json(record)
        else:
            typer.echo(f"{record['file']}  ({record['bases']:,} bp: {', '.join(record['regions'])})")
            for key, value in record.items():
                if isinstance(value, float):
                    typer.echo(f"  {key:<26}{value:.4f}")


@app.command()
def scan(
    inputs: Optional[list[str]] = typer.Argument(None, help="FASTA files (plain or gzip) or globs."),
    model: Optional[Path] = typer.Option(None, "--model", help="DNA model (default: the shipped one)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Parquet of windows (default <first input>.scan.parquet)"
                                       "; a directory (or --workers/--scheduler): a Parquet file per input."),
    window: int = typer.Option(1000, "--window", help="Window length (bp)."),
    stride: int = typer.Option(500, "--stride", help="Step between window starts (bp); also the bedGraph bin."),
    bed: Optional[Path] = typer.Option(None, "--bed", help="Write gene calls as BED6."),
    gff: Optional[Path] = typer.Option(None, "--gff", help="Write gene calls as GFF3."),
    bedgraph: Optional[Path] = typer.Option(None, "--bedgraph", help="Write X.coding_plus/minus and "
                                            "X.bits_plus/minus .bedgraph tracks (X from this name)."),
    from_list: Optional[Path] = FROM_LIST,
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    threads: int = THREADS,
    adapt: bool = typer.Option(False, "--adapt", help="Fine-tune on each input genome first, with its long open "
                               "reading frames as labels (reads each file whole)."),
    adapt_steps: int = typer.Option(400, "--adapt-steps", help="Optimizer steps of --adapt."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per FASTA, then a summary."),
) -> None:
    """Stream FASTA through the coding and DNA language models: windows to Parquet, genes to BED/GFF3."""
    from pipelines import dna_model
    from pipelines.dna_adapt import AdaptOptions
    from pipelines.scan import ScanOptions, default_out, scan_files

    from .batch import is_batch_out
    from .io import command_line

    options = ScanOptions(window=window, stride=stride, adapt=AdaptOptions(steps=adapt_steps) if adapt else None)
    paths = _batch_inputs(inputs, from_list)
    if is_batch_out(out, workers, scheduler):
        if bed or gff or bedgraph:
            raise SeqdlError("--bed, --gff and --bedgraph write single files; leave them out in batch mode")
        from pipelines.batch_jobs import scan_job

        job = scan_job(model or dna_model.default_model_path(), options, command_line(), threads)
        _run_batch(job, paths, out, workers, scheduler, quiet, as_json)
        return
    out = out or default_out(paths[0])
    reports, summary = scan_files(paths, model or dna_model.default_model_path(), out, options, bed=bed, gff=gff,
                                  bedgraph=bedgraph, quiet=quiet, command=command_line())
    if as_json:
        for record in reports + [summary]:
            emit_json(record)
    elif not quiet:
        typer.echo(f"{out}: {summary['windows']:,} windows, {summary['genes']:,} genes, {summary['bases']:,} bp "
                   f"in {summary['seconds']:.1f} s")


# ------------------------------------------------------------------ vision
@app.command()
def segment(
    inputs: list[str] = typer.Argument(..., help="Page images (photos or scans) or globs."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Directory for a PNG per page with the "
                                            "line, word and letter boxes drawn."),
    out: Optional[Path] = typer.Option(None, "--out", help="Parquet file: a row per letter (with its 28x28 "
                                       "EMNIST-style crop) or joined-up word."),
    max_megapixels: float = typer.Option(200.0, "--max-megapixels", help="Refuse larger images (decompression "
                                         "bombs) before decoding them."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per page with its boxes."),
) -> None:
    """Find the text lines, words and letters on photos of handwriting, and prepare the letters like EMNIST."""
    from vision.segment import summary_line, page_record, segment_pages

    from .io import check_output_path, command_line, expand_inputs

    if annotate is not None and not annotate.is_dir():
        raise SeqdlError("--annotate needs an existing directory", str(annotate))
    if out is not None:
        check_output_path(out)
    if not max_megapixels > 0:
        raise SeqdlError(f"--max-megapixels must be positive, not {max_megapixels}")
    paths = expand_inputs(inputs)
    results, failures = segment_pages(paths, annotate, out, command_line(), quiet, int(max_megapixels * 1e6))
    for result in results:
        if as_json:
            emit_json(page_record(result))
        else:
            typer.echo(summary_line(result))
    for path, exc in failures:
        sys.stderr.write(f"seqdl: error: {exc}\n")
    if failures:
        raise typer.Exit(2 if not results else 3)


def _report_failure(exc: Exception, debug: bool) -> int:
    if hasattr(exc, "format_message"):  # a usage error from Typer's (vendored) click
        sys.stderr.write(f"seqdl: error: {exc.format_message()}\n")
        return int(getattr(exc, "exit_code", 2))
    if debug:
        traceback.print_exc()
    sys.stderr.write(f"seqdl: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)\n")
    return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """A library's warning as one stderr line like seqdl's own (Python's format spans lines and names a source)."""
    sys.stderr.write(f"seqdl: warning: {' '.join(str(message).split())} ({category.__name__})\n")


def main() -> None:
    from .runtime import keep_freed_memory

    keep_freed_memory()
    warnings.showwarning = _show_warning
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("seqdl: interrupted\n")
        code = 130
    except SeqdlError as exc:
        sys.stderr.write(f"seqdl: error: {exc}\n")
        code = 2
    except Exception as exc:
        code = _report_failure(exc, debug)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
