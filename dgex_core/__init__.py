"""dgex: infer the whole transcriptome from ~1,000 measured landmark genes.

The library behind the ``dgex`` command and the dashboard. It never imports Streamlit.
"""

from .errors import DataFormatError, DatasetError, DgexError, LandmarkCoverageError, ModelError
from .matrix import ExpressionMatrix, Provenance

__version__ = "0.1.0"

__all__ = [
    "DataFormatError",
    "DatasetError",
    "DgexError",
    "ExpressionMatrix",
    "LandmarkCoverageError",
    "ModelError",
    "Provenance",
    "__version__",
]
