"""Scoring text with a character model: nats/char over files or arrays, streamed with carried state.

Every character is scored given all the text before it (the first character of
a text given a newline, as if the text started a line). Text is processed as
*streams*: each stream runs through the model in chunks of ``chunk`` characters
with its recurrent state carried from chunk to chunk, and up to ``batch``
streams run side by side as the rows of one batch; when a stream ends, the next
one takes its row (with that row's state reset). Memory stays flat however much
text there is.

Long plain files are cut into segments of about ``segment_bytes`` at line
starts, so one big file still fills the batch. A segment first runs the
``warmup_bytes`` of text before it through the model without scoring it, so its
first characters are scored with (nearly) the context a single stream would
have had: the total differs from one uninterrupted stream by far less than the
printed precision (checked in the tests).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import seqdl
from seqdl.io import atomic_path, is_gzip, progress_bar, provenance

from .text_corpus import CHUNK_BYTES, codec_name, read_text, Vocabulary
from .text_model import CharModel, put_rows, reset_rows, start_id, take_rows, zero_state

LN2 = float(np.log(2))
SEGMENT_BYTES = 1 << 15  # 32 KB: even a 100 KB file is scored as a few streams side by side
WARMUP_BYTES = 2048
ROW_GROUP_LINES = 1 << 16


# ------------------------------------------------------------- the scorer
@dataclass
class Stream:
    """A text to score: its ids in chunks, of which the first ``n_warmup`` are context only."""

    key: int
    chunks: Iterator[np.ndarray]
    first_input: int  # the id fed before the first character
    n_warmup: int = 0


class _Feed:
    """Cuts a stream into (inputs, targets, scored) pieces of at most ``n`` characters."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.buffer = np.empty(0, np.intp)
        self.previous = stream.first_input
        self.warmup_left = stream.n_warmup

    def _fill(self, n: int) -> None:
        parts = [self.buffer]
        size = len(self.buffer)
        while size < n:
            chunk = next(self.stream.chunks, None)
            if chunk is None:
                break
            parts.append(np.asarray(chunk, np.intp))
            size += len(chunk)
        self.buffer = np.concatenate(parts) if len(parts) > 1 else self.buffer

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._fill(n)
        targets, self.buffer = self.buffer[:n], self.buffer[n:]
        inputs = np.concatenate([[self.previous], targets[:-1]]) if len(targets) else targets
        if len(targets):
            self.previous = int(targets[-1])
        scored = np.arange(len(targets)) >= self.warmup_left
        self.warmup_left = max(0, self.warmup_left - len(targets))
        return inputs, targets, scored

    @property
    def done(self) -> bool:
        self._fill(1)
        return len(self.buffer) == 0


def score_streams(model: CharModel, streams: Iterable[Stream], batch: int = 32, chunk: int = 256
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray, bool]]:
    """For each chunk of each stream: ``(key, targets, nats per target, stream_done)``, scored characters only.

    Chunks of one stream come in order; streams interleave.
    """
    pending = iter(streams)
    feeds: list[_Feed | None] = [None] * batch
    state = zero_state(model, batch)
    inputs = np.zeros((chunk, batch), np.intp)
    targets = np.zeros((chunk, batch), np.intp)
    model.eval()
    with seqdl.no_grad():
        while True:
            fresh = []
            for row in range(batch):
                while feeds[row] is None or feeds[row].done:
                    if feeds[row] is not None:  # an empty stream: report it done
                        yield feeds[row].stream.key, np.empty(0, np.intp), np.empty(0, np.float32), True
                        feeds[row] = None
                    stream = next(pending, None)
                    if stream is None:
                        break
                    feeds[row] = _Feed(stream)
                    fresh.append(row)
            active = [row for row in range(batch) if feeds[row] is not None]
            if not active:
                return
            reset_rows(state, fresh)
            pieces = {}
            inputs[:] = 0
            for row in active:
                x, y, scored = feeds[row].take(chunk)
                inputs[: len(x), row], targets[: len(y), row] = x, y
                pieces[row] = (y, scored)
            if len(active) == batch:
                logits, state = model(inputs, state)
                losses = _nats(logits.data, targets)
            else:  # run only the rows still going: the last streams of a run must not pay for a full batch
                rows = np.array(active)
                logits, rows_state = model(inputs[:, rows], take_rows(state, rows))
                put_rows(state, rows, rows_state)
                losses = np.zeros((chunk, batch))
                losses[:, rows] = _nats(logits.data, targets[:, rows])
            for row in active:
                y, scored = pieces[row]
                feed = feeds[row]
                done = feed.done
                yield feed.stream.key, y[scored], losses[: len(y), row][scored], done
                if done:
                    feeds[row] = None


