"""How many clusters, and which points belong together: one call, one record.

:func:`how_many_clusters` fits a sparse finite Gaussian mixture
(:func:`bayesgmm.selection.sparse.fit_sparse_mixture`: ``K_max`` components with full
covariances, a sparse Dirichlet prior on the weights) and summarises its posterior two
ways, both untouched by label switching:

* the number of occupied clusters ``K+``, ``P(K+ = k | X)``
  (:class:`~bayesgmm.selection.sparse.ClusterCountPosterior`), with R-hat and ESS of the
  label-invariant quantities (:func:`~bayesgmm.selection.sparse.cluster_count_diagnostics`);
* the partition of the points: the SALSO point estimate under the VI (or Binder) loss,
  its credible ball and each point's co-clustering certainty
  (:func:`~bayesgmm.posterior.partitions.summarize_partitions`).

The partition summary reads each draw's parameters: allocations are redrawn from their
full conditional ``p(z | w, mu, Sigma, X)`` (the distribution the Gibbs sampler draws
its own ``z`` from) and the similarity matrix is the mean of the responsibilities'
products, which has lower Monte Carlo error than co-clustering counts of the sampled
``z`` (Rao-Blackwellisation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.validation import RandomState, check_data, check_random_state, seed_sequence
from bayesgmm.posterior.draws import log_joint_densities, stack_draws
from bayesgmm.posterior.partitions import Loss, PartitionSummary, summarize_partitions
from bayesgmm.selection.sparse import (
    RHAT_WARNING,
    ClusterCountPosterior,
    SparseMixtureFit,
    cluster_count_diagnostics,
    fit_sparse_mixture,
)

#: Clusters of the point partition with at most this many points are named as such.
SMALL_CLUSTER = 2


def partition_summary(
    fit: SparseMixtureFit,
    X,
    *,
    loss: Loss = "vi",
    ci_prob: float = 0.95,
    max_points: int = 2000,
    max_draws: int = 1000,
    random_state: RandomState = None,
) -> PartitionSummary:
    """The posterior over partitions of a sparse-mixture fit.

    Parameters
    ----------
    fit : SparseMixtureFit
    X : array-like of shape (n_samples, n_features), or (n_samples,) for 1-D data
        The data the mixture was fitted to.
    loss : {"vi", "binder"}, default="vi"
    ci_prob : float, default=0.95
        Credible-ball probability.
    max_points : int, default=2000
        See :func:`~bayesgmm.posterior.partitions.summarize_partitions`.
    max_draws : int, default=1000
        Draws used (a seeded random subset of all chains' draws), which bounds the
        ``(n_draws, n_samples, K_max)`` array of log densities.
    random_state : int, Generator, SeedSequence or None

    Returns
    -------
    PartitionSummary
    """
    check_random_state(random_state)
    x = check_data(X, allow_1d=True, min_samples=2)
    seed = np.random.default_rng(random_state)
    weights, means, covs = stack_draws(
        fit.idata["posterior"].to_dataset(),
        max_draws=max_draws,
        random_state=int(seed.integers(2**31 - 1)),
    )
    log_joint = log_joint_densities(x, weights, means, covs)
    return summarize_partitions(
        log_joint, loss=loss, ci_prob=ci_prob, max_points=max_points, random_state=seed
    )


@dataclass(frozen=True, eq=False)
class ClusterAnalysis:
    """Result of :func:`how_many_clusters`.

    Attributes
    ----------
    cluster_count : ClusterCountPosterior
        ``P(K+ = k | X)`` for ``k = 1..K_max``.
    partitions : PartitionSummary
        Point estimate, credible ball, certainty and similarity matrix.
    diagnostics : pandas.DataFrame
        R-hat and ESS of ``K+``, ``e0`` and the log-likelihood
        (:func:`~bayesgmm.selection.sparse.cluster_count_diagnostics`).
    fit : SparseMixtureFit
        The sampler's output (``fit.idata``).
    """

    cluster_count: ClusterCountPosterior
    partitions: PartitionSummary
    diagnostics: pd.DataFrame
    fit: SparseMixtureFit = field(repr=False)

    @property
    def n_clusters(self) -> int:
        """The posterior mode of ``K+``."""
        return self.cluster_count.mode

    @property
    def converged(self) -> bool:
        """R-hat of ``K+`` at most :data:`~bayesgmm.selection.sparse.RHAT_WARNING` (or ``K+``
        constant)."""
        return self.cluster_count.converged

    def answer(self) -> str:
        """One line: the ``K+`` mode with its probability (marked unreliable when the chains
        disagree on it), and the point partition, naming clusters of one or two points."""
        part = self.partitions
        ball = part.credible_ball
        sizes = np.bincount(part.partition)
        tiny = [
            f"cluster {c} is {'a single point' if n == 1 else 'two points'}"
            for c, n in enumerate(sizes)
            if 0 < n <= SMALL_CLUSTER
        ]
        tiny_text = f" ({'; '.join(tiny)}: too few to call a cluster)" if tiny else ""
        return (
            f"{self.cluster_count.answer()}; point partition ({part.loss.upper()} loss): "
            f"{part.n_clusters} clusters of sizes {sizes.tolist()}{tiny_text}, "
            f"{ball.ci_prob:.0%} credible ball radius {ball.radius:.3g} ({part.loss} distance"
            f"{', bits' if part.loss == 'vi' else ''})"
        )

    def priors(self) -> str:
        """The model and its priors, in one line."""
        settings = self.fit.settings
        return (
            f"sparse finite Gaussian mixture with full covariances; w ~ Dirichlet(e0, ..., e0) "
            f"over K_max = {self.fit.max_components} components, {self.fit.sparsity}; "
            f"(mu_k, Sigma_k) ~ Normal-Inverse-Wishart({settings['prior']})"
        )

    def to_frame(self) -> pd.DataFrame:
        """``P(K+ = k)``: rows ``k = 1..K_max``, columns ``probability``, ``cumulative``."""
        return self.cluster_count.to_frame()

    def partition_frame(self) -> pd.DataFrame:
        """One row per observation: ``cluster`` (point estimate) and ``certainty``."""
        return self.partitions.to_frame()

    def __str__(self) -> str:
        probs = self.cluster_count.probabilities
        shown = probs[probs >= 0.001]
        table = "  ".join(f"{k}: {p:.3f}" for k, p in shown.items())
        diag = self.diagnostics.loc[["n_clusters", "log_likelihood_total"], ["rhat", "ess_bulk"]]
        lines = [
            self.answer(),
            f"P(K+ = k | X) ({self.cluster_count.n_draws} draws): {table}",
            f"partition: {self.partitions}",
            "diagnostics of label-invariant quantities:",
            diag.round(3).to_string(),
            f"model: {self.priors()}",
        ]
        if not self.converged:
            lines.append(
                f"warning: R-hat of K+ is {self.diagnostics.loc['n_clusters', 'rhat']:.3f} > "
                f"{RHAT_WARNING}: the chains disagree on K+; run more draws or chains"
            )
        return "\n".join(lines)


def how_many_clusters(
    X,
    max_components: int = 10,
    *,
    e0: float | None = 0.01,
    e0_prior: tuple[float, float] | None = None,
    prior: MixturePrior | str = "default",
    draws: int = 2000,
    burn: int = 1000,
    chains: int = 2,
    thin: int = 1,
    loss: Loss = "vi",
    ci_prob: float = 0.95,
    max_points: int = 2000,
    max_draws: int = 1000,
    random_state: RandomState = None,
) -> ClusterAnalysis:
    """The Bayesian answer to "how many clusters, and which points belong together".

    Fits :func:`~bayesgmm.selection.sparse.fit_sparse_mixture` and summarises the posterior of
    ``K+`` and of the partition (module docstring).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), or (n_samples,) for 1-D data
    max_components : int, default=10
        ``K_max``, an upper bound on the number of clusters.
    e0 : float or None, default=0.01
        Fixed Dirichlet parameter of the weights; ``None``: Gamma hyperprior.
    e0_prior : (shape, rate), optional
        Gamma hyperprior on ``e0`` (default ``(10, 10 K_max)``).
    prior : "default", "hierarchical" or MixturePrior
        Component prior, see :func:`~bayesgmm.selection.sparse.default_sparse_prior`;
        ``"hierarchical"`` learns its Inverse-Wishart scale
        (:func:`~bayesgmm.selection.sparse.fit_sparse_mixture`).
    draws, burn, chains, thin : int
        Gibbs sampler settings.
    loss : {"vi", "binder"}, default="vi"
        Loss of the point partition and distance of the credible ball.
    ci_prob : float, default=0.95
        Credible-ball probability.
    max_points : int, default=2000
        Largest ``n_samples`` summarised with an exact ``N x N`` similarity matrix.
    max_draws : int, default=1000
        Draws used for the partition summary (see :func:`partition_summary`).
    random_state : int, numpy Generator, SeedSequence or None, default=None
        Seeds the sampler and the partition search (independent streams): the same int
        gives the same result; a Generator is consumed (the same generator state gives the
        same result); ``None`` draws fresh entropy.

    Returns
    -------
    ClusterAnalysis
    """
    seeds = seed_sequence(random_state).spawn(2)
    fit = fit_sparse_mixture(
        X,
        max_components,
        prior=prior,
        e0=e0,
        e0_prior=e0_prior,
        draws=draws,
        burn=burn,
        chains=chains,
        thin=thin,
        random_state=np.random.default_rng(seeds[0]),
    )
    partitions = partition_summary(
        fit,
        X,
        loss=loss,
        ci_prob=ci_prob,
        max_points=max_points,
        max_draws=max_draws,
        random_state=np.random.default_rng(seeds[1]),
    )
    return ClusterAnalysis(
        cluster_count=fit.cluster_count,
        partitions=partitions,
        diagnostics=cluster_count_diagnostics(fit),
        fit=fit,
    )


__all__ = [
    "RHAT_WARNING",
    "SMALL_CLUSTER",
    "ClusterAnalysis",
    "how_many_clusters",
    "partition_summary",
]
