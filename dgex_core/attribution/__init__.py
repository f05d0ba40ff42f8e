"""Which landmarks drive which targets: attributions of any model, and the tables that read them.

:mod:`.gradients` computes a model's attributions (input gradients and integrated
gradients of the network, in closed form where the architecture allows: :mod:`.network`;
the weights of linear regression); :mod:`.groups` per sample group, with a
context-dependence score; :mod:`.scoring` scores them against another attribution or a
known truth; :mod:`.drivers` lays models side by side; :mod:`.samples` picks the samples
a run is explained on; :mod:`.weights` reads a weight matrix (strongest entries,
clustered order).
"""

from .drivers import (
    agreement_table,
    common_genes,
    group_matrix,
    groupable_columns,
    landmark_targets,
    side_by_side,
    target_table,
)
from .gradients import attributions, closed_form_applies
from .groups import context_dependence, context_dependence_scores, group_attributions
from .network import METHODS, STATISTICS, network_gradient, network_integrated_gradients
from .samples import SAMPLE_SETS, explain_samples
from .scoring import agreement, precision_at_k, random_precision, summarize
from .weights import cluster_order, strongest, top_weights

__all__ = [
    "METHODS",
    "SAMPLE_SETS",
    "STATISTICS",
    "agreement",
    "agreement_table",
    "attributions",
    "closed_form_applies",
    "cluster_order",
    "common_genes",
    "context_dependence",
    "context_dependence_scores",
    "explain_samples",
    "group_attributions",
    "group_matrix",
    "groupable_columns",
    "landmark_targets",
    "network_gradient",
    "network_integrated_gradients",
    "precision_at_k",
    "random_precision",
    "side_by_side",
    "strongest",
    "summarize",
    "target_table",
    "top_weights",
]