def _nats(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log p(target) for every position: (T, B, V) logits and (T, B) ids -> (T, B) float64."""
    top = logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return (lse - picked).astype(np.float64)


# ------------------------------------------------- arrays (validation split)
def array_streams(data: np.ndarray, start: int, end: int, pieces: int, warmup: int, max_chars: int | None,
                  first_input: int) -> list[Stream]:
    """Streams over ``data[start:end]``: ``pieces`` contiguous parts (evenly spaced ones if more than
    ``max_chars``), each warmed up on the ``warmup`` ids before it."""
    total = end - start
    pieces = max(1, min(pieces, total))
    length = total if max_chars is None or total <= max_chars else max_chars
    piece = -(-length // pieces)
    spacing = total / pieces if length < total else piece
    streams = []
    for i in range(pieces):
        lo = start + int(i * spacing)
        hi = min(lo + piece, end)
        if hi <= lo:
            continue
        w = max(0, lo - warmup)
        ids = np.asarray(data[w:hi], np.intp)
        first = int(data[w - 1]) if w > 0 else first_input
        streams.append(Stream(key=i, chunks=iter([ids]), first_input=first, n_warmup=lo - w))
    return streams


def mean_nats(model: CharModel, streams: list[Stream], batch: int = 16, chunk: int = 256) -> float:
    """Mean nats per scored character over all ``streams``."""
    total, count = 0.0, 0
    for _, _, nats, _ in score_streams(model, streams, batch, chunk):
        total += float(nats.sum())
        count += len(nats)
    return total / max(count, 1)


# ------------------------------------------------------------------ files
@dataclass
class Segment:
    """A byte range of a file scored as one stream (``end`` None: to the end of the file)."""

    path: Path
    start: int
    end: int | None
    first_line: int  # number of lines before ``start``


def plan_segments(path: Path, encoding: str, segment_bytes: int = SEGMENT_BYTES) -> list[Segment]:
    """Cut a plain file at line starts into pieces of about ``segment_bytes``; gzip and UTF-16/32 files stay whole."""
    size = path.stat().st_size
    if size <= 2 * segment_bytes or is_gzip(path) or codec_name(encoding).startswith(("utf-16", "utf-32")):
        return [Segment(path, 0, None, 0)]
    cuts: list[tuple[int, int]] = []  # (byte after a newline, newlines before it)
    newlines, offset, target = 0, 0, segment_bytes
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            search = max(target - offset, 0)
            while (hit := block.find(b"\n", search)) >= 0 and offset + hit + 1 < size:
                cut = offset + hit + 1
                cuts.append((cut, newlines + block.count(b"\n", 0, hit + 1)))
                target = cut + segment_bytes
                search = target - offset
                if search >= len(block):
                    break
            newlines += block.count(b"\n")
            offset += len(block)
    bounds = [(0, 0)] + cuts
    return [Segment(path, start, bounds[i + 1][0] if i + 1 < len(bounds) else None, lines)
            for i, (start, lines) in enumerate(bounds)]


def _segment_stream(key: int, segment: Segment, vocab: Vocabulary, encoding: str, errors: str,
                    warmup_bytes: int) -> Stream:
    """A stream over a segment, warmed up on the whole lines of the ``warmup_bytes`` before it."""
    newline = start_id(vocab)
    warm = np.empty(0, np.intp)
    if segment.start > 0:
        lo = max(0, segment.start - warmup_bytes)
        with open(segment.path, "rb") as handle:
            handle.seek(lo)
            head = handle.read(segment.start - lo)
        if lo > 0:  # start on a whole line, so decoding starts on a character boundary
            newline_at = head.find(b"\n")
            lo = segment.start if newline_at < 0 else lo + newline_at + 1
        text = "".join(read_text(segment.path, encoding, errors, start=lo, end=segment.start))
        warm = vocab.encode(text).astype(np.intp)

    def chunks() -> Iterator[np.ndarray]:
        yield warm
        for text in read_text(segment.path, encoding, errors, start=segment.start, end=segment.end):
            yield vocab.encode(text)

    return Stream(key=key, chunks=chunks(), first_input=newline, n_warmup=len(warm))


@dataclass
class FileScore:
    path: Path
    nats: float = 0.0
    characters: int = 0
    unknown: int = 0
    lines: int = 0

    def record(self) -> dict:
        """JSON-able summary; an empty file has no nats/char (null)."""
        nats = self.nats / self.characters if self.characters else None
        return {"file": str(self.path), "characters": self.characters, "nats_per_char": nats,
                "bits_per_char": None if nats is None else nats / LN2, "unknown_chars": self.unknown}


@dataclass
class _LineCounter:
    """Per-line sums for one stream; a line's characters include its newline."""

    file: str
    next_line: int  # 1-based number of the line in progress
    nats: float = 0.0
    chars: int = 0
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, targets: np.ndarray, nats: np.ndarray, newline: int, final: bool) -> int:
        if not len(targets):
            return self._close(final)
        is_nl = targets == newline
        line_of = np.cumsum(is_nl) - is_nl
        sums = np.bincount(line_of, weights=nats)
        counts = np.bincount(line_of)
        sums[0] += self.nats
        counts[0] += self.chars
        complete = int(is_nl.sum())
        if complete:
            numbers = np.arange(self.next_line, self.next_line + complete)
            self.rows.append((numbers, counts[:complete], sums[:complete]))
            self.next_line += complete
        self.nats, self.chars = (float(sums[complete]), int(counts[complete])) if len(sums) > complete else (0.0, 0)
        return complete + self._close(final)

    def _close(self, final: bool) -> int:
        if final and self.chars:
            self.rows.append((np.array([self.next_line]), np.array([self.chars]), np.array([self.nats])))
            self.next_line += 1
            self.nats, self.chars = 0.0, 0
            return 1
        return 0

    def take_rows(self) -> pa.Table | None:
        if not self.rows:
            return None
        numbers, chars, sums = (np.concatenate(parts) for parts in zip(*self.rows))
        self.rows = []
        return pa.table({
            "file": pa.array([self.file] * len(numbers), pa.string()),
            "line_number": pa.array(numbers, pa.int64()),
            "characters": pa.array(chars, pa.int64()),
            "nats_per_char": pa.array(sums / np.maximum(chars, 1), pa.float64()),
        })

    def pending_rows(self) -> int:
        return sum(len(r[0]) for r in self.rows)


