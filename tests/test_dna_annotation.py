"""GFF3 / GenBank CDS -> per-base strand and codon-position labels (joins, phase, origin wrap), and gene calling."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.annotation import read_annotation
from pipelines.dna_genes import call_genes, call_mask
from pipelines.fasta import decode, encode, reverse_complement
from seqdl.errors import SeqdlError

GFF_HEAD = "##gff-version 3\nchr\tRefSeq\tregion\t1\t40\t.\t+\t.\tID=chr;Is_circular=true\n"


def gff(tmp_path, *lines: str, head: str = GFF_HEAD):
    path = tmp_path / "a.gff3"
    path.write_text(head + "".join(line + "\n" for line in lines))
    return path


def test_plus_and_minus_cds_with_codon_positions(tmp_path):
    path = gff(tmp_path, "chr\tx\tCDS\t3\t11\t.\t+\t0\tID=a", "chr\tx\tCDS\t21\t29\t.\t-\t0\tID=b",
               "chr\tx\tCDS\t31\t33\t.\t+\t.\tID=p;pseudo=true")
    labels = read_annotation(path).labels({"chr": 40})["chr"]
    assert labels[0, 2:11].tolist() == [0, 1, 2] * 3 and (labels[0, :2] == -1).all() and labels[0, 11] == -1
    assert labels[1, 20:29].tolist() == [2, 1, 0] * 3  # counted from the - strand's 5' end (the right)
    assert (labels[:, 29:] == -1).all()  # the pseudogene is not coding


def test_phase_and_join_segments(tmp_path):
    # a 5'-partial CDS (phase 2: two bases before the first full codon) and a two-segment join
    path = gff(tmp_path, "chr\tx\tCDS\t1\t8\t.\t+\t2\tID=partial",
               "chr\tx\tCDS\t11\t14\t.\t+\t0\tID=j", "chr\tx\tCDS\t15\t19\t.\t+\t2\tID=j")
    notes = read_annotation(path)
    labels = notes.labels({"chr": 40})["chr"]
    assert labels[0, 0:8].tolist() == [1, 2, 0, 1, 2, 0, 1, 2]
    assert labels[0, 10:19].tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert notes.three_prime_ends("chr", 40).tolist() == [[0, 7], [0, 18]]


def test_gene_wrapping_the_origin_in_gff3(tmp_path):
    path = gff(tmp_path, "chr\tx\tCDS\t35\t46\t.\t+\t0\tID=wrap")  # 35..40 then 1..6 of a circular 40 bp record
    notes = read_annotation(path)
    labels = notes.labels({"chr": 40})["chr"]
    assert labels[0, 34:40].tolist() == [0, 1, 2, 0, 1, 2] and labels[0, 0:6].tolist() == [0, 1, 2, 0, 1, 2]
    assert notes.three_prime_ends("chr", 40).tolist() == [[0, 5]]


def test_gene_wrapping_the_origin_in_genbank(tmp_path):
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord

    record = SeqRecord(Seq("A" * 40), id="chr", name="chr", annotations={"molecule_type": "DNA",
                                                                          "topology": "circular"})
    # 5'->3' on the - strand: 5 down to 0, then across the origin 39 down to 34: complement(join(35..40,1..6))
    location = CompoundLocation([FeatureLocation(0, 6, strand=-1), FeatureLocation(34, 40, strand=-1)])
    record.features.append(SeqFeature(location, type="CDS", qualifiers={"codon_start": ["1"]}))
    path = tmp_path / "a.gb"
    SeqIO.write(record, path, "genbank")
    assert "complement(join(35..40,1..6))" in path.read_text()
    notes = read_annotation(path)
    labels = notes.labels({"chr": 40})["chr"]
    coding = np.flatnonzero(labels[1] >= 0).tolist()
    assert coding == list(range(6)) + list(range(34, 40))
    # the - strand reads 5'->3' from position 5 down through 0, then 39 down to 34
    order = list(range(5, -1, -1)) + list(range(39, 33, -1))
    assert labels[1, order].tolist() == [0, 1, 2] * 4
    assert notes.three_prime_ends("chr", 40).tolist() == [[1, 34]]


def test_annotation_errors(tmp_path):
    with pytest.raises(SeqdlError, match="no sequence name matches"):
        read_annotation(gff(tmp_path, "other\tx\tCDS\t1\t9\t.\t+\t0\tID=a")).labels({"chr": 40})
    with pytest.raises(SeqdlError, match="line 2: feature 'a' ends at 50, past the end of record 'chr'"):
        read_annotation(gff(tmp_path, "chr\tx\tCDS\t30\t50\t.\t+\t0\tID=a", head="##gff-version 3\n")
                        ).labels({"chr": 40})
    with pytest.raises(SeqdlError, match="line 2: expected 9 tab-separated columns"):
        read_annotation(gff(tmp_path, "chr\tx\tCDS\t30", head="##gff-version 3\n"))


def test_gene_calls_on_both_strands_from_confident_probabilities():
    rng = np.random.default_rng(0)
    body = "".join(rng.choice(["GCT", "AAA", "CTG", "GAA", "CGC", "ATC"], 400))  # no stop or start codons
    gene = "ATG" + body + "TAA"
    background = "TAAT" * 5  # stops in every frame of both strands
    seq = background + gene + background + decode(reverse_complement(encode(gene))) + background
    codes = encode(seq)
    probs = np.full((2, 3, len(seq)), 0.01, np.float32)
    plus = (20, 20 + len(gene))
    minus = (plus[1] + 20, plus[1] + 20 + len(gene))
    probs[0, np.arange(len(gene)) % 3, np.arange(*plus)] = 0.95
    probs[1, (np.arange(len(gene)) % 3)[::-1], np.arange(*minus)] = 0.95
    calls = call_genes(codes, probs)
    assert [(c.start, c.end, c.strand, c.start_codon) for c in calls] == [(*plus, 0, "ATG"), (*minus, 1, "ATG")]
    assert calls[0].three_prime == plus[1] - 1 and calls[1].three_prime == minus[0]
    mask = call_mask(calls, len(seq))
    assert mask[0].sum() == len(gene) and mask[1].sum() == len(gene)


def test_annotation_names_that_only_partly_match_warn_with_the_count(tmp_path, capsys):
    notes = read_annotation(gff(tmp_path, "chr\tx\tCDS\t1\t9\t.\t+\t0\tID=a\nplasmid\tx\tCDS\t1\t9\t.\t+\t0\tID=b"))
    labels = notes.labels({"chr": 40})
    assert (labels["chr"][0, :9] >= 0).all()
    err = capsys.readouterr().err
    assert "1 of 2 annotated sequence names match a FASTA record" in err and "'plasmid'" in err


def test_gene_ends_give_both_ends_per_strand(tmp_path):
    notes = read_annotation(gff(tmp_path, "chr\tx\tCDS\t4\t12\t.\t+\t0\tID=a\nchr\tx\tCDS\t20\t31\t.\t-\t0\tID=b"))
    assert notes.gene_ends("chr", 40).tolist() == [[0, 3, 11], [1, 30, 19]]
