"""Messages that name what is wrong: missing values in training (file, samples, genes),
duplicate samples in ARCHS4 (file and node), an inconsistent run folder (the run, not
the data), a sample sheet that matches no sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dgex_core.dataset import Dataset
from dgex_core.errors import DataFormatError, ModelError
from dgex_core.io import read, write
from dgex_core.io.sheets import sheet_for_samples
from dgex_core.models.linear import LinearModel
from dgex_core.store import load_run, save_run
from dgex_core.training import train_run

from .helpers import ACC, make_archs4, run_cli
from .helpers import linear_data as _data


def test_missing_values_in_training_name_the_file_samples_and_genes(tmp_path):
    ds = _data(n=120, p=8, t=6, seed=2)
    m = ds.to_matrix()
    v = m.values.copy()
    v[[3, 50], 2] = np.nan
    v[7, 10] = np.inf
    write(m.with_values(v), tmp_path / "holes.gct")
    data = Dataset.from_matrix(read(tmp_path / "holes.gct"), list(ds.landmark_ids))
    with pytest.raises(ModelError) as err:
        train_run(data, LinearModel(), "holes", test=0.0)
    msg = str(err.value)
    assert "holes.gct: missing (NaN) or infinite values in" in msg
    assert "genes (e.g. L2, T2)" in msg and "samples (e.g." in msg, msg


def test_duplicate_samples_in_archs4_name_the_file_and_node(tmp_path):
    def twice(f):
        del f["meta/samples/geo_accession"]
        f["meta/samples/geo_accession"] = np.array([*ACC[:5], ACC[1], *ACC[6:]], dtype="S")

    p = make_archs4(tmp_path / "dup.h5", edit=twice)
    with pytest.raises(DataFormatError, match=r"dup\.h5: /meta/samples/geo_accession, entries 2 and 6: the sample "
                                              r"accession 'GSM1001' appears twice"):
        read(p)


def test_an_inconsistent_run_folder_is_blamed_not_the_data(tmp_path):
    run = train_run(_data(n=150, p=8, t=6, seed=3), LinearModel(), "bent")
    folder = save_run(run, tmp_path)
    with np.load(folder / "preprocess.npz") as z:
        arrays = {k: z[k] for k in z.files}
    key = next(k for k in arrays if k.startswith("input.") and arrays[k].ndim == 1)
    arrays[key] = arrays[key][:-1]  # one landmark fewer in the input standardizer
    np.savez(folder / "preprocess.npz", **arrays)
    with pytest.raises(ModelError, match=r"bent: the saved model is damaged .*holds 7 genes but the model lists 8"):
        load_run(folder, verify=False)  # as after an edit whose checksums were recomputed
    meta = json.loads((folder / "model.json").read_text())
    for broken in ({k: v for k, v in meta.items() if k != "params"}, {**meta, "params": {**meta["params"], "x": 1}}):
        (folder / "model.json").write_text(json.dumps(broken))
        with pytest.raises(ModelError, match=r"no \"params\"|does not take: \['x'\]"):
            load_run(folder, verify=False)


def test_a_sample_sheet_that_matches_no_sample_says_so(tmp_path):
    import pandas as pd

    ids = pd.Index(["GSM1", "GSM2", "GSM3"])
    sheet = pd.DataFrame({"tissue": ["a", "b"]}, index=["gsm_1", "gsm_2"])
    with pytest.raises(DataFormatError, match=r"none of its 2 sample ids \(e.g. gsm_1, gsm_2\) is a sample"):
        sheet_for_samples(sheet, ids, "sheet.tsv")
    rows, note = sheet_for_samples(pd.DataFrame({"tissue": ["a"]}, index=["GSM2"]), ids, "sheet.tsv")
    assert rows["tissue"].tolist()[1] == "a" and note == ("sheet.tsv: 2 of the 3 samples are not in the sheet "
                                                           "(their metadata are missing)")
    assert rows.index.equals(ids)


def test_cli_sample_sheet_matching_no_sample_is_refused(tmp_path):
    (tmp_path / "sheet.tsv").write_text("sample\ttissue\nX1\tliver\nX2\tlung\n")
    env = {"DGEX_RUNS_DIR": str(tmp_path / "runs"), "DGEX_DATA_DIR": str(tmp_path / "data")}
    ds = _data(n=60, p=6, t=4, seed=1)
    write(ds.to_matrix(), tmp_path / "d.gct")
    (tmp_path / "lm.txt").write_text("\n".join(ds.landmark_ids) + "\n")
    out = run_cli("train", "--data", tmp_path / "d.gct", "--landmarks", tmp_path / "lm.txt", "--sample-sheet",
                  tmp_path / "sheet.tsv", "--name", "s", env=env)
    assert out.returncode == 1 and "none of its 2 sample ids (e.g. X1, X2)" in out.stderr, out.stderr
