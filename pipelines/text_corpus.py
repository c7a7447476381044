"""Text corpora for character models: streaming decode, vocabulary, a memory-mapped id cache, windows.

A corpus is one or more text files (plain or gzip) read in chunks, so a multi-GB
corpus never sits in memory as a Python string:

1. :func:`read_text` decodes a file chunk by chunk with an incremental decoder;
   invalid bytes are reported with their byte offset (or replaced with U+FFFD
   when asked), and a NUL byte marks a binary file.
2. A first pass counts every code point (:func:`count_characters`); the
   vocabulary (:class:`Vocabulary`) is every character seen at least
   ``min_count`` times, plus the unknown symbol U+FFFD at id 0 for the rest.
3. A second pass writes the ids into a ``.npy`` file beside the model (uint8,
   uint16 or uint32, whichever fits the vocabulary), which training then
   memory-maps (:func:`map_ids`); a JSON sidecar records which inputs and settings it encodes, so
   the next run reuses it.

The last ``val_fraction`` of the text is the validation split, as in char-rnn
and nanoGPT; training draws random windows from the rest (:meth:`Corpus.windows`).
"""
from __future__ import annotations

import codecs
import functools
import json
import mmap
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from seqdl.errors import SeqdlError
from seqdl.io import atomic_open, gzip_errors, open_input, progress_bar, stored_file

UNKNOWN = "\ufffd"  # id 0: rare characters, characters outside the vocabulary, and bytes replaced by --errors replace
N_CODEPOINTS = 0x110000
CHUNK_BYTES = 1 << 22
CACHE_FORMAT = 1
ERROR_MODES = ("strict", "replace")