LINE_SCHEMA = pa.schema([("file", pa.string()), ("line_number", pa.int64()), ("characters", pa.int64()),
                         ("nats_per_char", pa.float64())])


def score_files(model: CharModel, vocab: Vocabulary, paths: list[Path], encoding: str = "utf-8",
                errors: str = "strict", per_line_out: Path | None = None, provenance_meta: dict | None = None,
                batch: int = 32, chunk: int = 256, segment_bytes: int = SEGMENT_BYTES,
                warmup_bytes: int = WARMUP_BYTES, quiet: bool = False) -> list[FileScore]:
    """nats/char of each file; with ``per_line_out``, a Parquet row per line (written in row groups)."""
    segments = [s for path in paths for s in plan_segments(path, encoding, segment_bytes)]
    scores = {path: FileScore(path) for path in paths}
    newline = start_id(vocab)
    streams = (_segment_stream(i, s, vocab, encoding, errors, warmup_bytes) for i, s in enumerate(segments))
    counters: dict[int, _LineCounter] = {}
    total_bytes = sum(p.stat().st_size for p in paths)
    with progress_bar(quiet, "bytes") as progress, _line_writer(per_line_out, provenance_meta or {}) as writer:
        task = progress.add_task("scoring", total=total_bytes, status="")
        for key, targets, nats, done in score_streams(model, streams, batch, chunk):
            segment = segments[key]
            score = scores[segment.path]
            score.nats += float(nats.sum())
            score.characters += len(targets)
            score.unknown += int(np.count_nonzero(targets == 0))
            progress.advance(task, len(targets))  # characters approximate bytes for a progress bar
            if writer is not None:
                counter = counters.setdefault(key, _LineCounter(str(segment.path), segment.first_line + 1))
                score.lines += counter.add(targets, nats, newline, done)
                if done or counter.pending_rows() >= ROW_GROUP_LINES:
                    writer.add(key, counter.take_rows(), done)
            if done:
                counters.pop(key, None)
    return [scores[p] for p in paths]


