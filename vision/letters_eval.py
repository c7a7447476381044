"""``seqdl eval letters``: accuracy of a letters model on labelled crops, per letter, and what it confuses."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from seqdl import nn
from seqdl.io import atomic_path, check_output_path

from .letters_model import CLASSES, logits

TOP_PAIRS = 10


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: str = CLASSES) -> np.ndarray:
    """(26, 26) counts (for letters): row = true class, column = predicted class."""
    k = len(classes)
    return np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)


def summarize(labels: np.ndarray, predicted: np.ndarray, classes: str = CLASSES) -> dict[str, Any]:
    """Accuracy, per-class accuracy (classes present only) and the most frequent confusions."""
    matrix = confusion_matrix(labels, predicted, classes)
    per_class = matrix.sum(axis=1)
    per_letter = {classes[k]: {"accuracy": float(matrix[k, k] / per_class[k]), "n": int(per_class[k])}
                  for k in range(len(classes)) if per_class[k]}
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:TOP_PAIRS]
    pairs = [{"true": classes[i], "predicted": classes[j], "count": int(off[i, j]),
              "share_of_true": float(off[i, j] / per_class[i])}
             for i, j in zip(*np.unravel_index(order, off.shape)) if off[i, j]]
    return {"accuracy": float(np.trace(matrix) / max(len(labels), 1)), "n": int(len(labels)),
            "per_letter": per_letter, "confused_pairs": pairs}


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, classes: str = CLASSES) -> dict[str, Any]:
    """:func:`summarize` of ``model``'s top class for upright uint8 crops with classes 0..len(classes)-1."""
    return summarize(labels, logits(model, images, n_classes=len(classes)).argmax(axis=1), classes)


def plot_confusion(labels: np.ndarray, predicted: np.ndarray, out: str | os.PathLike, title: str = "") -> Path:
    """A PNG of the row-normalised confusion matrix (log colour scale, so rare confusions show), written atomically."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    out = check_output_path(out)
    matrix = confusion_matrix(labels, predicted).astype(np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    figure = Figure(figsize=(8, 7), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(np.where(share > 0, share, np.nan), cmap="viridis", norm=LogNorm(vmin=1e-3, vmax=1))
    ticks = np.arange(len(CLASSES))
    ax.set_xticks(ticks, list(CLASSES))
    ax.set_yticks(ticks, list(CLASSES))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (share of each true letter)", fontsize=10)
    figure.colorbar(image, ax=ax, shrink=0.8)
    with atomic_path(out) as temp:
        figure.savefig(temp, format="png", dpi=100)
    return out