# ------------------------------------------------------------------ reading
def codec_name(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise SeqdlError(f"unknown text encoding {encoding!r} (--encoding)") from None


def read_text(path: Path, encoding: str = "utf-8", errors: str = "strict", start: int = 0, end: int | None = None,
              chunk_bytes: int = CHUNK_BYTES, on_bytes: Callable[[int], None] | None = None) -> Iterator[str]:
    """Decoded text of ``path`` in chunks of about ``chunk_bytes``.

    ``start``/``end`` select a byte range of a plain file (the caller aligns them
    to character boundaries, e.g. just after a newline). ``on_bytes`` is called
    with the number of file bytes consumed (compressed bytes for gzip), for
    progress bars. Raises :class:`SeqdlError` naming the byte offset of invalid
    input, a NUL byte (binary file), or a corrupt gzip stream.
    """
    if errors not in ERROR_MODES:
        raise SeqdlError(f"--errors must be one of {', '.join(ERROR_MODES)}, not {errors!r}")
    codec = codec_name(encoding)
    check_nul = not codec.startswith(("utf-16", "utf-32"))  # only these encodings put NUL bytes in text
    decoder = codecs.getincrementaldecoder(codec)(errors)
    stream = open_input(path, "a text file")
    raw = stored_file(stream)
    offset = start  # file offset (uncompressed) of the next byte to decode
    last_raw = 0
    with stream, gzip_errors(path):
        if start:
            stream.seek(start)
        while True:
            size = chunk_bytes if end is None else min(chunk_bytes, end - offset)
            data = stream.read(size) if size > 0 else b""
            if check_nul and (nul := data.find(b"\x00")) >= 0:
                raise SeqdlError(f"looks like a binary file (NUL byte at byte offset {offset + nul}), not text",
                                 str(path))
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                bad = offset - pending + exc.start
                raise SeqdlError(f"invalid {exc.encoding} at byte offset {bad} ({exc.reason}); use --errors replace "
                                 f"to substitute U+FFFD, or --encoding to name the file's encoding",
                                 str(path)) from None
            offset += len(data)
            if on_bytes is not None:
                position = raw.tell()
                on_bytes(position - last_raw)
                last_raw = position
            if text:
                yield text
            if not data:
                return


# --------------------------------------------------------------- vocabulary
def codepoints(text: str) -> np.ndarray:
    """The code points of ``text`` as uint32, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def count_characters(texts: Iterator[str]) -> np.ndarray:
    """How often each code point occurs: an int64 array of length 0x110000."""
    counts = np.zeros(N_CODEPOINTS, dtype=np.int64)
    for text in texts:
        counts += np.bincount(codepoints(text), minlength=N_CODEPOINTS)
    return counts


def id_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned integer type that holds every id."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocabulary of {vocab_size} characters is too large")


@dataclass(frozen=True)
class Vocabulary:
    """Characters and their ids; id 0 is the unknown symbol U+FFFD."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.chars or self.chars[0] != UNKNOWN:
            raise ValueError("a vocabulary starts with the unknown symbol U+FFFD")
        if any(len(c) != 1 for c in self.chars) or len(set(self.chars)) != len(self.chars):
            raise ValueError("a vocabulary is a list of distinct single characters")

    @classmethod
    def from_counts(cls, counts: np.ndarray, min_count: int = 1) -> tuple["Vocabulary", dict[str, int]]:
        """Every character seen at least ``min_count`` times; also the rarer ones (which map to unknown)."""
        seen = np.flatnonzero(counts)
        keep = [int(cp) for cp in seen if counts[cp] >= min_count and cp != ord(UNKNOWN)]
        rare = {chr(cp): int(counts[cp]) for cp in seen if counts[cp] < min_count and cp != ord(UNKNOWN)}
        return cls((UNKNOWN, *map(chr, keep))), rare

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        return id_dtype(len(self.chars))

    @cached_property
    def code_points(self) -> np.ndarray:
        """The code point of each id (uint32)."""
        return np.array([ord(c) for c in self.chars], dtype=np.uint32)

    @cached_property
    def _lookup(self) -> np.ndarray:
        """Code point -> id for the whole Unicode range (unknown everywhere else): encoding is one gather."""
        table = np.zeros(N_CODEPOINTS, dtype=self.dtype)
        table[self.code_points] = np.arange(len(self.chars), dtype=self.dtype)
        return table

    def encode(self, text: str) -> np.ndarray:
        return self._lookup[codepoints(text)]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self.code_points[np.asarray(ids, dtype=np.intp)].tobytes().decode("utf-32-le")

    def unknown_in(self, text: str) -> list[str]:
        """Distinct characters of ``text`` that are not in the vocabulary (U+FFFD itself counts as known)."""
        cps = np.unique(codepoints(text))
        return [chr(cp) for cp in cps[(self._lookup[cps] == 0) & (cps != ord(UNKNOWN))]]


def describe_chars(chars: dict[str, int] | Sequence[str], limit: int = 12) -> str:
    """A short, printable list of characters (escaped, so control characters stay on one line)."""
    items = list(chars)
    shown = ", ".join(repr(c) for c in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# ------------------------------------------------------------------- corpus
@dataclass
class Corpus:
    """The encoded text (memory-mapped), its vocabulary and the train/validation boundary."""

    data: np.ndarray
    vocab: Vocabulary
    n_train: int
    rare: dict[str, int] = field(default_factory=dict)  # characters below the count floor, mapped to unknown
    n_unknown: int = 0  # characters encoded as unknown (rare ones and U+FFFD from --errors replace)
    mapping: mmap.mmap | None = None  # the memory map behind ``data``, if it is one

    @property
    def train(self) -> np.ndarray:
        return self.data[: self.n_train]

    @property
    def val(self) -> np.ndarray:
        return self.data[self.n_train:]

    def release(self) -> None:
        """Drop the pages of the memory-mapped ids from this process (they stay in the OS page cache).

        Random windows touch pages all over the file, and the kernel maps whole
        (large) page-cache folios around each one: measured on ext4, one batch of
        64 windows mapped 12-44 MB, so a few dozen steps would count a 1 GB corpus in
        resident memory. Dropping them costs well under a millisecond.
        """
        if self.mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
            self.mapping.madvise(mmap.MADV_DONTNEED)

    def windows(self, rng: np.random.Generator, batch: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` random training windows as (inputs, targets), each (seq_len, batch) of ids."""
        starts = rng.integers(0, self.n_train - seq_len, size=batch)
        rows = np.asarray(self.data[starts[:, None] + np.arange(seq_len + 1)], dtype=np.intp).T
        self.release()  # the windows are copied out
        return rows[:-1], rows[1:]


@dataclass(frozen=True)
class CorpusOptions:
    encoding: str = "utf-8"
    errors: str = "strict"
    min_count: int = 2
    val_fraction: float = 0.1


def cache_paths(model_path: Path) -> tuple[Path, Path]:
    """Where the encoded corpus of a model lives: ``<model>.corpus.npy`` and its ``.corpus.json`` key."""
    stem = model_path.with_suffix("")
    return stem.with_name(stem.name + ".corpus.npy"), stem.with_name(stem.name + ".corpus.json")


def _input_key(paths: Sequence[Path]) -> list[dict]:
    """What identifies the inputs without reading them again: path, size and modification time."""
    key = []
    for path in paths:
        stat = path.stat()
        key.append({"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return key


def _cache_key(paths: Sequence[Path], options: CorpusOptions, vocab: Vocabulary | None) -> dict:
    key = {"format": CACHE_FORMAT, "inputs": _input_key(paths), "encoding": codec_name(options.encoding),
           "errors": options.errors}
    if vocab is None:
        key["min_count"] = options.min_count
    else:
        key["vocab"] = list(vocab.chars)
    return key


def map_ids(path: Path) -> tuple[np.ndarray, mmap.mmap]:
    """A read-only view of a 1-D ``.npy`` file through an mmap we own, so its pages can be released."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(handle)
        if len(shape) != 1 or dtype.kind != "u":
            raise ValueError(f"{path} does not hold a 1-D array of ids")
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(mapping, dtype=dtype, count=shape[0], offset=handle.tell()), mapping


def _read_cache(data_path: Path, key_path: Path, key: dict) -> tuple[np.ndarray, mmap.mmap, dict] | None:
    """The cached ids if the sidecar says they encode exactly these inputs and settings."""
    try:
        saved = json.loads(key_path.read_text(encoding="utf-8"))
        if saved.get("key") != key:
            return None
        data, mapping = map_ids(data_path)
    except (OSError, ValueError):
        return None
    if data.shape[0] != saved.get("n_chars"):
        return None
    return data, mapping, saved


def load_corpus(paths: Sequence[Path], model_path: Path, options: CorpusOptions, vocab: Vocabulary | None = None,
                window: int = 1, quiet: bool = False) -> Corpus:
    """Encode ``paths`` into the cache beside ``model_path`` (or reuse it) and split off validation.

    With ``vocab`` (resuming a model), the text is encoded with that vocabulary;
    otherwise the vocabulary is built from the text with ``options.min_count``.
    A corpus whose training split is shorter than ``window + 1`` characters (or
    whose validation split is empty) is refused before anything is written.
    """
    if not paths:
        raise SeqdlError("no input files given")
    if not 0 <= options.val_fraction < 1:
        raise SeqdlError(f"--val-fraction must be in [0, 1), not {options.val_fraction}")
    if options.min_count < 1:
        raise SeqdlError(f"--min-char-count must be at least 1, not {options.min_count}")
    data_path, key_path = cache_paths(model_path)
    key = _cache_key(paths, options, vocab)
    cached = _read_cache(data_path, key_path, key)
    split = functools.partial(_split, paths=paths, val_fraction=options.val_fraction, window=window)
    if cached is None:
        _encode_to_cache(paths, options, vocab, data_path, key_path, key, split, quiet)
        cached = _read_cache(data_path, key_path, key)
        assert cached is not None, "the cache just written does not read back"
    data, mapping, saved = cached
    vocab = Vocabulary(tuple(saved["vocab"]))
    return Corpus(data=data, vocab=vocab, n_train=split(len(data)), rare=saved["rare"], n_unknown=saved["n_unknown"],
                  mapping=mapping)


def _split(n_chars: int, paths: Sequence[Path], val_fraction: float, window: int) -> int:
    """The length of the training split; refuses a corpus too short for a window or for validation."""
    n_val = int(round(n_chars * val_fraction))
    n_train = n_chars - n_val
    where = _where(paths)
    if n_train < window + 1:
        raise SeqdlError(f"is too short: {n_chars} characters leave {n_train} for training, fewer than one window "
                         f"of --seq-len {window} plus 1 (give more text or a smaller --seq-len)", where)
    if val_fraction > 0 and n_val == 0:
        raise SeqdlError(f"is too short: {n_chars} characters leave none for validation (give more text, or "
                         f"--val-fraction 0 to train without validation)", where)
    return n_train


def _where(paths: Sequence[Path]) -> str:
    return str(paths[0]) if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more inputs)"


def _texts(paths: Sequence[Path], options: CorpusOptions, advance: Callable[[int], None]) -> Iterator[str]:
    for path in paths:
        yield from read_text(path, options.encoding, options.errors, on_bytes=advance)


def _encode_to_cache(paths: Sequence[Path], options: CorpusOptions, vocab: Vocabulary | None, data_path: Path,
                     key_path: Path, key: dict, split: Callable[[int], int], quiet: bool) -> None:
    """Two streaming passes: count characters (vocabulary, length), then write the ids to a ``.npy``."""
    total_bytes = sum(p.stat().st_size for p in paths)
    with progress_bar(quiet, "bytes") as progress:
        task = progress.add_task("counting characters", total=total_bytes, status="")

        def advance(n_bytes: int) -> None:
            progress.advance(task, n_bytes)

        counts = count_characters(_texts(paths, options, advance))
        _check_has_text(paths, counts)
        if vocab is None:
            vocab, rare = Vocabulary.from_counts(counts, options.min_count)
        else:
            rare = {}
        n_chars = int(counts.sum())
        split(n_chars)
        progress.update(task, description="encoding", completed=0)
        # written with plain writes, not through a memory map: mapped dirty pages would count the whole corpus
        # in this process's resident memory
        header = {"descr": np.lib.format.dtype_to_descr(vocab.dtype), "fortran_order": False, "shape": (n_chars,)}
        with atomic_open(data_path, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            for text in _texts(paths, options, advance):
                handle.write(vocab.encode(text).astype(vocab.dtype, copy=False).tobytes())
    n_unknown = int(counts.sum() - counts[vocab.code_points[1:]].sum())
    record = {"key": key, "vocab": list(vocab.chars), "rare": rare, "n_chars": n_chars, "n_unknown": n_unknown}
    with atomic_open(key_path) as handle:
        json.dump(record, handle, ensure_ascii=False)


def _check_has_text(paths: Sequence[Path], counts: np.ndarray) -> None:
    where = _where(paths)
    if counts.sum() == 0:
        raise SeqdlError("is empty: there is no text to train on", where)
    seen = np.flatnonzero(counts)
    if all(chr(cp).isspace() for cp in seen):
        raise SeqdlError("holds only whitespace: there is no text to train on", where)
