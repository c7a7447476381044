"""Letter classifiers for 28x28 EMNIST-style crops: the architectures, their config, loading and batched inference.

Input convention: crops are **upright** (as :func:`vision.emnist.read_idx_images`
and :func:`vision.emnist.prepare_crops` return them; the idx files store them
transposed), uint8, white ink on black, shape (N, 28, 28). :func:`classify` takes
exactly that; the networks themselves take float32 (N, 1, 28, 28) in [0, 1]
(:func:`to_input`), so a PyTorch module with the same layout loads the weights.
Output: 26 logits, class k = ``CLASSES[k]`` (EMNIST label k + 1; upper and lower
case share a class). The same networks serve as a *numbers* model (:mod:`vision.digits`),
whose ``classes`` are the ten digits and one class for every letter.

Two architectures:

- ``hello-dl``: the network of Bert Hubert's Hello Deep Learning (tensor-convo
  alphabet model): valid 3x3 convolutions 32/64/128, each followed by a 2x2 max-pool
  (rounding up, so 11 -> 6) and GELU, then Linear 512 -> 64 -> 128 -> 26 with GELU.
- ``vgg`` (the default): three 3x3 conv blocks (BatchNorm, ReLU, 2x2 max-pool)
  and a two-layer head with dropout, kept narrow (32/48/96) for speed; for
  inference every BatchNorm is folded into the layer before it
  (:func:`inference_net`).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqdl import checkpoint, nn, no_grad
from seqdl.errors import SeqdlError
from seqdl.threads import in_batches
from seqdl.tensor import Tensor, softmax_array

KIND = "letters"
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "data" / "letters.safetensors"
CLASSES = "abcdefghijklmnopqrstuvwxyz"
SIZE = 28
ARCHITECTURES = ("vgg", "hello-dl")
INFERENCE_BATCH = 32  # crops per forward pass: their im2col columns (7 MB) stay in cache; 256 was 20 % slower


@dataclass(frozen=True)
class LettersConfig:
    """Architecture of a letter classifier (stored as ``seqdl.config``)."""

    arch: str = "vgg"
    channels: tuple[int, ...] = (32, 48, 96)
    hidden: int = 256
    dropout: float = 0.2
    classes: str = CLASSES   # class k of the output is classes[k] (a numbers model: digits and one for letters)

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise SeqdlError(f"unknown architecture {self.arch!r}: choose one of {', '.join(ARCHITECTURES)}")
        if len(self.channels) != 3 or min(self.channels) < 1 or self.hidden < 1:
            raise SeqdlError(f"a letters network needs three positive channel counts and a positive hidden size, "
                             f"not {self.channels} / {self.hidden}")
        if not 0 <= self.dropout < 1:
            raise SeqdlError(f"dropout must be in [0, 1), not {self.dropout}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise SeqdlError(f"a classifier needs two or more distinct classes, not {self.classes!r}")

    @classmethod
    def for_arch(cls, arch: str, **overrides: Any) -> "LettersConfig":
        """The defaults of ``arch`` with ``overrides``; hello-dl's sizes are the original's and cannot change."""
        if arch == "hello-dl":
            fixed = {"channels": (32, 64, 128), "hidden": 64}
            given = {"channels": tuple(overrides.get("channels", fixed["channels"])),
                     "hidden": overrides.get("hidden", fixed["hidden"])}
            if given != fixed:
                raise SeqdlError("--arch hello-dl has the original's fixed sizes: drop --channels and --hidden")
            return cls(arch=arch, **fixed, dropout=overrides.get("dropout", 0.0),
                       classes=overrides.get("classes", CLASSES))
        return cls(arch=arch, **overrides)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["channels"] = list(self.channels)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any], path: str | None = None) -> "LettersConfig":
        try:
            values = dict(values)
            values["channels"] = tuple(int(c) for c in values.get("channels", cls.channels))
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise SeqdlError(f"not a letters model config: {exc}", path) from None


class HelloDL(nn.Module):
    """Hello Deep Learning's alphabet CNN: conv -> max-pool -> GELU three times, then three linear layers."""

    def __init__(self, config: LettersConfig) -> None:
        super().__init__()
        c1, c2, c3 = config.channels
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(1, c1, 3), nn.Conv2d(c1, c2, 3), nn.Conv2d(c2, c3, 3)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)   # 26 -> 13, 11 -> 6, 4 -> 2
        self.act = nn.GELU()
        self.fc1, self.fc2 = nn.Linear(c3 * 2 * 2, 64), nn.Linear(64, 128)
        self.fc3 = nn.Linear(128, len(config.classes))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        for conv in (self.conv1, self.conv2, self.conv3):
            x = self.act(self.pool(conv(x)))
        x = x.flatten(1)
        x = self.act(self.fc1(x))
        x = self.dropout(self.act(self.fc2(x)))
        return self.fc3(x)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


class VGGLetters(nn.Module):
    """Three conv blocks (28 -> 14 -> 7 -> 3) and a dropout-regularised two-layer head."""

    def __init__(self, config: LettersConfig) -> None:
        super().__init__()
        c1, c2, c3 = config.channels
        self.features = nn.Sequential(_conv_block(1, c1), _conv_block(c1, c2), _conv_block(c2, c3))
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(c3 * 3 * 3, config.hidden, bias=False),
            nn.BatchNorm1d(config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
            nn.Linear(config.hidden, len(config.classes)))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def build_model(config: LettersConfig) -> nn.Module:
    return HelloDL(config) if config.arch == "hello-dl" else VGGLetters(config)


