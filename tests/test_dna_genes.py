"""The gene decoder (pipelines/dna_genes.py): candidates, start choice, the dynamic programme, self-training,
fitting, and its parameters' round trip through a model file."""
from __future__ import annotations

import json

import numpy as np

from pipelines.dna_genes import (FEATURES, START_FEATURES, TABLES, CallOptions, GeneCall, GeneModel, best_path,
                                 call_genes, codon_pair_sums, gene_model_of, prefix_sums, scores, strand_candidates,
                                 values)
from pipelines.dna_genes_fit import HEXAMER_WEIGHTS, fit_gene_model, store_gene_model
from pipelines.fasta import decode, encode, reverse_complement
from seqdl import checkpoint

RNG = np.random.default_rng(0)
CODONS = ["GCT", "AAA", "CTG", "GAA", "CGC", "ATC", "GGC", "CAG"]  # no start or stop codon among them
SD = "AGGAGG"


def body(codons: int) -> str:
    return "".join(RNG.choice(CODONS, codons))


def intergenic(n: int) -> str:
    return ("TAAT" * n)[:n]  # stops in every frame of both strands, no start codon


def probs_for(seq: str, genes: list[tuple[int, int, int]]) -> np.ndarray:
    """Confident network output: the genes' codon positions (strand-aware), non-coding elsewhere."""
    probs = np.full((2, 3, len(seq)), 0.01, np.float32)
    for start, end, strand in genes:
        positions = np.arange(end - start) % 3
        probs[strand, positions if strand == 0 else positions[::-1], np.arange(start, end)] = 0.95
    return probs


def simple_model(rbs_weight: float = 1.0) -> GeneModel:
    """A hand-made decoder for tests: coding evidence, an RBS preference for G/A upstream, a small bias."""
    weights = dict.fromkeys(FEATURES, 0.0)
    weights.update(coding=0.02, rbs=rbs_weight, motif=rbs_weight)
    counts = {"start_codon": np.array([[80.0, 15.0, 5.0], [50.0, 30.0, 20.0]]),
              "rbs": np.tile(np.array([[10.0, 1.0, 10.0, 1.0], [5.0, 5.0, 5.0, 5.0]])[:, None, :], (1, 17, 1)),
              "motif": np.ones((2, 256)), "hexamer": np.ones((2, 4096))}
    return GeneModel(tuple(weights[f] for f in FEATURES), -2.0, counts, prior=50.0)


def test_candidates_are_every_start_to_its_in_frame_stop():
    seq = encode("CCATGAAATTGAAAGCTTAACC")  # ATG at 2, TTG at 8, in frame; stop TAA at 17
    cands = strand_candidates(seq, np.zeros((3, len(seq)), np.float32), 9)
    assert sorted(zip(cands.start.tolist(), cands.end.tolist(), cands.codon.tolist())) == [(2, 20, 0), (8, 20, 2)]
    assert len(set(cands.stop.tolist())) == 1  # one ORF


def test_the_start_with_a_ribosome_binding_site_wins():
    # two in-frame starts 30 bp apart, coding signal over both; only the downstream one has an RBS
    upstream_start = "ATG" + body(9)
    gene = SD + "CCCCTA" + "ATG" + body(150) + "TAA"  # SD 6 bp before the ATG... then the gene
    seq = intergenic(60) + upstream_start + gene + intergenic(60)
    first = 60 + len(upstream_start) + 12
    probs = probs_for(seq, [(60, len(seq) - 60, 0)])
    calls = call_genes(encode(seq), probs, CallOptions(self_train=False), genes=simple_model(rbs_weight=2.0))
    assert [(c.start, c.strand, c.start_codon) for c in calls] == [(first, 0, "ATG")]


def test_genes_on_both_strands_are_called():
    gene = "ATG" + body(120) + "TAA"
    seq = intergenic(40) + gene + intergenic(40) + decode(reverse_complement(encode(gene))) + intergenic(40)
    plus = (40, 40 + len(gene))
    minus = (plus[1] + 40, plus[1] + 40 + len(gene))
    probs = probs_for(seq, [(*plus, 0), (*minus, 1)])
    calls = call_genes(encode(seq), probs, genes=simple_model())
    assert [(c.start, c.end, c.strand) for c in calls] == [(*plus, 0), (*minus, 1)]
    assert calls[1].five_prime == minus[1] - 1 and calls[1].three_prime == minus[0]


def test_the_programme_respects_overlap_limits():
    # a and b overlap by 50 bp on the same strand (allowed, up to 60); c overlaps b by 100 (not allowed)
    left = np.array([0, 950, 1900])
    right = np.array([1000, 2000, 3000])
    strand = np.array([0, 0, 0])
    chosen = best_path(left, right, strand, np.array([5.0, 5.0, 4.0]))
    assert chosen.tolist() == [0, 1]
    chosen = best_path(left, right, strand, np.array([5.0, 3.0, 4.0]))
    assert chosen.tolist() == [0, 2]
    # 5' to 5' on opposite strands (a on -, b on + starting inside a): never; 3' to 3' (a +, b -): up to 200
    assert best_path(np.array([0, 990]), np.array([1000, 2000]), np.array([1, 0]), np.array([5.0, 4.0])).tolist() == [0]
    assert best_path(np.array([0, 850]), np.array([1000, 2000]), np.array([0, 1]),
                     np.array([5.0, 4.0])).tolist() == [0, 1]
    assert best_path(np.array([0]), np.array([90]), np.array([0]), np.array([-1.0])).tolist() == []


