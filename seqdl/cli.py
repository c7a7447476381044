"""The ``seqdl`` command line: thin wrappers that parse options and call the libraries.

Every command follows CONVENTIONS.md: results on stdout, diagnostics on stderr;
expected failures (:class:`SeqdlError`) become one line ``seqdl: error: ...`` and
exit code 2; anything else is exit code 1 with the traceback only under ``--debug``.
"""
from __future__ import annotations

import json
import platform
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .errors import SeqdlError

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
    """One JSON Lines record on stdout."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


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
) -> None:
    """Draw training curves from a metrics Parquet file."""
    from .metrics import plot_metrics

    if not metrics.is_file():
        raise SeqdlError("no such metrics file", str(metrics))
    written = plot_metrics(metrics, out, columns or None, x)
    if not quiet:
        typer.echo(str(written))


@app.command()
def quantize(
    model: Path = typer.Argument(..., help="A seqdl model or training checkpoint."),
    out: Path = typer.Option(..., "--out", help="The quantised model file to write."),
    bits: int = typer.Option(8, "--bits", help="8 (int8 per output channel) or 4 (4-bit groups)."),
    group_size: int = typer.Option(64, "--group-size", help="Inputs per scale for 4 bits."),
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
    else:
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
            paths, model_path, budget=text_train.Budget(steps=steps, minutes=minutes), resume=resume, force=force,
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


@eval_app.command("text")
def eval_text(
    inputs: list[str] = typer.Argument(..., help="Text files (plain or .gz) or globs to score."),
    model: Optional[Path] = typer.Option(None, "--model", help="Text model (default: the shipped one)."),
    per_line: bool = typer.Option(False, "--per-line", help="Write a Parquet row per line to --out."),
    out: Optional[Path] = typer.Option(None, "--out", help="Parquet file for --per-line scores."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the inputs."),
    errors: str = typer.Option("strict", "--errors", help="strict: refuse undecodable bytes; replace: U+FFFD."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines: one object per file, then a summary."),
) -> None:
    """Score text with a character model: nats/char and bits/char per file (and per line with --per-line)."""
    from pipelines import text_model
    from pipelines.text_eval import evaluate_files

    from .io import check_output_path, command_line

    if per_line != (out is not None):
        raise SeqdlError("--per-line and --out go together: --per-line --out scores.parquet")
    if out is not None:
        check_output_path(out)
    paths = _text_inputs(inputs)
    model_path = model or text_model.default_model_path()
    params = {"encoding": encoding, "errors": errors, "per_line": per_line}
    records, summary = evaluate_files(model_path, paths, encoding, errors, out, params, command_line(), quiet)
    for record in records + [summary]:
        if as_json:
            emit_json(record)
        elif record.get("nats_per_char") is not None:
            name = record.get("file", "total")
            typer.echo(f"{record['nats_per_char']:.4f} nats/char  {record['bits_per_char']:.4f} bits/char  "
                       f"{record['characters']} chars  {name}")


def _report_failure(exc: Exception, debug: bool) -> int:
    if hasattr(exc, "format_message"):  # a usage error from Typer's (vendored) click
        sys.stderr.write(f"seqdl: error: {exc.format_message()}\n")
        return int(getattr(exc, "exit_code", 2))
    if debug:
        traceback.print_exc()
    sys.stderr.write(f"seqdl: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)\n")
    return 1


def main() -> None:
    from .runtime import keep_freed_memory

    keep_freed_memory()
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
