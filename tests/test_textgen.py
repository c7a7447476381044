"""Text corpus, vocabulary, model, sampling and scoring (library level; the CLI is in test_textgen_cli.py)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import seqdl
from seqdl.errors import SeqdlError
from pipelines import text_eval, text_model
from pipelines.text_corpus import (
    UNKNOWN, CorpusOptions, Vocabulary, count_characters, load_corpus, read_text,
)
from pipelines.text_model import CharModel, ModelConfig, SamplingOptions

MIXED = "Ünïcödé: naïve café, Ελληνικά, русский, 中文字符, emoji 🎭🌍, combining e\u0301, tab\tand\r\nCRLF.\n"


def corpus_of(tmp_path: Path, text: str, **options) -> tuple:
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path, load_corpus([path], tmp_path / "model.safetensors", CorpusOptions(**options), quiet=True)


# ---------------------------------------------------------------- vocabulary
text_strategy = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200)


@settings(max_examples=60, deadline=None)
@given(text_strategy)
def test_vocabulary_round_trips_every_character(text):
    vocab, rare = Vocabulary.from_counts(count_characters(iter([text])), min_count=1)
    assert not rare
    ids = vocab.encode(text)
    expected_unknown = text.count(UNKNOWN)
    assert int((ids == 0).sum()) == expected_unknown  # only U+FFFD itself maps to the unknown id
    assert vocab.decode(ids) == text


def test_cache_round_trips_non_ascii_and_is_reused(tmp_path):
    text = MIXED * 50
    path, corpus = corpus_of(tmp_path, text, min_count=1, val_fraction=0.1)
    assert corpus.vocab.decode(corpus.data) == text
    assert corpus.data.dtype == np.uint8 and corpus.mapping is not None and not corpus.data.flags.writeable
    assert set(corpus.vocab.chars[1:]) == set(text)
    assert len(corpus.val) == round(len(text) * 0.1) and corpus.n_train + len(corpus.val) == len(text)
    npy, sidecar = tmp_path / "model.corpus.npy", tmp_path / "model.corpus.json"
    assert npy.is_file() and json.loads(sidecar.read_text())["n_chars"] == len(text)
    before = npy.stat().st_mtime_ns
    again = load_corpus([path], tmp_path / "model.safetensors", CorpusOptions(min_count=1), quiet=True)
    assert npy.stat().st_mtime_ns == before and np.array_equal(again.data, corpus.data)


def test_large_vocabulary_uses_wider_ids(tmp_path):
    text = "".join(chr(0x4E00 + i) for i in range(400)) * 3
    _, corpus = corpus_of(tmp_path, text, min_count=1)
    assert corpus.data.dtype == np.uint16 and corpus.vocab.decode(corpus.data) == text


def test_rare_characters_map_to_unknown_and_are_reported(tmp_path):
    text = "abcabcabc" * 20 + "$"
    _, corpus = corpus_of(tmp_path, text, min_count=2)
    assert corpus.rare == {"$": 1} and "$" not in corpus.vocab.chars
    assert corpus.data[-1] == 0 and corpus.n_unknown == 1


def test_gzip_reads_like_plain(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_text(MIXED * 20, encoding="utf-8")
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert "".join(read_text(packed)) == "".join(read_text(plain)) == MIXED * 20


def test_invalid_utf8_names_the_byte_offset_across_chunks(tmp_path):
    good = ("é" * 10).encode()  # 2-byte characters: chunks of 7 bytes split them
    path = tmp_path / "bad.txt"
    path.write_bytes(good + b"\xff" + good)
    with pytest.raises(SeqdlError, match="invalid utf-8 at byte offset 20"):
        "".join(read_text(path, chunk_bytes=7))
    replaced = "".join(read_text(path, errors="replace", chunk_bytes=7))
    assert replaced == "é" * 10 + UNKNOWN + "é" * 10
    truncated = tmp_path / "truncated.txt"
    truncated.write_bytes(good + "é".encode()[:1])
    with pytest.raises(SeqdlError, match="byte offset 20"):
        "".join(read_text(truncated, chunk_bytes=7))


def test_nul_bytes_mean_binary(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"text\x00\x01\x02")
    with pytest.raises(SeqdlError, match="binary file.*byte offset 4"):
        "".join(read_text(path))


# ----------------------------------------------------------------- sampling
def small_model(vocab_size: int = 12, cell: str = "gru") -> CharModel:
    seqdl.manual_seed(0)
    return CharModel(ModelConfig(vocab_size=vocab_size, cell=cell, hidden=16, layers=2, embed=8))


def test_distribution_top_k_top_p_and_temperature():
    logits = np.log(np.array([[0.1, 0.4, 0.3, 0.2]]))
    base = text_model.next_token_distribution(logits, SamplingOptions(temperature=1.0))
    assert base[0, 0] == 0 and base.sum() == pytest.approx(1)  # the unknown symbol is never drawn
    np.testing.assert_allclose(base[0, 1:], np.array([0.4, 0.3, 0.2]) / 0.9)
    top2 = text_model.next_token_distribution(logits, SamplingOptions(temperature=1.0, top_k=2))
    np.testing.assert_allclose(top2[0], [0, 4 / 7, 3 / 7, 0])
    nucleus = text_model.next_token_distribution(logits, SamplingOptions(temperature=1.0, top_p=0.5))
    np.testing.assert_allclose(nucleus[0], [0, 4 / 7, 3 / 7, 0])  # 0.44 < 0.5, so the second one is kept too
    cold = text_model.next_token_distribution(logits, SamplingOptions(temperature=0.01))
    assert cold[0, 1] > 0.999


def test_sampling_carries_state_like_a_full_rerun():
    """Sampling step by step with carried state draws what re-running the whole prefix every step draws."""
    model = small_model(cell="lstm")
    vocab = Vocabulary(tuple([UNKNOWN] + list("\nabcdefghij ")[:11]))
    options = SamplingOptions(length=25, temperature=1.0, top_k=6, num_samples=3)
    samples = text_model.generate(model, vocab, "abc", options, np.random.default_rng(5))
    assert len(samples) == 3 and all(len(s) == 25 for s in samples) and all(UNKNOWN not in s for s in samples)
    assert text_model.generate(model, vocab, "abc", options, np.random.default_rng(5)) == samples
    rng = np.random.default_rng(5)
    context = np.repeat(np.concatenate([[text_model.start_id(vocab)], vocab.encode("abc")])[:, None], 3, axis=1)
    with seqdl.no_grad():
        for _ in range(25):
            logits, _ = model(context)
            token = text_model.draw(text_model.next_token_distribution(logits.data[-1], options), rng)
            context = np.concatenate([context, token[None, :]])
    assert [vocab.decode(context[4:, b]) for b in range(3)] == samples


def test_prompt_of_unknown_characters_is_refused():
    vocab = Vocabulary((UNKNOWN, "a", "b"))
    ids, unknown = text_model.encode_prompt(vocab, "abz")
    assert list(ids) == [1, 2, 0] and unknown == ["z"]
    with pytest.raises(SeqdlError, match="outside the model's vocabulary"):
        text_model.encode_prompt(vocab, "zzz")


# ------------------------------------------------------------------ scoring
def test_segmented_scoring_matches_one_stream_and_lines_add_up(tmp_path):
    model = small_model(cell="lstm")
    vocab = Vocabulary(tuple([UNKNOWN] + list("\nabcdefghi ")))
    rng = np.random.default_rng(0)
    lines = ["".join(rng.choice(list("abcdefghi "), size=rng.integers(0, 40))) for _ in range(3000)]
    text = "\n".join(lines) + "\nend without newline"
    path = tmp_path / "doc.txt"
    path.write_text(text)
    whole = text_eval.score_files(model, vocab, [path], segment_bytes=1 << 30, batch=1, quiet=True)[0]
    out = tmp_path / "lines.parquet"
    meta = {"seqdl.command": "test"}
    cut = text_eval.score_files(model, vocab, [path], per_line_out=out, provenance_meta=meta,
                                segment_bytes=4096, batch=8, chunk=64, quiet=True)[0]
    assert len(text_eval.plan_segments(path, "utf-8", 4096)) > 5
    assert whole.characters == cut.characters == len(text)
    assert cut.nats / cut.characters == pytest.approx(whole.nats / whole.characters, abs=2e-4)
    table = pq.read_table(out)
    assert table.schema.metadata[b"seqdl.command"] == b"test"
    rows = table.to_pylist()  # in line order although the segments finish out of order, in one row group
    assert [r["line_number"] for r in rows] == list(range(1, text.count("\n") + 2))
    assert pq.ParquetFile(out).num_row_groups == 1
    assert [r["characters"] for r in rows] == [len(line) + 1 for line in lines] + [len("end without newline")]
    total = sum(r["characters"] * r["nats_per_char"] for r in rows)
    assert total == pytest.approx(cut.nats, rel=1e-9)


def test_validation_streams_cover_the_split_once():
    data = np.arange(1000) % 7
    streams = text_eval.array_streams(data, 800, 1000, pieces=6, warmup=50, max_chars=None, first_input=0)
    scored = []
    for stream in streams:
        ids = np.concatenate(list(stream.chunks))
        scored.append(ids[stream.n_warmup:])
    assert np.array_equal(np.concatenate(scored), data[800:])