def test_fitting_learns_the_start_signal_and_round_trips_through_a_model_file(tmp_path):
    # a synthetic genome: genes whose true start has an RBS, with a decoy start upstream in the same frame
    parts, genes, position = [], [], 0
    for _ in range(60):
        spacer = intergenic(int(RNG.integers(40, 80)))
        decoy = "ATG" + body(int(RNG.integers(5, 15)))
        gene = SD + "CCCCTA" + "ATG" + body(int(RNG.integers(100, 200))) + "TAA"
        start = position + len(spacer) + len(decoy) + 12
        parts += [spacer, decoy, gene]
        position += len(spacer) + len(decoy) + len(gene)
        genes.append((0, start, position - 1))
    seq = "".join(parts) + intergenic(50)
    ends = np.array(genes)
    probs = probs_for(seq, [(s - 40, t + 1, 0) for _, s, t in genes])  # coding signal begins before the start
    model = fit_gene_model([(encode(seq), probs, ends)])
    assert model.weights[FEATURES.index("rbs")] > 0 or model.weights[FEATURES.index("motif")] > 0
    assert model.weights[FEATURES.index("hexamer")] in HEXAMER_WEIGHTS
    other = fit_gene_model([(encode(seq), probs, ends)], also=[(encode(seq), probs, ends)])
    assert other.weights == model.weights and other.counts["hexamer"].sum() == model.counts["hexamer"].sum()
    calls = call_genes(encode(seq), probs, genes=model)
    exact = {(0, c.start, c.end - 1) for c in calls} & set(map(tuple, ends.tolist()))
    assert len(exact) >= 0.9 * len(genes)
    path = tmp_path / "m.safetensors"
    checkpoint.write_safetensors(path, {"w": np.zeros(2, np.float32)}, kind="dna", metadata={"seqdl.trained_on": "x"})
    store_gene_model(path, model)
    saved = checkpoint.load(path)
    assert saved.metadata["seqdl.trained_on"] == "x"
    again = gene_model_of(saved)
    assert again.weights == model.weights and again.bias == model.bias
    assert len(model.start_weights) == len(START_FEATURES) and again.start_weights == model.start_weights
    assert all(np.array_equal(again.counts[name], model.counts[name]) for name in TABLES)


def test_self_training_leaves_a_genome_with_few_genes_to_the_prior():
    gene = "ATG" + body(120) + "TAA"
    seq = intergenic(40) + gene + intergenic(40)
    probs = probs_for(seq, [(40, 40 + len(gene), 0)])
    with_self = call_genes(encode(seq), probs, CallOptions(self_train=True), genes=simple_model())
    without = call_genes(encode(seq), probs, CallOptions(self_train=False), genes=simple_model())
    assert with_self == without and len(with_self) == 1


def test_no_candidates_no_calls():
    assert call_genes(encode("ACGT"), np.zeros((2, 3, 4), np.float32), genes=simple_model()) == []
    assert call_genes(encode("N" * 300), np.zeros((2, 3, 300), np.float32), genes=simple_model()) == []


def test_genes_already_called_are_respected():
    # the streaming scan passes the final genes of earlier stretches as ``keep``: nothing may overlap them beyond
    # the limits, so a gene there is not called again (nor a rival to it)
    gene = "ATG" + body(120) + "TAA"
    seq = intergenic(40) + gene + intergenic(40)
    probs = probs_for(seq, [(40, 40 + len(gene), 0)])

    kept = GeneCall(40, 40 + len(gene), 0, 1.0, "ATG")
    assert call_genes(encode(seq), probs, genes=simple_model(), keep=[kept]) == []
    elsewhere = GeneCall(0, 30, 0, 1.0, "ATG")
    assert len(call_genes(encode(seq), probs, genes=simple_model(), keep=[elsewhere])) == 1


def test_prefix_sums_equal_a_running_sum_at_any_points():
    """Repeated points, 0, the very end, unsorted, booleans: each is the float64 sum of everything before it."""
    values = RNG.standard_normal(5_000).astype(np.float32)
    points = np.concatenate([[0, 5_000, 17, 17], RNG.integers(0, 5_001, 300)])
    running = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    np.testing.assert_allclose(prefix_sums(values, points), running[points], rtol=0, atol=1e-9)
    flags = values > 0
    assert prefix_sums(flags, np.array([5_000]))[0] == flags.sum()
    assert prefix_sums(values, np.array([0, 0])).tolist() == [0.0, 0.0]


