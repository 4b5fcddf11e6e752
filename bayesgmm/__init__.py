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
* :func:`load`: an estimator saved by its ``save(path)`` or by ``bayesgmm fit``.

The public names are imported on first use (module ``__getattr__``), so ``import bayesgmm``
is quick and the command line's ``--help`` loads no numerical library, and EM fits never
load PyMC, PyTensor or ArviZ, which only :class:`BayesianGaussianMixture` needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bayesgmm.bayes.estimator import BayesianGaussianMixture
    from bayesgmm.core.exceptions import UnreliablePosteriorWarning
    from bayesgmm.core.params import MixtureParams
    from bayesgmm.core.priors import HierarchicalPrior, MixturePrior
    from bayesgmm.em.estimator import GaussianMixture
    from bayesgmm.selection.clusters import ClusterAnalysis, how_many_clusters
    from bayesgmm.selection.compare import ModelComparison, compare

from bayesgmm.core.version import __version__

#: Public name -> module that defines it.
_LAZY: dict[str, str] = {
    "BayesianGaussianMixture": "bayesgmm.bayes.estimator",
    "ClusterAnalysis": "bayesgmm.selection.clusters",
    "GaussianMixture": "bayesgmm.em.estimator",
    "HierarchicalPrior": "bayesgmm.core.priors",
    "MixtureParams": "bayesgmm.core.params",
    "MixturePrior": "bayesgmm.core.priors",
    "UnreliablePosteriorWarning": "bayesgmm.core.exceptions",
    "ModelComparison": "bayesgmm.selection.compare",
    "compare": "bayesgmm.selection.compare",
    "how_many_clusters": "bayesgmm.selection.clusters",
}

__all__ = [
    "BayesianGaussianMixture",
    "ClusterAnalysis",
    "GaussianMixture",
    "HierarchicalPrior",
    "MixtureParams",
    "MixturePrior",
    "ModelComparison",
    "UnreliablePosteriorWarning",
    "__version__",
    "compare",
    "how_many_clusters",
    "load",
]

#: Estimators :func:`load` can rebuild: class name -> module that defines it.
_LOADABLE: dict[str, str] = {
    "BayesianGaussianMixture": "bayesgmm.bayes.estimator",
    "GaussianMixture": "bayesgmm.em.estimator",
}


def load(path, *, return_info: bool = False):
    """Load a fitted estimator saved by its ``save(path)`` (or by ``bayesgmm fit``).

    The folder's ``model.json`` names the estimator class; only that class's module is
    imported (an EM model never loads PyMC). The loaded estimator predicts, scores and
    samples exactly as the saved one (:mod:`bayesgmm.core.persistence` describes the
    format and its version policy).

    Parameters
    ----------
    path : str or Path
        The model folder.
    return_info : bool, default=False
        Also return the :class:`~bayesgmm.core.persistence.SavedModel` record (its
        ``input_scaling``, ``metadata``, ``feature_names``, ``bayesgmm_version``).

    Returns
    -------
    GaussianMixture or BayesianGaussianMixture, or (estimator, SavedModel)

    Raises
    ------
    bayesgmm.core.exceptions.ModelFormatError
        The folder is missing, damaged, foreign or of another format version (the message
        names the file and the problem).
    """
    from bayesgmm.core.persistence import read_model, restore

    record = read_model(path)
    module = _LOADABLE.get(record.estimator)
    cls = None if module is None else getattr(importlib.import_module(module), record.estimator)
    estimator = restore(record, cls, known=tuple(_LOADABLE))
    return (estimator, record) if return_info else estimator


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
