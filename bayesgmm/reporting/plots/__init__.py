"""Figures of a mixture fit: every function draws precomputed numbers and returns a Figure.

The numbers come from :mod:`bayesgmm.posterior.summaries` (densities, bands, assignment
probabilities, the MAP-versus-posterior table, per-parameter draws and their summary),
:mod:`bayesgmm.posterior.partitions`, :mod:`bayesgmm.selection.compare` and
:mod:`bayesgmm.selection.sparse`; rank plots are drawn by :mod:`arviz_plots`. Nothing here
fits or summarises, so every figure can be redrawn from saved results.

Every figure stays readable for any number of components K and features d: panels
wrap into a grid, and where one panel per parameter would not fit (a full 13-feature
model has hundreds of parameters) a figure shows a capped selection and says which
(the worst-mixing parameters, the most separating features).

Modules, by subject: :mod:`.density` (feature densities, component ellipses),
:mod:`.assignments`, :mod:`.map_vs_posterior`, :mod:`.traces` (trace and rank plots),
:mod:`.comparison` (LOO, criterion by K), :mod:`.bic_models` (BIC by model in mclust's
layout, lower is better: the one BIC figure of ``compare`` and the report),
:mod:`.clusters` (number of clusters),
:mod:`.partitions` (similarity matrix) and :mod:`.vi` (ELBO trace); every public function
is re-exported here, so ``plots.plot_density(...)`` works.
"""

from bayesgmm.reporting.plots._style import (
    FLAG_COLOR,
    MAP_COLOR,
    MAX_COLUMNS,
    MAX_FOREST_ROWS,
    MAX_RANK_PARAMETERS,
    MAX_TRACE_PER_GROUP,
    POSTERIOR_COLOR,
    component_legend,
)
from bayesgmm.reporting.plots.assignments import plot_assignment
from bayesgmm.reporting.plots.bic_models import bic_by_model, model_styles, plot_bic_models
from bayesgmm.reporting.plots.clusters import plot_cluster_count
from bayesgmm.reporting.plots.comparison import plot_criterion_by_k, plot_loo_comparison
from bayesgmm.reporting.plots.density import plot_density, plot_ellipses
from bayesgmm.reporting.plots.map_vs_posterior import (
    plot_log_density_vs_map,
    plot_map_vs_posterior,
)
from bayesgmm.reporting.plots.partitions import (
    BOUNDARY_GID,
    plot_similarity_matrix,
    similarity_order,
)
from bayesgmm.reporting.plots.traces import plot_rank, plot_trace
from bayesgmm.reporting.plots.vi import plot_elbo

__all__ = [
    "BOUNDARY_GID",
    "FLAG_COLOR",
    "MAP_COLOR",
    "MAX_COLUMNS",
    "MAX_FOREST_ROWS",
    "MAX_RANK_PARAMETERS",
    "MAX_TRACE_PER_GROUP",
    "POSTERIOR_COLOR",
    "bic_by_model",
    "component_legend",
    "model_styles",
    "plot_assignment",
    "plot_bic_models",
    "plot_cluster_count",
    "plot_criterion_by_k",
    "plot_density",
    "plot_elbo",
    "plot_ellipses",
    "plot_log_density_vs_map",
    "plot_loo_comparison",
    "plot_map_vs_posterior",
    "plot_rank",
    "plot_similarity_matrix",
    "plot_trace",
    "similarity_order",
]
