"""dgex: infer the whole transcriptome from ~1,000 measured landmark genes.

The library behind the ``dgex`` command and the dashboard. It never imports Streamlit.

The public API is the short list below (imported on first use, so ``import dgex_core``
stays light)::

    import dgex_core as dg
    data = dg.Dataset.from_anndata(adata, landmarks)          # or dg.read(path) + Dataset.from_matrix
    run = dg.train_run(data, dg.MLPModel(), "my-network")     # split, fit on train, settings on validation
    dg.save_run(run, "runs")
    inferred = dg.predict(dg.load_run("runs/my-network"), plate_adata)   # an AnnData back

Reading: :func:`read`, :func:`open_matrix`, :func:`read_landmarks`, :class:`Dataset`;
models: :class:`LinearModel`, :class:`KNNModel`, :class:`MLPModel`, :class:`ChoiceModel`,
:func:`load_model`; work: :func:`train_run`; runs: :func:`save_run`, :func:`load_run`,
:func:`list_runs`; data: :func:`load_demo`, :func:`fetch`; on a Dataset, AnnData, DataFrame
or array: :func:`predict`, :func:`evaluate`, :func:`explain`.

Everything else is internal and may move: the stages live in subpackages
(``io`` -> ``dataset`` -> ``preprocess`` -> ``models`` -> ``evaluation`` / ``attribution``
/ ``prediction`` -> ``store`` -> ``cli`` and the app).
"""

from importlib import import_module

from .errors import DataFormatError, DatasetError, DgexError, LandmarkCoverageError, ModelError
from .matrix import ExpressionMatrix, Provenance

__version__ = "0.1.0"

#: public name -> (module, attribute), imported on first use
_LAZY = {
    "read": ("io", "read"),
    "open_matrix": ("io", "open_matrix"),
    "read_landmarks": ("landmarks", "read_landmarks"),
    "Dataset": ("dataset", "Dataset"),
    "LinearModel": ("models.linear", "LinearModel"),
    "KNNModel": ("models.knn", "KNNModel"),
    "MLPModel": ("models.mlp", "MLPModel"),
    "ChoiceModel": ("models.choice", "ChoiceModel"),
    "load_model": ("models.persist", "load_model"),
    "train_run": ("training", "train_run"),
    "save_run": ("store", "save_run"),
    "load_run": ("store", "load_run"),
    "list_runs": ("store", "list_runs"),
    "load_demo": ("demo", "load_demo"),
    "fetch": ("fetching", "fetch"),
    "predict": ("api", "predict"),
    "evaluate": ("api", "evaluate"),
    "explain": ("api", "explain"),
}

__all__ = [
    "DataFormatError",
    "DatasetError",
    "DgexError",
    "ExpressionMatrix",
    "LandmarkCoverageError",
    "ModelError",
    "Provenance",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dgex_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
