"""Give a DNA model file another run's language model, keeping its coding model and gene decoder.

The two networks in a DNA model file are independent at inference: the coding model
(and the gene decoder fitted to its outputs) makes the calls, the language model only
``bits_per_base``. Training runs them in one loop, and their gradients share one norm
clip, so a run that changes one changes both: this takes each from the run that made
it best. The shipped model's language model (64 units; 1.858 bits/base held out,
against 1.867 for the 96 it had, at less than half the arithmetic) came from a run
whose coding model was worse than the shipped one::

    python -m pipelines.dna_graft --model data/dna-ecoli.safetensors --lm-from run64.safetensors

The result records where its language model came from (``seqdl.lm_command``, the source's
training command, and ``seqdl.lm_metrics``, its validation figures).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from seqdl.checkpoint import STEP, write_safetensors
from seqdl.errors import SeqdlError

from .dna_model import KIND, DnaConfig, load_dna_model

LM = "lm."


def graft_language_model(model_path: Path, source_path: Path) -> None:
    """Replace ``model_path``'s language model with ``source_path``'s (same tile and context), in place."""
    model, saved = load_dna_model(model_path)
    source, source_saved = load_dna_model(source_path)
    if (source.config.tile, source.config.context) != (model.config.tile, model.config.context):
        raise SeqdlError(f"its tiles ({source.config.tile} + {source.config.context} context) differ from "
                         f"{model_path}'s", str(source_path))
    config = DnaConfig.from_dict({**model.config.to_dict(), "lm_hidden": source.config.lm_hidden})
    metadata = {**saved.metadata, "seqdl.lm_command": source_saved.metadata.get("seqdl.command", ""),
                "seqdl.lm_metrics": source_saved.metadata.get("seqdl.metrics", {})}
    tensors = {name: value for name, value in saved.state_dict.items() if not name.startswith(LM)}
    tensors.update({name: value for name, value in source_saved.state_dict.items() if name.startswith(LM)})
    write_safetensors(model_path, tensors, kind=KIND, config=config.to_dict(), metadata=metadata,
                      entries=None if saved.step is None else {STEP: str(saved.step)})
    load_dna_model(model_path)  # the result loads (shapes against config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the DNA model file to change (in place)")
    parser.add_argument("--lm-from", type=Path, required=True, help="the DNA model file whose language model to take")
    args = parser.parse_args()
    graft_language_model(args.model, args.lm_from)
    print(f"{args.model}: language model from {args.lm_from}")


if __name__ == "__main__":
    main()
