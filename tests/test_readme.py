"""The README's Python section runs as written: its code blocks, one after another in
one namespace, on the real files beside the project (skipped when they are absent)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## The same in Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.slow
def test_the_readme_python_section_runs(real_dir, tmp_path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)  # its runs/ folder goes here
    code = "\n".join(blocks).replace('R = "../shared/data/real/"', f'R = "{real_dir}/"')
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # the README's own code
    assert ns["inferred"].shape == (371, 21305)                          # block 1: the plate, every target
    assert ns["inferred_df"].shape == (5, 21305)                         # block 2: scikit-learn style
    assert ns["again"].max_epochs == 20 and not ns["again"].is_fitted
    full, run = ns["full"], ns["run"]                                    # block 3: AnnData in and out
    assert full.shape == (371, 978 + 21305)
    assert full.var["role"].value_counts().to_dict() == {"inferred": 21305, "measured": 978}
    assert run.family == "choice" and (tmp_path / "runs" / "gpl96-linear").is_dir()
    assert np.isfinite(ns["scores"]["mae"]).all() and len(ns["scores"]) == 21305
    assert re.search(r"inferred\s+21305", capsys.readouterr().out)  # what its print shows
    assert ns["drivers"].shape == (978, 1) and list(ns["drivers"].columns) == ["1053_at"]
    # block 4: a notebook session on a sparse h5ad, handed to scanpy
    import scipy.sparse

    assert scipy.sparse.issparse(ns["adata"].X) and ns["adata"].shape == (57, 22283)
    for name, model in ns["models"].items():
        assert model.is_fitted and len(model.target_ids_) == 21305, name
        twin = ns["twins"][name]
        assert not twin.is_fitted and twin.get_params() == model.get_params()
    full = ns["full"]
    assert full.shape == (371, 22283) and full.obsm["X_pca"].shape == (371, 10)
    assert list(full.obs_names) == list(ns["plate"].sample_ids)
    assert full.var["role"].value_counts().to_dict() == {"inferred": 21305, "measured": 978}
