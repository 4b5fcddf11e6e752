"""Compile the package's compiled code once, before the first real fit needs it.

Every compiled kernel of the package is cached on disk (Numba's cache, ``__pycache__`` next
to the sources or ``NUMBA_CACHE_DIR``; PyTensor's compile directory for the models without a
hand-written kernel), so compilation is paid once per machine and installation, not per
process. :func:`warmup` pays it up front, on a small synthetic data set: the EM kernels and
compiled loop of each covariance structure, the Bayesian model's NUTS target of each
structure in two dimensions and (full) in one, the post-processing kernels over draws
(relabelling, log-likelihood, posterior predictive), the conjugate Gibbs sampler
(``method="gibbs"``, which ``method="auto"`` runs for full covariances) and the sparse
mixture's Gibbs sampler. A later fit of any size, K or data set then starts at once
wherever the model has a hand-written kernel; a model compiled through PyTensor is compiled
per (K, structure, d) and reuses only the compiled pieces its graph shares with the warmed
one.
``bayesgmm warmup`` is the command-line form.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

from bayesgmm.core.covariance import bayesian_covariance_names
from bayesgmm.core.covariance import covariance_names as registered_structures

#: The structures the Bayesian model and the EM kernels cover by default.
DEFAULT_STRUCTURES: tuple[str, ...] = ("full", "tied", "diag", "spherical")


def warmup(
    covariance_types: Sequence[str] = DEFAULT_STRUCTURES,
    *,
    posterior: bool = True,
    clusters: bool = True,
    gibbs: bool | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Compile (or load from the disk cache) the compiled code of the default paths.

    Parameters
    ----------
    covariance_types : sequence of str, default=("full", "tied", "diag", "spherical")
        Any registered structure (EM kernels); the posterior steps run for those with a
        Bayesian model.
    posterior : bool, default=True
        Also the Bayesian model of each structure (a short NUTS run) and the
        post-processing of its draws.
    clusters : bool, default=True
        Also the sparse mixture's Gibbs sampler
        (:func:`~bayesgmm.selection.clusters.how_many_clusters`).
    gibbs : bool or None, default=None
        Also the conjugate Gibbs sampler of the full structure (``method="gibbs"``, and
        ``method="auto"`` wherever it is exact), a short run; ``None``: as ``posterior``.
    progress : callable, optional
        Called with a line before each step.

    Returns
    -------
    dict
        Seconds per step, e.g. ``{"EM full": 12.1, "NUTS full": 9.8, ...}``: long on a
        machine's first run, short once the caches hold everything.
    """
    import numpy as np

    from bayesgmm.em.estimator import GaussianMixture

    unknown = sorted(set(covariance_types) - set(registered_structures()))
    if unknown:
        raise ValueError(
            f"unknown covariance type(s) {unknown}; choose from {list(registered_structures())}"
        )
    # two well separated round clusters of 40 points
    X = np.random.default_rng(0).standard_normal((80, 2)) + np.repeat(
        [[0.0, 0.0], [6.0, 3.0]], 40, 0
    )
    steps: list[tuple[str, Callable[[], object]]] = []
    for cov in covariance_types:
        steps.append((f"EM {cov}", _em(GaussianMixture, X, cov)))
    if posterior:
        from bayesgmm.bayes.estimator import BayesianGaussianMixture

        for cov in covariance_types:
            if cov in bayesian_covariance_names():
                steps.append((f"NUTS {cov}", _short_fit(BayesianGaussianMixture, X, cov)))
        one_feature = _short_fit(BayesianGaussianMixture, X[:, :1], "full")
        steps.append(("NUTS full, one feature", one_feature))
    if posterior if gibbs is None else gibbs:  # the sampler of method="auto"
        from bayesgmm.bayes.estimator import BayesianGaussianMixture

        steps.append(("Gibbs full", _short_fit(BayesianGaussianMixture, X, "full", method="gibbs")))
    if clusters:
        from bayesgmm.selection.clusters import how_many_clusters

        steps.append(
            (
                "sparse mixture",
                lambda: how_many_clusters(X, 4, draws=20, burn=20, chains=1, random_state=0),
            )
        )
    seconds = {}
    for name, step in steps:
        if progress is not None:
            progress(f"compiling: {name}")
        start = time.perf_counter()
        with warnings.catch_warnings():
            # a 20-draw run fails its checks by design: only the compilation matters
            warnings.simplefilter("ignore")
            step()
        seconds[name] = time.perf_counter() - start
    return seconds


def _em(estimator, X, covariance_type: str) -> Callable[[], object]:
    return lambda: estimator(2, covariance_type=covariance_type, random_state=0).fit(X)


def _short_fit(estimator, X, covariance_type: str, method: str = "nuts") -> Callable[[], object]:
    return lambda: estimator(
        2,
        covariance_type=covariance_type,
        method=method,
        draws=20,
        tune=20,
        chains=1,
        max_draws=None,
        random_state=0,
        progressbar=False,
    ).fit(X)


__all__ = ["DEFAULT_STRUCTURES", "warmup"]
