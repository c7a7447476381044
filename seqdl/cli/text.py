"""The text front end's commands: ``seqdl textgen`` and ``seqdl eval text``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, Optional

import typer

from pipelines.text_model import ModelConfig, SamplingOptions
from pipelines.text_train import TrainOptions

from ..errors import SeqdlError
from .common import (
    CHECKPOINT_MINUTES, MINUTES, STEPS,
    FROM_LIST, SCHEDULER, THREADS, WORKERS, default_is, emit_json, eval_app, flag, json_option,
    quiet_option, run_batch, batch_inputs, app, seed_option, thread_plan,
)

INPUTS_HELP = "Text files (plain or .gz) or globs"
ENCODING = typer.Option("utf-8", "--encoding", metavar="CODEC", help="Text encoding of the inputs.")
ERRORS = typer.Option("strict", "--errors", metavar="strict|replace",
                      help="strict: refuse undecodable bytes; replace: decode them as U+FFFD.")
Errors = Literal["strict", "replace"]
MODEL_DEFAULT = "<first input's name>.safetensors; with --no-train the shipped Shakespeare model"


def _model_path(model: Optional[Path], paths: list[Path]) -> Path:
    return model or Path(paths[0].name.split(".")[0] + ".safetensors")


@app.command()
def textgen(
    inputs: Optional[list[str]] = typer.Argument(None, metavar="TEXT", help=f"{INPUTS_HELP} to train on."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="PATH", help="Model file to write (training) or "
                                         "read (--no-train). " + default_is(MODEL_DEFAULT)),
    resume: bool = flag("--resume", "Continue training the --model from its checkpoint."),
    no_train: bool = flag("--no-train", "Only sample from --model."),
    force: bool = flag("--force", "Train a new model over an existing --model file."),
    minutes: Optional[float] = MINUTES,
    steps: Optional[int] = STEPS,
    cell: Optional[Literal["gru", "lstm"]] = typer.Option(None, "--cell", metavar="gru|lstm", help="Recurrent cell. "
                                                          + default_is(ModelConfig.cell)),
    hidden: Optional[int] = typer.Option(None, "--hidden", min=1, metavar="N", help="Hidden units per layer. "
                                         + default_is(ModelConfig.hidden)),
    layers: Optional[int] = typer.Option(None, "--layers", min=1, metavar="N", help="Recurrent layers. "
                                         + default_is(ModelConfig.layers)),
    embed: Optional[int] = typer.Option(None, "--embed", min=1, metavar="N", help="Character embedding size. "
                                        + default_is(ModelConfig.embed)),
    dropout: Optional[float] = typer.Option(None, "--dropout", min=0, max=1, metavar="P", help="Dropout between "
                                            "layers and before the head (below 1). " + default_is(ModelConfig.dropout)),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", min=1, metavar="N", help="Characters per training "
                                          "window. " + default_is(TrainOptions.seq_len)),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, metavar="N", help="Windows per step. "
                                             + default_is(TrainOptions.batch_size)),
    lr: Optional[float] = typer.Option(None, "--lr", metavar="X", help="Peak learning rate (AdamW). "
                                       + default_is(TrainOptions.lr)),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", min=0, metavar="X", help="AdamW weight "
                                                 "decay. " + default_is(TrainOptions.weight_decay)),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps", min=0, metavar="N", help="Linear warm-up "
                                               "steps. " + default_is(f"{TrainOptions.warmup:.0%} of the run")),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0, max=1, metavar="P", help="Last fraction of the "
                                       "text held out (below 1)."),
    min_char_count: int = typer.Option(2, "--min-char-count", min=1, metavar="N", help="Rarer characters map to the "
                                       "unknown symbol."),
    encoding: str = ENCODING,
    errors: Errors = ERRORS,
    eval_every: Optional[int] = typer.Option(None, "--eval-every", min=1, metavar="N", help="Validate every N steps "
                                             "on the whole validation split. " + default_is("fitted to the budget")),
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
    prompt: str = typer.Option("", "--prompt", metavar="TEXT", help="Text the samples continue. " + default_is("none")),
    temperature: float = typer.Option(SamplingOptions.temperature, "--temperature", metavar="X",
                                      help="Sampling temperature (positive)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, metavar="K", help="Sample among the k likeliest "
                                        "characters. " + default_is("all")),
    top_p: Optional[float] = typer.Option(None, "--top-p", metavar="P", help="Sample among the likeliest characters "
                                          "holding probability p, in (0, 1]. " + default_is(1)),
    length: int = typer.Option(SamplingOptions.length, "--length", min=1, metavar="N", help="Characters per sample."),
    num_samples: int = typer.Option(SamplingOptions.num_samples, "--num-samples", min=1, metavar="N",
                                    help="How many samples."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="PATH", help="Write samples to this Parquet file. "
                                       + default_is("stdout")),
    seed: Optional[int] = seed_option(f"{TrainOptions.seed} for training, random for sampling"),
    threads: Optional[int] = THREADS,
    quiet: bool = quiet_option(),
    as_json: bool = json_option("JSON Lines: a training summary, then one per sample."),
) -> None:
    """Train a character-level GRU/LSTM language model on your text, then print a sample."""
    import numpy as np

    from pipelines import text_model, text_train
    from pipelines.text_corpus import CorpusOptions, describe_chars

    from ..io import check_output_path, command_line, expand_inputs, provenance, warn
    from ..training import Budget, Settings

    sampling = SamplingOptions(length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                               num_samples=num_samples)
    if out is not None:
        check_output_path(out)
    if no_train:
        if inputs or resume:
            raise SeqdlError("--no-train only samples: give no corpus and no --resume")
        model_path = model or text_model.default_model_path()
    else:
        if resume and model is None:
            raise SeqdlError("--resume needs --model: the model to continue training")
        paths = expand_inputs(inputs or [])
        if not paths:
            raise SeqdlError("no corpus given: name one or more text files to train on (or --no-train)")
        model_path = _model_path(model, paths)
        with thread_plan(threads).use("large"):
            result = text_train.train(
                paths, model_path, budget=Budget(steps=steps, minutes=minutes), resume=resume, force=force,
                model_overrides=dict(cell=cell, hidden=hidden, layers=layers, embed=embed, dropout=dropout),
                train_overrides=dict(seq_len=seq_len, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                     warmup_steps=warmup_steps, seed=seed),
                corpus_options=CorpusOptions(encoding=encoding, errors=errors, min_count=min_char_count,
                                             val_fraction=val_fraction),
                settings=Settings(eval_every=eval_every, checkpoint_minutes=checkpoint_minutes, quiet=quiet),
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
    with thread_plan(threads).use("small"):  # one character at a time: one-row products
        samples = text_model.generate(net, vocab, prompt, sampling, np.random.default_rng(seed))
    if out is not None:
        params = {"prompt": prompt, "seed": seed, **sampling.__dict__}
        text_model.write_samples(out, samples, prompt, sampling, seed, provenance(command_line(), params, [], model_path))
    elif as_json:
        for index, sample in enumerate(samples):
            emit_json({"sample_index": index, "prompt": prompt, "text": sample})
    else:
        typer.echo("\n\n".join(prompt + sample for sample in samples))


@eval_app.command("text")
def eval_text(
    inputs: Optional[list[str]] = typer.Argument(None, metavar="TEXT", help=f"{INPUTS_HELP} to score."),
    model: Optional[Path] = typer.Option(None, "--model", metavar="PATH", help="Text model. "
                                         + default_is("the shipped Shakespeare model")),
    per_line: bool = flag("--per-line", "Write a Parquet row per line to --out."),
    out: Optional[str] = typer.Option(None, "--out", metavar="PATH", help="Parquet file for --per-line scores; a "
                                      "directory (an existing one, or PATH/ which is created) or --workers/--scheduler"
                                      ": a Parquet file per input. " + default_is("none")),
    encoding: str = ENCODING,
    errors: Errors = ERRORS,
    from_list: Optional[Path] = FROM_LIST,
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    threads: Optional[int] = THREADS,
    quiet: bool = quiet_option(),
    as_json: bool = json_option("JSON Lines: one object per file, then a summary."),
) -> None:
    """Score text with a character model: nats/char and bits/char per file (and per line with --per-line)."""
    from pipelines import text_model
    from pipelines.text_eval import evaluate_files

    from ..batch import is_batch_out
    from ..io import check_output_path, command_line

    if per_line != (out is not None):
        raise SeqdlError("--per-line and --out go together: --per-line --out scores.parquet")
    paths = batch_inputs(inputs, from_list)
    model_path = model or text_model.default_model_path()
    if is_batch_out(out, workers, scheduler):
        if not per_line:
            raise SeqdlError("batch mode writes per-line scores: add --per-line --out DIR")
        from pipelines.batch_jobs import text_job

        run_batch(text_job(model_path, encoding, errors, command_line(), threads or 1), paths,
                  None if out is None else Path(out), workers, scheduler, quiet, as_json)
        return
    per_line_out = None if out is None else check_output_path(out)
    params = {"encoding": encoding, "errors": errors, "per_line": per_line}
    with thread_plan(threads).use("large"):
        records, summary = evaluate_files(model_path, paths, encoding, errors, per_line_out, params, command_line(),
                                          quiet)
    for record in records + [summary]:
        if as_json:
            emit_json(record)
        elif record.get("nats_per_char") is not None:
            name = record.get("file", "total")
            typer.echo(f"{record['nats_per_char']:.4f} nats/char  {record['bits_per_char']:.4f} bits/char  "
                       f"{record['characters']} chars  {name}")