class _OrderedRows:
    """Writes per-line rows in file and line order, in row groups of about ``ROW_GROUP_LINES`` rows.

    Segments run side by side and finish out of order; the rows of a segment
    wait until every segment before it is written. (One row group per segment
    would make thousands of tiny row groups: a footer that grows with the input
    and slow readers.)
    """

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self.writer = writer
        self.next_key = 0  # the first segment not yet written completely
        self.waiting: dict[int, list[pa.Table]] = {}
        self.finished: set[int] = set()
        self.buffer: list[pa.Table] = []
        self.buffered = 0

    def add(self, key: int, table: pa.Table | None, done: bool) -> None:
        if table is not None:
            self.waiting.setdefault(key, []).append(table)
        if done:
            self.finished.add(key)
        while self.next_key in self.waiting or self.next_key in self.finished:
            for part in self.waiting.pop(self.next_key, []):
                self.buffer.append(part)
                self.buffered += part.num_rows
            if self.next_key not in self.finished:
                break
            self.finished.remove(self.next_key)
            self.next_key += 1
        if self.buffered >= ROW_GROUP_LINES:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.writer.write_table(pa.concat_tables(self.buffer))
            self.buffer, self.buffered = [], 0


@contextmanager
def _line_writer(out: Path | None, metadata: dict[str, str]) -> Iterator["_OrderedRows | None"]:
    """A Parquet writer to a temp file that is renamed into place only if scoring completes."""
    if out is None:
        yield None
        return
    with atomic_path(out) as temp:
        with pq.ParquetWriter(temp, LINE_SCHEMA.with_metadata(metadata)) as writer:
            rows = _OrderedRows(writer)
            yield rows
            rows.flush()


def evaluate_files(model_path: Path, paths: list[Path], encoding: str, errors: str, per_line_out: Path | None,
                   params: dict, command: str, quiet: bool) -> tuple[list[dict], dict]:
    """Score files with the model at ``model_path``: one record per file and a summary record."""
    from .text_model import load_text_model

    model, vocab, _ = load_text_model(model_path)
    meta = provenance(command, params, paths, model_path) if per_line_out is not None else None
    started = time.perf_counter()
    scores = score_files(model, vocab, paths, encoding, errors, per_line_out, meta, quiet=quiet)
    seconds = time.perf_counter() - started
    records = [s.record() for s in scores]
    nats = sum(s.nats for s in scores)
    chars = sum(s.characters for s in scores)
    summary = {"files": len(scores), "characters": chars, "nats_per_char": nats / max(chars, 1),
               "bits_per_char": nats / max(chars, 1) / LN2, "unknown_chars": sum(s.unknown for s in scores),
               "seconds": seconds, "chars_per_second": chars / max(seconds, 1e-9), "model": str(model_path)}
    if per_line_out is not None:
        summary["lines"] = sum(s.lines for s in scores)
        summary["out"] = str(per_line_out)
    return records, summary
