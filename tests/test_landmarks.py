"""Landmark lists from every source, and coverage reports that match by id."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dgex_core.errors import DataFormatError
from dgex_core.landmarks import LandmarkList, guess_id_kind, match_landmarks, read_landmarks


@pytest.mark.parametrize(("ids", "kind"), [
    (["200814_at", "1007_s_at", "AFFX-BioB-5_at"], "probe_id"),
    (["5720", "466", "6009"], "entrez_id"),
    (["ENSG00000175063.16", "ENSG00000171174"], "ensembl_id"),
    (["UBE2C", "RBKS", "SLC2A6"], "symbol"),
])
def test_guess_id_kind(ids, kind):
    assert guess_id_kind(ids) == kind


def test_lincs_gene_info_keeps_landmarks_only(tmp_path):
    p = tmp_path / "GSE92742_Broad_LINCS_gene_info.txt"
    p.write_text("pr_gene_id\tpr_gene_symbol\tpr_gene_title\tpr_is_lm\tpr_is_bing\n"
                 "5720\tPSME1\tproteasome activator subunit 1\t1\t1\n"
                 "7849\tPAX8\tpaired box 8\t0\t1\n"
                 "2778\tGNAS\tGNAS complex locus\t1\t1\n")
    lm = read_landmarks(p)
    assert lm.ids("entrez_id") == ["5720", "2778"]
    assert lm.ids("symbol") == ["PSME1", "GNAS"]


def test_geneinfo_beta_feature_space(tmp_path):
    p = tmp_path / "geneinfo_beta.txt"
    p.write_text("gene_id\tgene_symbol\tensembl_id\tgene_title\tgene_type\tsrc\tfeature_space\n"
                 "750\tGAS8-AS1\tENSG00000221819\tx\tncRNA\tNCBI\tinferred\n"
                 "6315\tATXN8OS\tENSG00000230223\tx\tncRNA\tNCBI\tlandmark\n"
                 "5720\tPSME1\tENSG00000092010\tx\tprotein-coding\tNCBI\tlandmark\n")
    lm = read_landmarks(p)
    assert lm.ids("entrez_id") == ["6315", "5720"]
    assert lm.ids("ensembl_id") == ["ENSG00000230223", "ENSG00000092010"]


def test_one_id_per_line_with_header_and_comments(tmp_path):
    p = tmp_path / "lm.txt"
    p.write_text("symbol\n# comment\nUBE2C\nRBKS\n\n")
    lm = read_landmarks(p)
    assert lm.kinds == ["symbol"] and lm.ids() == ["UBE2C", "RBKS"]


def test_empty_landmark_file_is_an_error(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_landmarks(p)


def test_matching_uses_ids_not_positions_and_reports_missing():
    lm = LandmarkList(pd.DataFrame({"symbol": ["A", "B", "C", "D"], "entrez_id": ["1", "2", "3", "4"]}))
    genes = pd.Index(["g9", "g3", "g1", "g2"])
    meta = pd.DataFrame({"pr_gene_id": ["9", "3", "1", "2"]}, index=genes)
    cov = match_landmarks(lm, genes, meta)
    assert cov.matched_on == ("entrez_id", "gene_meta:pr_gene_id")
    assert cov.present == ["A", "B", "C"] and cov.missing == ["D"]
    assert cov.gene_ids == ["g1", "g2", "g3"]
    assert "3 of 4 landmarks present" in cov.summary() and "missing: D" in cov.summary()


def test_matching_ignores_ensembl_versions_and_symbol_case():
    lm = LandmarkList.from_ids(["ENSG00000175063", "ENSG00000171174"])
    cov = match_landmarks(lm, ["ENSG00000175063.16", "ENSG00000171174.13", "ENSG1"])
    assert cov.complete and cov.gene_ids == ["ENSG00000175063.16", "ENSG00000171174.13"]
    cov2 = match_landmarks(LandmarkList.from_ids(["Ube2c"], kind="symbol"), ["x"],
                           pd.DataFrame({"Description": ["UBE2C"]}, index=["x"]))
    assert cov2.gene_ids == ["x"]


def test_multi_probe_landmark_is_present_when_any_probe_is():
    lm = LandmarkList(pd.DataFrame({"symbol": ["G"], "probe_id": ["p1,p2"]}))
    cov = match_landmarks(lm, ["p2", "p3"])
    assert cov.present == ["G"] and cov.gene_ids == ["p2"]


def test_real_l1000_plate_as_landmark_list(l1000_plate):
    lm = read_landmarks(l1000_plate)
    assert len(lm) == 978
    assert lm.primary_kind == "probe_id"
    assert {"entrez_id", "symbol"} <= set(lm.kinds)
    assert "200814_at" in lm.ids("probe_id")


def test_real_dgex_map_and_gpl96_coverage(real_dir, gpl96_bladder):
    from dgex_core.io import read

    lm = read_landmarks(real_dir / "dgex_landmarks_gpl96.tsv")
    assert len(lm) == 943 and lm.ids("symbol")[0] == "UBE2C"
    probes = read(gpl96_bladder)
    cov = match_landmarks(lm, probes.gene_ids, probes.gene_meta)
    assert cov.matched_on == ("probe_id", "gene id")
    assert cov.n_present == 943
    # the L1000 plate's 978 probes are all GPL96 rows
    cov2 = match_landmarks(read_landmarks(real_dir / "l1000_LJP009_A375_24H_qnorm_n371x978.gct"),
                           probes.gene_ids, probes.gene_meta)
    assert cov2.complete and cov2.n_present == 978
    assert np.all(np.isin(cov2.gene_ids, probes.gene_ids))


def test_lists_as_people_write_them_bom_duplicates_one_line(tmp_path):
    """A UTF-8 BOM (Excel's "CSV UTF-8", Notepad) is dropped; the same gene twice is one
    landmark with a note (not a missing one); one comma-separated line is split."""
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffUBE2C\nRBKS\nUBE2C\nPSMB10\n".encode())
    lm = read_landmarks(bom)
    assert lm.ids() == ["UBE2C", "RBKS", "PSMB10"]
    assert lm.notes == ["1 duplicate symbol entries collapsed (e.g. UBE2C)"]
    cov = match_landmarks(lm, pd.Index(["UBE2C", "RBKS", "PSMB10", "X"]))
    assert cov.n_present == 3 and not cov.missing
    for text in ("UBE2C,RBKS,PSMB10\n", "UBE2C RBKS\tPSMB10", "UBE2C; RBKS; PSMB10\n"):
        one = tmp_path / "one_line.txt"
        one.write_text(text)
        lm = read_landmarks(one)
        assert lm.ids() == ["UBE2C", "RBKS", "PSMB10"], text
        assert "one line of 3 ids" in lm.notes[0]


def test_a_list_of_one_id_is_refused_with_the_reason(tmp_path):
    p = tmp_path / "one.txt"
    p.write_text("UBE2C\n")
    with pytest.raises(DataFormatError, match=r"one\.txt.*holds 1 landmark \(UBE2C\), a model needs at least 2"):
        read_landmarks(p)


def test_gene_info_with_a_bom_is_recognised(tmp_path):
    p = tmp_path / "geneinfo.txt"
    p.write_bytes("\ufeffpr_gene_id\tpr_gene_symbol\tpr_is_lm\n5720\tPSME1\t1\n466\tATF1\t1\n6009\tRHEB\t0\n".encode())
    lm = read_landmarks(p)
    assert lm.ids("entrez_id") == ["5720", "466"]
