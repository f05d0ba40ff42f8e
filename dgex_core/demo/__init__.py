"""The built-in demo compendium: **synthetic** expression data with a known noise floor.

Nothing here is measured. :func:`generate_demo` draws a compendium that looks like
log2 microarray data (values roughly 2-14) so the whole pipeline (readers aside) can
be run, tested and benchmarked without downloading anything, and so that every
model's error can be compared with the best error *any* model could reach.

What it models
--------------
* **Latent biological programs.** Each sample has an activity for each of
  ``n_programs`` programs. Samples come from ``n_tissues`` tissue-like clusters: a
  Gaussian mixture in program space (each tissue has its own mean activity per program,
  two strongly active "marker" programs and its own spread), so the data are clustered
  and multimodal like a real compendium.
* **Landmarks** (``LM0001`` ... inputs, 978 by default, as in L1000). About 10% are
  housekeeping genes (a baseline plus noise); every other landmark belongs to one program:
  ``landmark = base + loading * activity + landmark noise``.
* **Program scores.** Each program's score ``z_k`` is a fixed linear projection of the
  *observed* landmarks: the precision-weighted mean of its landmarks, centred and scaled
  to mean 0, sd 1 over the population.
* **Targets** (``TG00001`` ... outputs, ``n_targets``). Every target is a deterministic
  function of the observed landmarks plus its own Gaussian noise::

      target = base + sum_k b_k z_k + a * (h(z) - mean h) + c * u_j + e,   e ~ N(0, noise_sd**2)

  over its 1-3 driver programs ``k`` (``drivers`` in ``gene_meta``). ``linear`` targets
  (55% by default) have no ``h``; the others have one of three kinds, in equal shares:
  ``saturation`` ``h = tanh(s (z_p - t))`` (a sigmoid response that levels off),
  ``threshold`` ``h = softplus(s (z_p - t)) / s`` (flat, then rising above a program
  level) and ``interaction`` ``h = z_p z_q`` (two programs acting together). The
  amplitude ``a`` is set so that the part of ``a h`` that *no linear function of the
  scores explains* has variance ``nonlinear_strength`` (0.4-1.0) times the noise
  variance: that is what makes linear regression fall short of the floor, by a
  controlled margin. A quarter of the targets also depend on one single landmark
  ``u_j`` (standardized; ``direct_landmark``), so attribution methods have a specific
  gene to find. :attr:`DemoData.driver_matrix` says which landmarks feed which target.
  Each target is placed so its values stay within about 2.5-13.5.

Why the noise floor is exact
----------------------------
Given the observed landmarks, a target is ``f(landmarks) + e`` with ``f`` known and
``e ~ N(0, noise_sd**2)`` independent of everything else. The best possible predictor
for the mean absolute error is the conditional median, ``f`` itself, and its expected
error is ``E|e| = noise_sd * sqrt(2 / pi)``: the ``noise_floor_mae`` column of
``gene_meta``, in the original log2 units. No model can beat it in expectation (a
model that does on average over many genes reveals a bug: in the model's evaluation or
here). In the D-GEX evaluation units (each gene standardized by its training-set sd),
the floor is ``noise_floor_mae / sd_train``: :func:`noise_floor_standardized`.
:meth:`DemoData.true_targets` evaluates ``f``, the Bayes-optimal prediction, on any
landmark values.

Determinism and size
--------------------
Everything is drawn from ``numpy`` generators seeded by :class:`DemoConfig`. The
"biology" (programs, tissues, target functions) does not depend on ``n_samples``, and
samples are drawn row by row, so a config that differs only in ``n_samples`` gives the
first rows of the larger one. The default (10,000 samples x 978 landmarks + 4,000
targets, float32) is generated in a few seconds; :func:`load_demo` caches it under
``data/demo/`` (git-ignored) without pickle.

Calibration (``bench/demo_calibration.py``, results in
``bench/results/demo_calibration.json``): at the default size, split 80/10/10 and
standardized by the training sd, ridge regression's mean per-gene test MAE is 1.30x
the floor on the non-linear targets (1.01x on the linear ones), while a network with
one ReLU hidden layer of 1,000 units (dropout 0.3, Adam, one-cycle learning rate
2e-3, 30 epochs; about a minute on 2 CPU cores) reaches 1.06x the floor over all
targets and beats ridge on every non-linear target. The mean floor is about 0.37 in
standardized units, the scale of the D-GEX paper's errors on GEO data (0.32-0.38).

Examples
--------
>>> from dgex_core.demo import DemoConfig, generate_demo
>>> data = generate_demo(DemoConfig(n_samples=500, n_targets=200))
>>> data.matrix.shape
(500, 1178)
>>> bool(data.target_meta["noise_floor_mae"].gt(0).all())
True
"""

from .cache import clear_cache, default_cache_dir, load_demo
from .config import APP_DEMO_SIZE, GENERATOR_VERSION, DemoConfig, app_demo_config, parse_size
from .data import DemoData
from .floor import noise_floor_standardized
from .sampling import generate_demo
from .truth import (
    ARRAY_CEILING,
    ARRAY_FLOOR,
    ARRAY_HIGH_KNEE,
    ARRAY_LOW_KNEE,
    NONLINEAR_KINDS,
    TARGET_KINDS,
    DemoTruth,
    array_range,
    build_truth,
)

__all__ = [
    "APP_DEMO_SIZE",
    "ARRAY_CEILING",
    "ARRAY_FLOOR",
    "ARRAY_HIGH_KNEE",
    "ARRAY_LOW_KNEE",
    "GENERATOR_VERSION",
    "NONLINEAR_KINDS",
    "TARGET_KINDS",
    "DemoConfig",
    "DemoData",
    "DemoTruth",
    "app_demo_config",
    "array_range",
    "build_truth",
    "clear_cache",
    "default_cache_dir",
    "generate_demo",
    "load_demo",
    "noise_floor_standardized",
    "parse_size",
]
