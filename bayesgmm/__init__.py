"""bayesgmm: Gaussian mixture models done the Bayesian way.

Two fitting paths for one model, ``z_n ~ Categorical(alpha)``,
``x_n | z_n = k ~ N(mu_k, Sigma_k)``:

* :class:`GaussianMixture`: EM (maximum likelihood) or MAP-EM in NumPy, with
  scikit-learn conventions.
* :class:`BayesianGaussianMixture`: the same model and priors in PyMC, with the labels
  marginalised, sampled by NUTS or fitted by variational inference.
* :func:`compare` (-> :class:`ModelComparison`): choose K and the covariance structure by
  PSIS-LOO and BIC/AIC/ICL; :func:`how_many_clusters` (-> :class:`ClusterAnalysis`): the
  sparse-mixture posterior of the number of clusters and of the partition.

The public names are imported on first use (module ``__getattr__``), so ``import bayesgmm``
is quick and the command line's ``--help`` loads no numerical library, and EM fits never
load PyMC, PyTensor or ArviZ, which only :class:`BayesianGaussianMixture` needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bayesgmm.bayes.estimator import BayesianGaussianMixture
    from bayesgmm.core.params import MixtureParams
    from bayesgmm.core.priors import MixturePrior
    from bayesgmm.em.estimator import GaussianMixture
    from bayesgmm.selection.clusters import ClusterAnalysis, how_many_clusters
    from bayesgmm.selection.compare import ModelComparison, compare

__version__ = "0.1.0"

#: Public name -> module that defines it.
_LAZY: dict[str, str] = {
    "BayesianGaussianMixture": "bayesgmm.bayes.estimator",
    "ClusterAnalysis": "bayesgmm.selection.clusters",
    "GaussianMixture": "bayesgmm.em.estimator",
    "MixtureParams": "bayesgmm.core.params",
    "MixturePrior": "bayesgmm.core.priors",
    "ModelComparison": "bayesgmm.selection.compare",
    "compare": "bayesgmm.selection.compare",
    "how_many_clusters": "bayesgmm.selection.clusters",
}

__all__ = [
    "BayesianGaussianMixture",
    "ClusterAnalysis",
    "GaussianMixture",
    "MixtureParams",
    "MixturePrior",
    "ModelComparison",
    "__version__",
    "compare",
    "how_many_clusters",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
