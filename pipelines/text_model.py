"""The character language model (embedding -> GRU/LSTM layers -> linear head), loading it, and sampling.

Parameter names are PyTorch's (``embed.weight``, ``rnn.weight_ih_l0``, ...,
``head.weight``), so the same module written in PyTorch loads a seqdl model's
weights. A model file is a safetensors checkpoint of kind ``text`` whose header
holds the :class:`ModelConfig` and the vocabulary (``seqdl.vocab``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

import seqdl
from seqdl import nn
from seqdl.checkpoint import Checkpoint, load
from seqdl.errors import CheckpointError, SeqdlError
from seqdl.nn.recurrent import GRU, LSTM
from seqdl.tensor import Tensor, log_softmax_array

from .text_corpus import Vocabulary

KIND = "text"
CELLS = {"lstm": LSTM, "gru": GRU}
NEWLINE = "\n"

State = Any  # GRU: h (layers, batch, hidden); LSTM: (h, c); None for zeros


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    # GRU by default: seqdl's whole-sequence GRU trains at 1.1x PyTorch's chars/s on 2 cores, its LSTM at 0.45x
    # (PyTorch's LSTM is a fused oneDNN kernel); `python -m benchmarks.textgen --cell lstm|gru` measures both.
    cell: str = "gru"
    hidden: int = 512
    layers: int = 2
    embed: int = 64
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise SeqdlError(f"--cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        for name in ("vocab_size", "hidden", "layers", "embed"):
            if getattr(self, name) < 1:
                raise SeqdlError(f"--{name} must be positive, not {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise SeqdlError(f"--dropout must be in [0, 1), not {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


class CharModel(nn.Module):
    """Embedding -> multi-layer GRU/LSTM (sequence first) -> dropout -> linear head over the vocabulary."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed)
        self.rnn = CELLS[config.cell](config.embed, config.hidden, num_layers=config.layers, dropout=config.dropout)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def forward(self, tokens: np.ndarray, state: State = None) -> tuple[Tensor, State]:
        """``tokens`` (T, B) ids -> logits (T, B, V) and the state after the last step."""
        out, state = self.rnn(self.embed(tokens), state)
        return self.head(self.drop(out)), state


def zero_state(model: CharModel, batch: int) -> State:
    shape = (model.config.layers, batch, model.config.hidden)
    if model.config.cell == "lstm":
        return Tensor(np.zeros(shape, np.float32)), Tensor(np.zeros(shape, np.float32))
    return Tensor(np.zeros(shape, np.float32))


def reset_rows(state: State, rows: np.ndarray | list[int]) -> None:
    """Zero the state of some batch rows in place (a new stream starts there)."""
    for part in state if isinstance(state, tuple) else (state,):
        part.data[:, rows] = 0


def take_rows(state: State, rows: np.ndarray) -> State:
    """The state of some batch rows (a copy), to run only the streams that are still going."""
    if isinstance(state, tuple):
        return tuple(Tensor(part.data[:, rows]) for part in state)
    return Tensor(state.data[:, rows])


def put_rows(state: State, rows: np.ndarray, values: State) -> None:
    """Write back the state of some batch rows, in place (the inverse of :func:`take_rows`)."""
    pairs = zip(state, values) if isinstance(state, tuple) else [(state, values)]
    for part, value in pairs:
        part.data[:, rows] = value.data


def start_id(vocab: Vocabulary) -> int:
    """The input before the first character of a text: a newline, as if the text started a new line."""
    ids = vocab.encode(NEWLINE)
    return int(ids[0])


# -------------------------------------------------------------- model files
def model_metadata(vocab: Vocabulary) -> dict[str, Any]:
    """Header entries a text model file needs besides its config: the vocabulary, id by id."""
    return {"seqdl.vocab": list(vocab.chars)}


def _pinning_shapes(config: ModelConfig) -> dict[str, tuple[int, int]]:
    """Tensors whose shapes fix every size of a :class:`CharModel` of ``config`` (its last layer fixes ``layers``)."""
    gates = {"gru": 3, "lstm": 4}[config.cell] * config.hidden
    return {"embed.weight": (config.vocab_size, config.embed), "head.weight": (config.vocab_size, config.hidden),
            f"rnn.weight_hh_l{config.layers - 1}": (gates, config.hidden)}


def load_text_model(path: Path) -> tuple[CharModel, Vocabulary, Checkpoint]:
    """A text model (or training checkpoint) from ``path``, in eval mode; refuses other kinds of model."""
    checkpoint = load(path, kind=KIND)
    vocab_json = checkpoint.metadata.get("seqdl.vocab")
    try:
        vocab = Vocabulary(tuple(vocab_json))
        config = ModelConfig.from_dict(checkpoint.config)
    except (TypeError, ValueError, SeqdlError) as exc:
        raise CheckpointError(f"is not a usable seqdl text model ({exc})", str(path)) from None
    if config.vocab_size != len(vocab):
        raise CheckpointError(f"has a vocabulary of {len(vocab)} characters but a model for {config.vocab_size}",
                              str(path))
    checkpoint.require_shapes(_pinning_shapes(config))
    model = CharModel(config)
    checkpoint.restore(model)
    model.eval()
    return model, vocab, checkpoint


