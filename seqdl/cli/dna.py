"""The DNA front end's commands: ``seqdl scan``, ``seqdl train dna`` and ``seqdl eval dna``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from pipelines.dna_adapt import AdaptOptions
from pipelines.dna_genes import CallOptions
from pipelines.dna_model import DnaConfig
from pipelines.dna_train import DnaTrainOptions
from pipelines.scan_plot import TABLE as SCAN_TABLE

from ..errors import SeqdlError

if TYPE_CHECKING:
    from ..batch import BatchResult
from .common import (
    CHECKPOINT_MINUTES, FORCE, MINUTES, MODEL_OUT, RESUME, STEPS,
    FROM_LIST, SCHEDULER, THREADS, WORKERS, app, batch_inputs, default_is, emit_json, eval_app,
    json_option, quiet_option, run_batch, seed_option, thread_plan, train_app,
)
from .tools import FIGURES

def _plot_scan(parquet: Path, out: Path) -> Path:
    from pipelines.scan_plot import plot_scan

    return plot_scan(parquet, out)


FIGURES[SCAN_TABLE] = _plot_scan  # ``seqdl plot X.scan.parquet`` draws genome tracks

MODEL = typer.Option(None, "--model", metavar="PATH", help="DNA model. " + default_is("the shipped E. coli model"))
ADAPT = typer.Option(None, "--adapt/--no-adapt", help="First fine-tune on each genome itself, with its long open "
                     "reading frames as labels (a sample of at most 4 Mbp, streamed). " + default_is(
                         "only where the genome's GC content is more than 5 points from the training genome's"))
ADAPT_STEPS = typer.Option(AdaptOptions.steps, "--adapt-steps", min=1, metavar="N", help="Optimizer steps of --adapt.")


@train_app.command("dna")
def train_dna(
    fasta: Path = typer.Option(..., "--fasta", metavar="FASTA", help="Genome FASTA (plain or gzip)."),
    annotation: Path = typer.Option(..., "--annotation", metavar="GFF|GENBANK", help="GFF3 or GenBank with the genes "
                                    "(CDS)."),
    out: Path = MODEL_OUT,
    holdout: Optional[list[str]] = typer.Option(None, "--holdout", metavar="RECORD[:START-END]", help="A record or "
                                                "region never trained on (repeatable). " + default_is("none")),
    minutes: Optional[float] = MINUTES,
    steps: Optional[int] = STEPS,
    resume: bool = RESUME,
    force: bool = FORCE,
    channels: Optional[int] = typer.Option(None, "--channels", min=1, metavar="N", help="Conv1d channels of the "
                                           "coding model. " + default_is(DnaConfig.channels)),
    hidden: Optional[int] = typer.Option(None, "--hidden", min=1, metavar="N", help="Bidirectional GRU units per "
                                         "direction. " + default_is(DnaConfig.hidden)),
    lm_hidden: Optional[int] = typer.Option(None, "--lm-hidden", min=1, metavar="N", help="GRU units of the language "
                                            "model. " + default_is(DnaConfig.lm_hidden)),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", min=16, metavar="N", help="Bases per training window. "
                                          + default_is(DnaTrainOptions.seq_len)),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, metavar="N", help="Windows per step. "
                                             + default_is(DnaTrainOptions.batch_size)),
    lr: Optional[float] = typer.Option(None, "--lr", metavar="X", help="Peak learning rate (AdamW). "
                                       + default_is(DnaTrainOptions.lr)),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", min=1, metavar="N", help="Validate every N steps "
                                             "on the whole validation region. " + default_is("fitted to the budget")),
    checkpoint_minutes: float = CHECKPOINT_MINUTES,
    seed: Optional[int] = seed_option(str(DnaTrainOptions.seed)),
    threads: Optional[int] = THREADS,
    quiet: bool = quiet_option(),
    as_json: bool = json_option("Print the training summary as JSON."),
) -> None:
    """Train the coding and DNA language models on an annotated genome."""
    from pipelines import dna_train

    from ..io import command_line, expand_inputs
    from ..training import Budget

    expand_inputs([fasta, annotation])
    with thread_plan(threads).use("large"):
        result = dna_train.train(
            fasta, annotation, out, holdout=holdout or [], budget=Budget(steps=steps, minutes=minutes),
            resume=resume, force=force, config_overrides=dict(channels=channels, hidden=hidden, lm_hidden=lm_hidden),
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
    fasta: list[Path] = typer.Option(..., "--fasta", metavar="FASTA", help="Genome FASTA (repeatable, paired with "
                                     "--annotation)."),
    annotation: list[Path] = typer.Option(..., "--annotation", metavar="GFF|GENBANK", help="GFF3 or GenBank for each "
                                          "--fasta."),
    model: Optional[Path] = MODEL,
    region: Optional[list[str]] = typer.Option(None, "--region", metavar="RECORD[:START-END]", help="Only this "
                                               "region (repeatable), e.g. the held-out one. " + default_is("all")),
    adapt: Optional[bool] = ADAPT,
    adapt_steps: int = ADAPT_STEPS,
    threads: Optional[int] = THREADS,
    quiet: bool = quiet_option(),
    as_json: bool = json_option("JSON Lines: one object per genome."),
) -> None:
    """Base-level coding P/R/F1 per strand, gene 3'-end and exact (both ends) sensitivity/precision, 5'-end
    accuracy and bits/base against annotation."""
    from pipelines import dna_model
    from pipelines.dna_eval import evaluate

    from ..io import expand_inputs

    if len(fasta) != len(annotation):
        raise SeqdlError(f"give one --annotation per --fasta ({len(fasta)} FASTA, {len(annotation)} annotations)")
    expand_inputs([*fasta, *annotation])
    adapt_options = None if adapt is False else AdaptOptions(steps=adapt_steps, auto=adapt is None)
    side_by_side = thread_plan(threads).threads("large")   # scoring and adapting run tasks on one BLAS thread each
    for fasta_path, notes in zip(fasta, annotation):
        record = evaluate(model or dna_model.default_model_path(), fasta_path, notes, region,
                          adapt_options=adapt_options, quiet=quiet, threads=side_by_side)
        if as_json:
            emit_json(record)
        else:
            typer.echo(f"{record['file']}  ({record['bases']:,} bp: {', '.join(record['regions'])})")
            for key, value in record.items():
                if isinstance(value, float):
                    typer.echo(f"  {key:<26}{value:.4f}")


@app.command()
def scan(
    inputs: Optional[list[str]] = typer.Argument(None, metavar="FASTA", help="FASTA files (plain or gzip) or "
                                                 "globs."),
    model: Optional[Path] = MODEL,
    out: Optional[str] = typer.Option(None, "--out", metavar="PATH", help="Parquet of windows; a directory (an "
                                      "existing one, or PATH/ which is created) or --workers/--scheduler: batch mode, "
                                      "a Parquet file and its genes (.bed, .gff3) per input. "
                                      + default_is("<first input>.scan.parquet")),
    window: int = typer.Option(1000, "--window", min=1, metavar="BP", help="Window length (bp). A window with fewer "
                               f"than {CallOptions.min_length} known bases (a short record, a run of N) gets null "
                               "coding_probability and bits_per_base: too little for the models to judge."),
    stride: int = typer.Option(500, "--stride", min=1, metavar="BP", help="Step between window starts (bp); also the "
                               "bedGraph bin."),
    bed: Optional[Path] = typer.Option(None, "--bed", metavar="PATH", help="Write gene calls as BED6 (batch mode: "
                                       "all inputs' in one file, records named INPUT|RECORD). " + default_is("none")),
    gff: Optional[Path] = typer.Option(None, "--gff", metavar="PATH", help="Write gene calls as GFF3 (batch mode: as "
                                       "--bed). " + default_is("none")),
    bedgraph: Optional[Path] = typer.Option(None, "--bedgraph", metavar="PATH", help="Write X.coding_plus/minus and "
                                            "X.bits_plus/minus .bedgraph tracks (X from this name). "
                                            + default_is("none")),
    from_list: Optional[Path] = FROM_LIST,
    workers: Optional[int] = WORKERS,
    scheduler: Optional[str] = SCHEDULER,
    threads: Optional[int] = THREADS,
    adapt: Optional[bool] = ADAPT,
    adapt_steps: int = ADAPT_STEPS,
    quiet: bool = quiet_option(),
    as_json: bool = json_option("JSON Lines: one object per FASTA, then a summary."),
) -> None:
    """Stream FASTA through the coding and DNA language models: windows to Parquet, genes to BED/GFF3."""
    from pipelines import dna_model
    from pipelines.scan import ScanOptions, default_out, scan_files

    from ..batch import is_batch_out
    from ..io import check_output_path, command_line

    paths = batch_inputs(inputs, from_list)
    model_path = model or dna_model.default_model_path()
    batch = is_batch_out(out, workers, scheduler)
    # the coding and language models run side by side on one BLAS thread each (pipelines.dna_model.score)
    side_by_side = threads or 1 if batch else thread_plan(threads).threads("large")
    adapt_options = None if adapt is False else AdaptOptions(steps=adapt_steps, auto=adapt is None)
    options = ScanOptions(window=window, stride=stride, adapt=adapt_options,
                          threads=side_by_side)
    if batch:
        if bedgraph:
            raise SeqdlError("--bedgraph writes single tracks; leave it out in batch mode")
        from pipelines.batch_genes import merge_gene_calls
        from pipelines.batch_jobs import scan_job

        merged = {name: check_output_path(path) for name, path in (("bed", bed), ("gff", gff)) if path is not None}

        def merge(result: BatchResult) -> dict[str, Any]:
            """All inputs' genes in the --bed/--gff files, even when some inputs failed."""
            if not merged:
                return {}
            genes = merge_gene_calls(result.records, result.out_dir, bed, gff)
            return {"genes": genes, **{name: str(path) for name, path in merged.items()}}

        run_batch(scan_job(model_path, options, command_line(), side_by_side), paths, None if out is None else Path(out),
                  workers, scheduler, quiet, as_json, after=merge)
        return
    out = Path(out) if out else default_out(paths[0])
    reports, summary = scan_files(paths, model_path, out, options, bed=bed, gff=gff, bedgraph=bedgraph, quiet=quiet,
                                  command=command_line())
    if as_json:
        for record in reports + [summary]:
            emit_json(record)
    elif not quiet:
        typer.echo(f"{out}: {summary['windows']:,} windows, {summary['genes']:,} genes, {summary['bases']:,} bp "
                   f"in {summary['seconds']:.1f} s")