def test_start_weights_choose_the_start_and_the_orf_is_scored_there():
    # one ORF with three in-frame starts (ATG at 0, 30 and 60); the score prefers the last (shortest) one, the start
    # weights the first (their distance from the ORF's first start counts against a start), so the ORF is scored
    # as a gene from the first, and the others lose their log-odds against it
    seq = encode("ATG" + body(9) + "ATG" + body(9) + "ATG" + body(100) + "TAA")
    probs = probs_for(decode(seq), [(60, len(seq), 0)])
    cands = strand_candidates(seq, probs[0], 90)
    assert cands.start.tolist() == [0, 30, 60] and cands.distance.tolist() == [0, 10, 20]
    model = simple_model()
    tables = model.tables()
    score = scores(cands, model, tables)
    assert np.argmax(score) == 2
    weights = dict.fromkeys(START_FEATURES, 0.0)
    weights["log_distance"] = -2.0
    chooser = GeneModel(model.weights, model.bias, model.counts, model.prior, start_weights=tuple(weights.values()))
    value = values(cands, chooser, tables)
    assert value[0] == score[0] < score.max() and value[1] < value[0] and value[2] < value[1]
    np.testing.assert_allclose(value - value[0], -2.0 * np.log1p(cands.distance))
    calls = call_genes(seq, probs, CallOptions(self_train=False), genes=chooser)
    assert [(c.start, c.end) for c in calls] == [(0, len(seq))]
    assert [(c.start, c.end) for c in call_genes(seq, probs, CallOptions(self_train=False), genes=model)] == \
        [(60, len(seq))]


def test_a_decoder_stored_without_start_weights_still_reads_and_scores_as_before():
    old = simple_model()
    text = old.to_json().replace(', "start_weights": []', "")
    assert "start_weights" not in text
    again = GeneModel.from_json(text)
    assert again.start_weights == ()
    seq = encode("ATG" + body(40) + "TAA")
    cands = strand_candidates(seq, probs_for(decode(seq), [(0, len(seq), 0)])[0], 90)
    np.testing.assert_array_equal(values(cands, again, again.tables()), scores(cands, again, again.tables()))


def test_codon_pair_sums_and_counts_equal_a_direct_count():
    # a gene's codon pairs start at its first base and every third one up to the pair that ends at the stop codon
    seq = RNG.integers(0, 4, 3_000).astype(np.uint8)
    seq[[5, 777, 2_000]] = 4  # N: no hexamer there
    cands = strand_candidates(seq, np.full((3, len(seq)), 0.3, np.float32), 90)
    assert len(cands) > 5
    per_base = RNG.standard_normal(len(seq))
    direct = [sum(per_base[p] for p in range(s, e - 8, 3)) for s, e in zip(cands.start, cands.end)]
    np.testing.assert_allclose(codon_pair_sums(per_base, cands.start, cands.end), direct, atol=1e-9)
    index = np.arange(0, len(cands), 2)
    counted = np.zeros(4 ** 6)
    for s, e in zip(cands.start[index], cands.end[index]):
        for p in range(s, e - 8, 3):
            if cands.hexamers[p] >= 0:
                counted[cands.hexamers[p]] += 1
    np.testing.assert_array_equal(cands.codon_pairs(index), counted)
    word = seq[10:16].astype(int)
    assert cands.hexamers[10] == int((word * 4 ** np.arange(5, -1, -1)).sum()) and cands.hexamers[0] == -1


def test_codon_usage_vouches_for_a_gene_but_never_vetoes_one():
    # two ORFs with the same (weak) network evidence: one spelt in the codon pairs the table favours, one in pairs
    # it disfavours; the first gains its log-odds, the second loses nothing
    favoured, other = "GCTAAA" * 30, "CGCATC" * 30
    seq = encode("ATG" + favoured + "TAA" + "CC" + "ATG" + other + "TAA")
    cands = strand_candidates(seq, np.full((3, len(seq)), 0.2, np.float32), 90)
    model = simple_model()
    table = np.zeros(4 ** 6)
    table[[cands.hexamers[3], cands.hexamers[6]]] = 1.0  # GCTAAA and AAAGCT: in-frame pairs of the first ORF
    table[[cands.hexamers[len(favoured) + 11], cands.hexamers[len(favoured) + 14]]] = -1.0
    tables = {**model.tables(), "hexamer": table}
    features = cands.features(tables)[:, FEATURES.index("hexamer")]
    first, second = cands.start == 0, cands.start == len(favoured) + 8
    assert features[first][0] == 2 * len(favoured) // 6 - 1 and features[second][0] == 0.0


def test_a_decoder_fitted_before_codon_usage_reads_with_its_weight_at_0():
    model = simple_model()
    stored = json.loads(model.to_json())
    stored["weights"] = stored["weights"][:-1]
    del stored["counts"]["hexamer"]
    again = GeneModel.from_json(json.dumps(stored))
    assert again.weights == model.weights[:-1] + (0.0,) and again.counts["hexamer"].shape == (2, 4 ** 6)