# ----------------------------------------------------------------- sampling
@dataclass(frozen=True)
class SamplingOptions:
    length: int = 500
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = None
    num_samples: int = 1

    def __post_init__(self) -> None:
        if self.length < 1:
            raise SeqdlError(f"--length must be positive, not {self.length}")
        if not self.temperature > 0:
            raise SeqdlError(f"--temperature must be positive, not {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise SeqdlError(f"--top-k must be positive, not {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise SeqdlError(f"--top-p must be in (0, 1], not {self.top_p}")
        if self.num_samples < 1:
            raise SeqdlError(f"--num-samples must be positive, not {self.num_samples}")


def encode_prompt(vocab: Vocabulary, prompt: str) -> tuple[np.ndarray, list[str]]:
    """The prompt's ids and the characters in it that the model does not know.

    Unknown characters become the unknown symbol; a prompt made only of unknown
    characters is refused (it would tell the model nothing).
    """
    unknown = vocab.unknown_in(prompt)
    ids = vocab.encode(prompt)
    if prompt and not ids.any():
        raise SeqdlError(f"every character of the prompt is outside the model's vocabulary: {prompt!r}")
    return ids, unknown


def next_token_distribution(logits: np.ndarray, options: SamplingOptions) -> np.ndarray:
    """Probabilities (B, V) after temperature, top-k and top-p; the unknown symbol is never sampled."""
    z = logits.astype(np.float64) / options.temperature
    z[:, 0] = -np.inf
    vocab_size = z.shape[1]
    if options.top_k is not None and options.top_k < vocab_size:
        kth = np.partition(z, vocab_size - options.top_k, axis=1)[:, vocab_size - options.top_k, None]
        z[z < kth] = -np.inf
    probs = np.exp(log_softmax_array(z, axis=1))
    if options.top_p is not None and options.top_p < 1:
        order = np.argsort(-probs, axis=1)
        ranked = np.take_along_axis(probs, order, axis=1)
        before = np.cumsum(ranked, axis=1) - ranked  # mass of the more likely tokens
        drop = np.zeros_like(probs, dtype=bool)
        np.put_along_axis(drop, order, before >= options.top_p, axis=1)
        probs[drop] = 0
        probs /= probs.sum(axis=1, keepdims=True)
    return probs


def draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One id per row of ``probs`` (inverse-CDF sampling, all rows at once)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf < u).sum(axis=1), probs.shape[1] - 1)


def generate(model: CharModel, vocab: Vocabulary, prompt: str, options: SamplingOptions,
             rng: np.random.Generator) -> list[str]:
    """``options.num_samples`` continuations of ``prompt`` (prompt not included), sampled together.

    The prompt runs through the model once; then each step feeds one character
    per sample and carries the recurrent state, never re-running the prefix.
    """
    ids, _ = encode_prompt(vocab, prompt)
    context = np.concatenate([[start_id(vocab)], ids]).astype(np.intp)
    batch = options.num_samples
    out = np.empty((options.length, batch), dtype=np.intp)
    model.eval()
    with seqdl.no_grad():
        logits, state = model(np.repeat(context[:, None], batch, axis=1))
        last = logits.data[-1]
        for t in range(options.length):
            token = draw(next_token_distribution(last, options), rng)
            out[t] = token
            if t + 1 < options.length:
                logits, state = model(token[None, :], state)
                last = logits.data[-1]
    return [vocab.decode(out[:, b]) for b in range(batch)]


# ------------------------------------------------------------ the shipped model and sample files
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "data" / "shakespeare-char.safetensors"


def default_model_path() -> Path:
    """The text model shipped in ``data/``, for ``--no-train`` and ``eval text`` without ``--model``."""
    if not DEFAULT_MODEL.is_file():
        raise SeqdlError(f"no --model given and no shipped text model at {DEFAULT_MODEL}")
    return DEFAULT_MODEL


def write_samples(out: Path, samples: list[str], prompt: str, options: SamplingOptions, seed: int | None,
                  metadata: dict[str, str]) -> None:
    """One Parquet row per sample: its index, prompt, text and the sampling settings (atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from seqdl.io import atomic_path

    n = len(samples)
    table = pa.table({
        "sample_index": pa.array(range(n), pa.int64()),
        "prompt": pa.array([prompt] * n, pa.string()),
        "text": pa.array(samples, pa.string()),
        "temperature": pa.array([options.temperature] * n, pa.float64()),
        "top_k": pa.array([options.top_k] * n, pa.int64()),
        "top_p": pa.array([options.top_p] * n, pa.float64()),
        "length": pa.array([options.length] * n, pa.int64()),
        "seed": pa.array([seed] * n, pa.int64()),
    }).replace_schema_metadata(metadata)
    with atomic_path(out) as temp:
        pq.write_table(table, temp)
