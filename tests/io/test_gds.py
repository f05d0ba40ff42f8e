"""GEO DataSet (GDS) SOFT files, written in GEO's published layout, and choosing a platform
of a two-platform series with `--platform` (CLI) and the Data page's Platform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dgex_core.errors import DataFormatError
from dgex_core.io import read, sniff

from ..helpers import run_cli
from .geo_files import soft_lines, write_lines


def gds_lines() -> list[str]:
    """A small GDS as GEO writes GDS507.soft (header, two subset types, the table)."""
    return [
        "^DATABASE = Geo",
        "!Database_name = Gene Expression Omnibus (GEO)",
        "!Database_institute = NCBI NLM NIH",
        "^DATASET = GDS9999",
        "!dataset_title = Renal clear cell carcinoma (HG-U133A)",
        "!dataset_description = Comparison of tumors and normal tissue.",
        "!dataset_type = Expression profiling by array",
        "!dataset_platform = GPL96",
        "!dataset_sample_organism = Homo sapiens",
        "!dataset_value_type = transformed count",
        "!dataset_sample_count = 4",
        "^SUBSET = GDS9999_1",
        "!subset_dataset_id = GDS9999",
        "!subset_description = RCC",
        "!subset_sample_id = GSM11815,GSM11832",
        "!subset_type = disease state",
        "^SUBSET = GDS9999_2",
        "!subset_dataset_id = GDS9999",
        "!subset_description = normal",
        "!subset_sample_id = GSM12069,GSM12083",
        "!subset_type = disease state",
        "^SUBSET = GDS9999_3",
        "!subset_description = male",
        "!subset_sample_id = GSM11815,GSM12069",
        "!subset_type = gender",
        "^DATASET = GDS9999",
        "#ID_REF = Platform reference identifier",
        "#IDENTIFIER = identifier",
        "#GSM11815 = Value for GSM11815: C035 Renal Clear Cell Carcinoma U133A; src: Trizol isolation",
        "#GSM11832 = Value for GSM11832: C023 Renal Clear Cell Carcinoma U133A; src: Trizol isolation",
        "#GSM12069 = Value for GSM12069: N035 Normal Human Kidney U133A; src: Trizol isolation",
        "#GSM12083 = Value for GSM12083: N023 Normal Human Kidney U133A; src: Trizol isolation",
        "!dataset_table_begin",
        "ID_REF\tIDENTIFIER\tGSM11815\tGSM11832\tGSM12069\tGSM12083",
        "1007_s_at\tDDR1\t10.1\t9.8\t11.0\t10.7",
        "1053_at\tRFC2\t7.2\tnull\t6.9\t7.0",
        "117_at\tHSPA6\t5.5\t5.1\t4.9\t5.0",
        "!dataset_table_end",
    ]


@pytest.fixture
def gds_file(tmp_path) -> Path:
    return write_lines(tmp_path / "GDS9999.soft.gz", gds_lines())


def test_gds_reads_samples_x_probes_with_subsets_as_sample_meta(gds_file):
    assert sniff(gds_file) == "geo_gds"
    m = read(gds_file)
    assert m.sample_ids.tolist() == ["GSM11815", "GSM11832", "GSM12069", "GSM12083"]
    assert m.gene_ids.tolist() == ["1007_s_at", "1053_at", "117_at"]
    np.testing.assert_allclose(m.values[:, 0], [10.1, 9.8, 11.0, 10.7], rtol=1e-6)
    assert np.isnan(m.values[1, 1])  # null
    assert m.sample_meta["disease state"].tolist() == ["RCC", "RCC", "normal", "normal"]
    assert [v if isinstance(v, str) else None for v in m.sample_meta["gender"]] == ["male", None, "male", None]
    assert m.sample_meta["description"].iloc[2].startswith("Value for GSM12069: N035")
    assert m.gene_meta["symbol"].tolist() == ["DDR1", "RFC2", "HSPA6"]
    assert m.provenance.notes["platform"] == "GPL96" and m.provenance.notes["geo_accession"] == "GDS9999"
    assert read(gds_file, platform="GPL96").n_samples == 4
    with pytest.raises(DataFormatError, match="the dataset is on GPL96, not GPL570"):
        read(gds_file, platform="GPL570")


@pytest.mark.parametrize("cut, words", [
    (lambda ls: ls[:-1], "has no '!dataset_table_end'"),
    (lambda ls: [ln.replace("GSM11815,GSM11832", "GSM11815,GSM0") for ln in ls],
     "lists samples not in the table"),
    (lambda ls: [*ls[:-2], "117_at\tHSPA6\t5.5\t5.1", ls[-1]], "4 cells but the header"),
    (lambda ls: [ln for ln in ls if not ln.startswith("!dataset_table")][:-4], "no data table"),
])
def test_damaged_gds_names_the_place(tmp_path, cut, words):
    p = write_lines(tmp_path / "bad_GDS.soft", cut(gds_lines()))
    with pytest.raises(DataFormatError, match=words):
        read(p)


def _dgex(*args):
    return run_cli(*args)


def test_cli_inspect_gds_and_a_two_platform_series_with_platform(tmp_path, gds_file):
    out = _dgex("inspect", gds_file)
    assert out.returncode == 0 and "geo_gds, 4 samples x 3 genes" in out.stdout, out.stderr
    series = write_lines(tmp_path / "GSE8888_family.soft.gz", soft_lines())
    out = _dgex("inspect", series)
    assert out.returncode == 1 and "choose one with --platform GPL96" in out.stderr, out.stderr
    out = _dgex("inspect", series, "--platform", "GPL570")
    assert out.returncode == 0 and "2 samples x 4 genes" in out.stdout, out.stderr
    gct = tmp_path / "x.gct"
    gct.write_text("#1.2\n2\t2\nName\tDescription\tS0\tS1\nA\tna\t1\t2\nB\tna\t3\t4\n")
    out = _dgex("inspect", gct, "--platform", "GPL96")
    assert out.returncode == 1 and "holds one platform" in out.stderr, out.stderr


def test_data_page_offers_the_platforms_of_a_series(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DGEX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DGEX_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DGEX_DEMO_SIZE", "1500x200")
    series = write_lines(tmp_path / "GSE8888_family.soft.gz", soft_lines())
    (tmp_path / "lm.txt").write_text("1007_s_at\n1053_at\n")
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=120).run()
    at.radio(key="data_source").set_value("A file").run()
    for k in ("data_file", "landmark_file"):
        at.radio(key=f"{k}_how").set_value("Path on the server").run()
    at.text_input(key="data_file_path").set_value(str(series)).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    box = at.selectbox(key="data_platform")
    assert box.options == ["GPL96 (2 samples)", "GPL570 (3 samples)"]
    box.set_value("GPL570").run()
    at.text_input(key="landmark_file_path").set_value(str(tmp_path / "lm.txt")).run()
    assert not at.exception, at.exception
    at.button(key="use_dataset").click().run()
    ds = at.session_state["dataset"]
    assert ds.n_samples == 2 and ds.n_targets == 2  # GPL570's samples: 4 probes, 2 of them landmarks
    assert at.session_state["dataset_label"] == "GSE8888_family.soft.gz (GPL570)"
