"""Character language model training and sampling: seqdl against PyTorch, same model, data, loop and budget.

    python -m benchmarks.textgen [--minutes 2] [--corpus input.txt] [--cell gru --hidden 512 ...]

Both frameworks train the textgen default model (or the one given) on the same
corpus with the same loop, one after the other, for the same wall-clock budget:
the same initial weights (seqdl's, copied into PyTorch), the same random
windows for every step (``batch_rng(seed, step)``), AdamW with the same
hyper-parameters, gradient-norm clipping, and the same warm-up + cosine
schedule re-planned from the measured time per step. seqdl computes each step
as its command does, the batch in two halves side by side
(:mod:`seqdl.training.parallel`); PyTorch runs the whole batch on its 2 threads. Validation (the last 10 %
of the text, scored with carried state by seqdl's evaluator, with PyTorch's
weights copied into a seqdl model) happens once after the budget, outside it.
Then both sample 2,000 characters one at a time from a single stream.

A third run is what a user gets from ``seqdl textgen CORPUS --minutes M``: the
command's own trainer (:mod:`pipelines.text_train` on :mod:`seqdl.training`),
with its validations, checkpoints and fixed costs inside the budget, scored on
the same held-out tenth.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict
import tempfile
import time
from pathlib import Path

import numpy as np

import seqdl
from seqdl.optim import AdamW, clip_grad_norm_

from pipelines import text_train
from pipelines.text_corpus import Corpus, CorpusOptions, load_corpus
from pipelines.text_eval import array_streams, mean_nats
from pipelines.text_model import CharModel, ModelConfig, SamplingOptions, generate, load_text_model, start_id
from pipelines.text_train import TrainOptions, window_loss
from seqdl.training import PARTS, Budget, DataParallel, Settings, batch_rng
from seqdl.training.loop import PROVISIONAL_STEPS

from .table import format_table

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"


def lr_at(step: int, warmup: int, total: int, o: TrainOptions) -> float:
    """Linear warm-up, then cosine to ``min_lr_ratio * lr`` at ``total`` (seqdl's WarmupCosine)."""
    if step < warmup:
        return o.lr * (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    low = o.lr * o.min_lr_ratio
    return low + (o.lr - low) * (1 + math.cos(math.pi * progress)) / 2


def _timed_loop(step_fn, seconds: float, o: TrainOptions) -> int:
    """Run ``step_fn(step, lr)`` until ``seconds`` pass, re-planning the cosine's length (and, until it is over,
    the warm-up) every 10 steps, as seqdl's loop does."""
    step, total = 0, PROVISIONAL_STEPS
    warmup = o.warmup_for(total)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        step_fn(step, lr_at(step, warmup, total, o))
        step += 1
        if step % 10 == 0:
            elapsed = time.monotonic() - start
            total = step + int((seconds - elapsed) / (elapsed / step))
            warmup = o.warmup_for(total) if step < warmup else warmup
            total = max(total, warmup + 1)
    return step


def train_seqdl(corpus: Corpus, model: CharModel, o: TrainOptions, seconds: float) -> dict:
    optimizer = AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    parallel = DataParallel(model, PARTS)  # the batch in halves side by side, as the command trains

    def step(index: int, lr: float) -> None:
        x, y = corpus.windows(batch_rng(o.seed, index), o.batch_size, o.seq_len)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        with parallel.scope():
            parallel.backward(window_loss, (x, y), len(x))
            clip_grad_norm_(model.parameters(), o.clip)
            optimizer.step()

    model.train()
    started = time.monotonic()
    steps = _timed_loop(step, seconds, o)
    return {"steps": steps, "chars_per_second": steps * o.batch_size * o.seq_len / (time.monotonic() - started)}


def torch_model(config: ModelConfig):
    import torch

    cell = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[config.cell]

    class TorchCharModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(config.vocab_size, config.embed)
            self.rnn = cell(config.embed, config.hidden, num_layers=config.layers, dropout=config.dropout)
            self.drop = torch.nn.Dropout(config.dropout)
            self.head = torch.nn.Linear(config.hidden, config.vocab_size)

        def forward(self, tokens, state=None):
            out, state = self.rnn(self.embed(tokens), state)
            return self.head(self.drop(out)), state

    return TorchCharModel()


def train_torch(corpus: Corpus, model, o: TrainOptions, seconds: float) -> dict:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    vocab_size = len(corpus.vocab)

    def step(index: int, lr: float) -> None:
        x, y = corpus.windows(batch_rng(o.seed, index), o.batch_size, o.seq_len)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        logits, _ = model(torch.from_numpy(x))
        torch.nn.functional.cross_entropy(logits.reshape(-1, vocab_size), torch.from_numpy(y).reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip)
        optimizer.step()

    model.train()
    started = time.monotonic()
    steps = _timed_loop(step, seconds, o)
    return {"steps": steps, "chars_per_second": steps * o.batch_size * o.seq_len / (time.monotonic() - started)}


def train_command(corpus_path: Path, tmp: Path, config: ModelConfig, o: TrainOptions, minutes: float) -> dict:
    """``seqdl textgen CORPUS --minutes M`` with this model and these options: the command's whole trainer."""
    model_path = tmp / "command.safetensors"
    model_options = {k: getattr(config, k) for k in ("cell", "hidden", "layers", "embed", "dropout")}
    result = text_train.train([corpus_path], model_path, budget=Budget(minutes=minutes), model_overrides=model_options,
                              train_overrides=asdict(o), settings=Settings(quiet=True))
    return {"model": load_text_model(model_path)[0], "steps": result.step,
            "validation_share": result.validation_seconds / result.seconds}


def validation_loss(corpus: Corpus, model: CharModel) -> float:
    streams = array_streams(corpus.data, corpus.n_train, len(corpus.data), pieces=16, warmup=1024, max_chars=None,
                            first_input=start_id(corpus.vocab))
    return mean_nats(model, streams)


def sampling_speed_seqdl(model: CharModel, corpus: Corpus, length: int) -> float:
    options = SamplingOptions(length=length, temperature=0.8)
    started = time.perf_counter()
    generate(model, corpus.vocab, "", options, np.random.default_rng(0))
    return length / (time.perf_counter() - started)


def sampling_speed_torch(model, corpus: Corpus, length: int) -> float:
    """The same procedure as seqdl's ``generate``: one character in, carried state, temperature sampling."""
    import torch

    model.eval()
    generator = torch.Generator().manual_seed(0)
    token = torch.tensor([[start_id(corpus.vocab)]])
    state = None
    started = time.perf_counter()
    with torch.no_grad():
        for _ in range(length):
            logits, state = model(token, state)
            logits = logits[-1, 0] / 0.8
            logits[0] = -math.inf
            token = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).view(1, 1)
    return length / (time.perf_counter() - started)


def main() -> None:
    defaults_model, defaults_train = ModelConfig(vocab_size=1), TrainOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget per framework")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sample-length", type=int, default=2000)
    for name in ("cell", "hidden", "layers", "embed", "dropout"):
        parser.add_argument(f"--{name}", type=type(getattr(defaults_model, name)), default=getattr(defaults_model, name))
    for name in ("seq_len", "batch_size", "lr", "weight_decay", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(defaults_train, name)),
                            default=getattr(defaults_train, name))
    parser.add_argument("--warmup-steps", type=int, default=None, help="fixed warm-up (default: a fraction of the run)")
    args = parser.parse_args()

    import torch

    from seqdl.runtime import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(2)
    options = TrainOptions(seq_len=args.seq_len, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                           warmup_steps=args.warmup_steps, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = load_corpus([args.corpus], Path(tmp) / "bench.safetensors", CorpusOptions(), quiet=True)
        config = ModelConfig(vocab_size=len(corpus.vocab), cell=args.cell, hidden=args.hidden, layers=args.layers,
                             embed=args.embed, dropout=args.dropout)
        seqdl.manual_seed(args.seed)
        ours = CharModel(config)
        theirs = torch_model(config)
        theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
        seconds = args.minutes * 60
        our_run = train_seqdl(corpus, ours, options, seconds)
        their_run = train_torch(corpus, theirs, options, seconds)
        their_weights = CharModel(config)
        their_weights.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        command = train_command(args.corpus, Path(tmp), config, options, args.minutes)
        rows = [
            {"benchmark": f"validation loss after {args.minutes:g} min", "unit": "nats/char (lower=better)",
             "seqdl": validation_loss(corpus, ours), "torch": validation_loss(corpus, their_weights)},
            {"benchmark": f"same, `seqdl textgen --minutes {args.minutes:g}`", "unit": "nats/char (lower=better)",
             "seqdl": validation_loss(corpus, command["model"]), "torch": None},
            {"benchmark": "training throughput", "unit": "chars/s",
             "seqdl": our_run["chars_per_second"], "torch": their_run["chars_per_second"]},
            {"benchmark": "training steps in the budget", "unit": "steps",
             "seqdl": our_run["steps"], "torch": their_run["steps"]},
            {"benchmark": f"sampling, 1 stream, {args.sample_length} chars", "unit": "chars/s",
             "seqdl": sampling_speed_seqdl(ours, corpus, args.sample_length),
             "torch": sampling_speed_torch(theirs, corpus, args.sample_length)},
        ]
    print(f"{config.cell.upper()} {config.layers}x{config.hidden} (embed {config.embed}, dropout {config.dropout}), "
          f"batch {options.batch_size}x{options.seq_len}, lr {options.lr}, {args.minutes:g} min each; "
          f"seqdl vs torch {torch.__version__} ({torch.get_num_threads()} threads); ratio = seqdl / torch")
    print(format_table(rows))
    print(f"`seqdl textgen --minutes {args.minutes:g}`: {command['steps']} steps, "
          f"{100 * command['validation_share']:.1f} % of its time validating")


if __name__ == "__main__":
    main()
