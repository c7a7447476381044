"""The shipped DNA model on real genomes (slices, to stay fast): accuracy regressions show up here first.

Full-genome figures: ``python -m benchmarks.scan``.
"""
from __future__ import annotations

import pytest

from pipelines.dna_eval import evaluate
from pipelines.dna_model import default_model_path

pytestmark = pytest.mark.skipif(not default_model_path().exists(), reason="shipped model not built")


def test_held_out_ecoli_slice(shared_data):
    genomes = shared_data / "genomes"
    result = evaluate(default_model_path(), genomes / "GCF_000005845.2_ASM584v2_genomic.fna",
                      genomes / "GCF_000005845.2_ASM584v2_genomic.gff", ["NC_000913.3:4000000-4100000"])
    assert result["bases"] == 100_000
    assert result["genes_f1"] > 0.95 and result["three_prime_sensitivity"] > 0.88
    assert result["exact_gene_sensitivity"] > 0.8 and result["exact_gene_precision"] > 0.8
    assert 0.85 < result["five_prime_accuracy"] <= 1.0
    assert result["bits_per_base"] < 1.9


def test_never_seen_genome_slice(shared_data):
    genomes = shared_data / "genomes"
    result = evaluate(default_model_path(), genomes / "Haemophilus_influenzae_Rd_KW20.fna",
                      genomes / "Haemophilus_influenzae_Rd_KW20.gb", ["NC_000907:0-100000"])
    assert result["genes_f1"] > 0.9