def _folded(layer: nn.Module, norm: nn.Module) -> nn.Module:
    """``layer`` followed by eval-mode BatchNorm ``norm`` as one layer of the same kind with a bias."""
    scale = norm.weight.data / np.sqrt(norm.running_var + norm.eps)
    bias = norm.bias.data - norm.running_mean * scale
    if layer.bias is not None:
        bias = bias + layer.bias.data * scale
    if isinstance(layer, nn.Conv2d):
        folded = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding)
    else:
        folded = nn.Linear(layer.in_features, layer.out_features)
    folded.weight.data[...] = layer.weight.data * scale.reshape(-1, *([1] * (layer.weight.ndim - 1)))
    folded.bias.data[...] = bias
    return folded


def inference_net(net: nn.Module) -> nn.Module:
    """An eval-only copy of ``net`` with every BatchNorm folded into the layer before it, dropout gone and each
    ReLU after its pooling: the same outputs as ``net.eval()`` for less work. Networks without BatchNorm come
    back as they are."""
    if not isinstance(net, VGGLetters):
        return net.eval()
    # Max-pooling and ReLU commute (both keep order), so pooling first leaves the ReLU a quarter of the values.
    blocks = [nn.Sequential(_folded(conv, norm), pool, nn.ReLU()) for conv, norm, _, pool in net.features]
    _, hidden, norm, _, _, out = net.classifier
    return nn.Sequential(*blocks, nn.Flatten(), _folded(hidden, norm), nn.ReLU(), out).eval()


def to_input(crops: np.ndarray) -> Tensor:
    """Upright uint8 crops (N, 28, 28) -> the float32 (N, 1, 28, 28) tensor in [0, 1] the networks take."""
    crops = np.asarray(crops)
    if crops.ndim != 3 or crops.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"letter crops must be (N, {SIZE}, {SIZE}), got shape {crops.shape}")
    return Tensor(crops[:, None].astype(np.float32) * np.float32(1 / 255))


def logits(model: nn.Module, crops: np.ndarray, batch_size: int = INFERENCE_BATCH,
           n_classes: int = len(CLASSES)) -> np.ndarray:
    """(N, n_classes) float32 logits of upright uint8 crops, in eval mode, a batch at a time on every core the
    thread plan allows (:func:`seqdl.threads.in_batches`)."""
    model.eval()
    out = np.zeros((len(crops), n_classes), np.float32)

    def run(start: int, stop: int) -> None:
        out[start:stop] = model(to_input(crops[start:stop])).data

    with no_grad():
        in_batches(run, len(crops), batch_size)
    return out


def classify(model: nn.Module, crops: np.ndarray, batch_size: int = INFERENCE_BATCH,
             n_classes: int = len(CLASSES)) -> np.ndarray:
    """(N, n_classes) class probabilities of upright uint8 crops (N, 28, 28); for a letters model column k is
    letter ``CLASSES[k]``."""
    return softmax_array(logits(model, crops, batch_size, n_classes), axis=-1)


@dataclass
class LettersModel:
    """A loaded glyph classifier (letters, or a numbers model): the network, its config, its file and the file's
    model card."""

    net: nn.Module
    config: LettersConfig
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fast = inference_net(self.net)

    def logits(self, crops: np.ndarray) -> np.ndarray:
        """(N, classes) logits of upright uint8 crops (N, 28, 28)."""
        return logits(self.fast, crops, n_classes=len(self.config.classes))

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """(N, classes) probabilities of upright uint8 crops (N, 28, 28); column k is ``config.classes[k]``."""
        return classify(self.fast, crops, n_classes=len(self.config.classes))


def _weight_shapes(config: LettersConfig) -> dict[str, tuple[int, ...]]:
    """The weights whose shapes pin every size of ``config``'s network."""
    c1, c2, c3 = config.channels
    if config.arch == "hello-dl":
        return {"conv1.weight": (c1, 1, 3, 3), "conv2.weight": (c2, c1, 3, 3), "conv3.weight": (c3, c2, 3, 3),
                "fc1.weight": (64, c3 * 4), "fc2.weight": (128, 64), "fc3.weight": (len(config.classes), 128)}
    return {"features.0.0.weight": (c1, 1, 3, 3), "features.1.0.weight": (c2, c1, 3, 3),
            "features.2.0.weight": (c3, c2, 3, 3), "classifier.1.weight": (config.hidden, c3 * 9),
            "classifier.5.weight": (len(config.classes), config.hidden)}


def load_letters_model(path: str | os.PathLike | None = None, classes: str = CLASSES,
                       default: Path = DEFAULT_MODEL) -> LettersModel:
    """A glyph classifier (float or quantised) from a safetensors file, by default the shipped letters model;
    refuses other kinds, and classifiers of other ``classes``, with one line."""
    if path is None:
        if not default.is_file():
            raise SeqdlError(f"no model given and no shipped model at {default}")
        path = default
    saved = checkpoint.load(path, kind=KIND)
    config = LettersConfig.from_dict(saved.config, str(path))
    found = "".join(saved.metadata.get("seqdl.classes", config.classes))
    if found != classes or config.classes != classes:
        raise SeqdlError(f"classifies {found!r}, not {classes!r}"
                         + (" (the 26 letters a..z)" if classes == CLASSES else ""), str(path))
    saved.require_shapes(_weight_shapes(config))  # before building: an edited config could ask for gigabytes
    net = build_model(config)
    saved.restore(net)
    net.eval()
    return LettersModel(net, config, Path(path), saved.metadata)


def model_metadata(classes: str = CLASSES) -> dict[str, Any]:
    """Header entries every glyph classifier carries besides its config and card."""
    return {"seqdl.classes": classes, "seqdl.input": "upright uint8 28x28 crops, white ink on black, scaled to "
            "[0, 1] as float32 (N, 1, 28, 28); EMNIST idx files store images transposed"}
