"""Simulation-based calibration (SBC) of a Gaussian-mixture posterior sampler.

SBC (Talts et al. 2018, *Validating Bayesian inference algorithms with simulation-based
calibration*, arXiv:1804.06788): draw parameters ``theta~`` from the prior, data ``X`` from
the model at ``theta~``, then posterior draws ``theta_1..L`` given ``X``. If the sampler
targets the posterior of the same prior and likelihood, the rank of ``f(theta~)`` among
``f(theta_1..L)`` is uniform on ``{0, ..., L}`` for every quantity ``f``, over replicates.

A mixture's labels are not identified, so the quantities here are label-invariant functions
of ``theta`` (and of the replicate's data, which is fixed within a replicate):

* the weights sorted in increasing order (:func:`mixture_quantities`),
* ``log p(X | theta)``, the log-likelihood of the replicate's data,
* ``log p(y | theta)`` at fixed points ``y``,
* the co-clustering probability ``sum_k r_ik r_jk`` of fixed pairs of data rows, with
  ``r_ik = P(z_i = k | x_i, theta)``.

The uniformity test is the ECDF test of Säilynoja, Bürkner & Vehtari (2022), *Graphical
test for discrete uniformity and its applications in goodness-of-fit evaluation and
multiple sample comparison*, Statistics and Computing 32:32: the ranks become
fractional ranks ``u = (r + U) / (L + 1)``, ``U ~ U(0, 1)`` (exactly uniform on (0, 1)
under the null; :func:`fractional_ranks`); at ``K`` evaluation points ``z_i = i / K`` the
count ``N F_N(z_i)`` is ``Binomial(N, z_i)`` under the null, and the statistic is the
smallest two-sided binomial tail probability over the points. Its null distribution is
simulated (:func:`ecdf_uniformity_test`), which gives both a p-value and the simultaneous
band of the ECDF-difference plot (:func:`ecdf_band`: every ``z_i`` inside with probability
``1 - alpha`` jointly). A Pearson chi-square test on equal-width bins
(:func:`chisq_uniformity_test`) is given as the classic alternative.

The relabelled parameters (component ``k``'s weight, mean and variances after the
package's own relabelling) are ranked too (:func:`aligned_to_reference`,
:func:`parameter_quantities`): in one dimension every draw is sorted by mean, a
label-invariant function of ``theta``, so its ranks are exactly uniform; in ``d > 1`` each
draw is permuted to the reference (the MAP) that minimises the KL cost, and the true
parameters are permuted by the same rule. SBC's ranks stay uniform for any quantity
``f(theta, X)`` when the reference depends on ``X`` alone (truth and draws are then
exchangeable given ``X``); a reference that also depends on the draws (the package's MAP
is refined from the chains' best draws) breaks that exchangeability slightly, so small
deviations there are expected and are not a miscalibration of the sampler.

To read a failure (:func:`rank_shape`): a mean fractional rank below 1/2 means the true
value sits below the draws too often (the posterior overestimates the quantity); more
ranks than expected in both tails (a U shape) means the posterior is too narrow
(under-dispersed); fewer (a hump) means too wide.

Draws are autocorrelated: the ranks are uniform only for (nearly) independent draws, so
thin the chains to about their effective sample size first (:func:`thinned`).

The prior must be fixed (not built from the data); a :class:`~bayesgmm.core.priors.MixturePrior`
passed to :class:`~bayesgmm.BayesianGaussianMixture` is: the estimator's working scale maps
it exactly (:meth:`~bayesgmm.core.spec.Standardization.prior_to_working`), so the posterior on
the user's scale does not depend on the standardisation (only the starting point does).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bayesgmm.core.priors import MixturePrior
from bayesgmm.posterior.draws import log_mixture_density, responsibilities
from bayesgmm.posterior.relabel import best_permutations, gaussian_kl_cost


def draw_from_prior(
    prior: MixturePrior, n_components: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ``(weights (K,), means (K, d), covariances (K, d, d))`` from a ``full`` prior.

    ``w ~ Dirichlet(a)``, ``Sigma_k ~ InvWishart(nu0, Psi0)``,
    ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``.
    """
    if prior.covariance_type != "full":
        raise ValueError(f"draw_from_prior needs a 'full' prior, got {prior.covariance_type!r}")
    d = prior.n_features
    weights = rng.dirichlet(prior.concentration(n_components)) if n_components > 1 else np.ones(1)
    covs = stats.invwishart.rvs(
        df=prior.degrees_of_freedom,
        scale=np.asarray(prior.covariance_prior),
        size=n_components,
        random_state=rng,
    )
    covs = np.reshape(covs, (n_components, d, d))
    chol = np.linalg.cholesky(covs / prior.mean_precision)
    means = prior.mean_prior + np.einsum("kij,kj->ki", chol, rng.standard_normal((n_components, d)))
    return weights, means, covs


def simulate_mixture(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    n_samples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_samples`` rows (n, d) from the mixture, and their labels (n,)."""
    labels = rng.choice(len(weights), size=n_samples, p=weights / weights.sum())
    chol = np.linalg.cholesky(covariances)
    noise = rng.standard_normal((n_samples, means.shape[1]))
    X = means[labels] + np.einsum("nij,nj->ni", chol[labels], noise)
    return X, labels


def mixture_quantities(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    X: np.ndarray,
    points: np.ndarray | None = None,
    pairs: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Label-invariant quantities of parameter draws (module docstring).

    Parameters
    ----------
    weights : ndarray of shape (..., K)
    means : ndarray of shape (..., K, d)
    covariances : ndarray of shape (..., K, d, d)
    X : ndarray of shape (n_samples, d)
        The replicate's data (the log-likelihood; the rows of ``pairs``).
    points : ndarray of shape (n_points, d), optional
        Where the log mixture density is evaluated.
    pairs : ndarray of shape (n_pairs, 2) of int, optional
        Rows of ``X`` whose co-clustering probability is a quantity.

    Returns
    -------
    values : ndarray of shape (..., n_quantities)
    names : list of str
    """
    weights = np.asarray(weights, dtype=np.float64)
    n_components = weights.shape[-1]
    columns = [np.sort(weights, axis=-1)]
    names = [f"weight (sorted) {k + 1}" for k in range(n_components)]
    columns.append(log_mixture_density(X, weights, means, covariances).sum(-1)[..., None])
    names.append("log-likelihood")
    if points is not None and len(points):
        columns.append(log_mixture_density(points, weights, means, covariances))
        names += [f"log density at point {i}" for i in range(len(points))]
    if pairs is not None and len(pairs):
        pairs = np.asarray(pairs, dtype=int)
        resp = responsibilities(X[np.unique(pairs)], weights, means, covariances)
        where = {row: i for i, row in enumerate(np.unique(pairs))}
        first = resp[..., [where[i] for i in pairs[:, 0]], :]
        second = resp[..., [where[j] for j in pairs[:, 1]], :]
        columns.append((first * second).sum(-1))
        names += [f"co-clustering {i}-{j}" for i, j in pairs]
    return np.concatenate(columns, axis=-1), names


def aligned_to_reference(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    reference_means: np.ndarray,
    reference_covariances: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parameters with their components in the package's labelling of a reference.

    In one dimension each draw is sorted by mean (the ordered-means model; the reference
    is not used); in ``d > 1`` each draw is permuted to minimise the summed
    ``KL(N(draw_k) || N(ref_j))`` of matched components (the rule of
    :func:`bayesgmm.posterior.relabel.relabel_to_reference`), which is invariant to an
    affine change of scale applied to both.

    Parameters
    ----------
    weights : ndarray of shape (n_draws, K)
    means : ndarray of shape (n_draws, K, d)
    covariances : ndarray of shape (n_draws, K, d, d)
    reference_means : ndarray of shape (K, d)
    reference_covariances : ndarray of shape (K, d, d)

    Returns
    -------
    weights, means, covariances
        The same shapes, components permuted draw by draw.
    """
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 3:
        raise ValueError(f"means must have shape (n_draws, K, d), got {means.shape}")
    if means.shape[-1] == 1:
        perms = np.argsort(means[..., 0], axis=-1, kind="stable")
    else:
        cost = gaussian_kl_cost(
            means, np.asarray(covariances, np.float64), reference_means, reference_covariances
        )
        perms = best_permutations(cost)  # perms[s, j]: the draw's component labelled j
    rows = np.arange(len(means))[:, None]
    return (
        np.asarray(weights)[rows, perms],
        means[rows, perms],
        np.asarray(covariances)[rows, perms],
    )


def parameter_quantities(
    weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """Component-wise parameters as quantities: weights, means and variances (diagonal).

    Parameters
    ----------
    weights : ndarray of shape (..., K)
    means : ndarray of shape (..., K, d)
    covariances : ndarray of shape (..., K, d, d)

    Returns
    -------
    values : ndarray of shape (..., K (1 + 2 d))
    names : list of str
        ``"weight k"``, ``"mean k[j]"``, ``"variance k[j]"`` (``k`` from 1).
    """
    means = np.asarray(means, dtype=np.float64)
    k, d = means.shape[-2:]
    variances = np.diagonal(np.asarray(covariances, np.float64), axis1=-2, axis2=-1)
    values = np.concatenate(
        [
            np.asarray(weights, np.float64),
            means.reshape(*means.shape[:-2], k * d),
            variances.reshape(*variances.shape[:-2], k * d),
        ],
        axis=-1,
    )
    names = [f"weight {c + 1}" for c in range(k)]
    names += [f"mean {c + 1}[{j}]" for c in range(k) for j in range(d)]
    names += [f"variance {c + 1}[{j}]" for c in range(k) for j in range(d)]
    return values, names


def thinned(draws: np.ndarray, n_keep: int) -> np.ndarray:
    """``n_keep`` draws evenly spaced along the first axis of ``draws`` (all if fewer)."""
    n = draws.shape[0]
    if n <= n_keep:
        return draws
    return draws[np.linspace(0, n - 1, n_keep).round().astype(int)]


def sbc_ranks(draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each true quantity among the draws, ties broken at random.

    Parameters
    ----------
    draws : ndarray of shape (L, n_quantities)
    truth : ndarray of shape (n_quantities,)

    Returns
    -------
    ndarray of shape (n_quantities,), int
        ``#{l : f_l < f~}`` plus a uniform share of the ties, in ``{0, ..., L}``.
    """
    below = (draws < truth).sum(axis=0)
    ties = (draws == truth).sum(axis=0)
    return below + rng.integers(0, ties + 1)


def fractional_ranks(ranks: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``(r + U) / (L + 1)``: uniform on (0, 1) when ``r`` is uniform on ``{0..L}``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return (ranks + rng.random(ranks.shape)) / (n_draws + 1)


def _min_tail_probability(u: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Smallest two-sided binomial tail probability of the ECDF of ``u`` (..., N) over ``z``."""
    n = u.shape[-1]
    counts = (u[..., None, :] <= z[:, None]).sum(-1)
    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper)).min(-1)


@dataclass(frozen=True)
class UniformityTest:
    """The ECDF uniformity test of one quantity.

    Attributes
    ----------
    statistic : float
        Smallest two-sided binomial tail probability of the ECDF over the evaluation points.
    p_value : float
        Share of simulated uniform samples (plus the observed one) whose statistic is as
        small.
    n_replicates : int
    """

    statistic: float
    p_value: float
    n_replicates: int


def evaluation_points(n_replicates: int, max_points: int = 100) -> np.ndarray:
    """``z_i = i / K``, ``i = 1..K-1``, ``K = min(N, max_points)``."""
    k = int(min(max(n_replicates, 2), max_points))
    return np.arange(1, k) / k


def null_statistics(n_replicates: int, n_sim: int = 2000, seed: int = 0) -> np.ndarray:
    """The statistic of ``n_sim`` samples of ``n_replicates`` uniforms, shape (n_sim,).

    Seeded and cached: every test of ``n_replicates`` ranks compares with the same
    simulated null (a read-only array).
    """
    return _null_statistics(int(n_replicates), int(n_sim), int(seed))


@functools.lru_cache(maxsize=16)
def _null_statistics(n_replicates: int, n_sim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = evaluation_points(n_replicates)
    out = np.concatenate(
        [
            _min_tail_probability(rng.random((min(500, n_sim - i), n_replicates)), z)
            for i in range(0, n_sim, 500)
        ]
    )
    out.setflags(write=False)
    return out


def ecdf_uniformity_test(u: np.ndarray, *, n_sim: int = 2000, seed: int = 0) -> UniformityTest:
    """ECDF test that fractional ranks ``u`` (N,) are uniform on (0, 1) (module docstring).

    ``n_sim`` samples of the null (:func:`null_statistics`, seeded by ``seed``).
    """
    u = np.asarray(u, dtype=np.float64)
    observed = float(_min_tail_probability(u, evaluation_points(len(u))))
    null = null_statistics(len(u), n_sim, seed)
    p_value = (1.0 + np.sum(null <= observed)) / (n_sim + 1.0)
    return UniformityTest(observed, float(p_value), len(u))


def ecdf_band(
    n_replicates: int,
    alpha: float = 0.05,
    *,
    n_sim: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simultaneous ``1 - alpha`` band of ``F_N(z) - z`` for N uniform fractional ranks.

    Returns
    -------
    z : ndarray of shape (K - 1,)
        Evaluation points.
    lower, upper : ndarray of shape (K - 1,)
        Band of the ECDF difference ``F_N(z) - z``.
    """
    z = evaluation_points(n_replicates)
    gamma = float(np.quantile(null_statistics(n_replicates, n_sim, seed), alpha))
    lower = stats.binom.ppf(gamma / 2, n_replicates, z) / n_replicates - z
    upper = stats.binom.ppf(1 - gamma / 2, n_replicates, z) / n_replicates - z
    return z, lower, upper


def chisq_uniformity_test(u: np.ndarray, n_bins: int | None = None) -> UniformityTest:
    """Pearson chi-square test of uniformity of ``u`` (N,) on ``n_bins`` equal bins.

    ``n_bins`` defaults to ``max(2, min(20, N // 5))`` (at least five expected per bin).
    """
    u = np.asarray(u, dtype=np.float64)
    if n_bins is None:
        n_bins = max(2, min(20, len(u) // 5))
    counts = np.histogram(u, bins=n_bins, range=(0.0, 1.0))[0]
    result = stats.chisquare(counts)
    return UniformityTest(float(result.statistic), float(result.pvalue), len(u))


@dataclass(frozen=True)
class RankShape:
    """How fractional ranks depart from uniform: their location and their tails.

    Attributes
    ----------
    mean : float
        Mean fractional rank; 1/2 under uniformity (Monte Carlo sd ``sqrt(1 / (12 N))``).
        Below 1/2: the true value sits below the draws too often, the posterior
        overestimates the quantity; above: it underestimates it.
    tails : float
        Share of the fractional ranks below ``tail`` or above ``1 - tail``; ``2 tail``
        under uniformity. More: a U shape, the posterior is too narrow (under-dispersed);
        fewer: a hump, too wide.
    tail : float
    n_replicates : int
    """

    mean: float
    tails: float
    tail: float
    n_replicates: int

    def describe(self, n_sd: float = 2.0) -> str:
        """The departures beyond ``n_sd`` Monte Carlo sds, in words ("" when none).

        E.g. ``"too narrow (U: 41% in the outer 2 x 10%, 20% expected)"``.
        """
        words = []
        n, expected = self.n_replicates, 2 * self.tail
        tail_sd = np.sqrt(expected * (1 - expected) / n)
        shown = f"{self.tails:.0%} in the outer 2 x {self.tail:.0%}, {expected:.0%} expected"
        if self.tails > expected + n_sd * tail_sd:
            words.append(f"too narrow (U: {shown})")
        elif self.tails < expected - n_sd * tail_sd:
            words.append(f"too wide (hump: {shown})")
        if abs(self.mean - 0.5) > n_sd * np.sqrt(1 / (12 * n)):
            side = "over" if self.mean < 0.5 else "under"
            words.append(f"{side}estimates (mean rank {self.mean:.2f})")
        return "; ".join(words)


def rank_shape(u: np.ndarray, tail: float = 0.1) -> RankShape:
    """Location and tail mass of fractional ranks ``u`` (N,): see :class:`RankShape`."""
    u = np.asarray(u, dtype=np.float64)
    if not 0 < tail < 0.5:
        raise ValueError(f"tail must be in (0, 0.5), got {tail}")
    if u.ndim != 1 or len(u) == 0:
        raise ValueError(f"u must be a non-empty 1-D array, got shape {u.shape}")
    tails = float(np.mean((u < tail) | (u > 1 - tail)))
    return RankShape(float(u.mean()), tails, float(tail), len(u))


__all__ = [
    "RankShape",
    "UniformityTest",
    "aligned_to_reference",
    "chisq_uniformity_test",
    "draw_from_prior",
    "ecdf_band",
    "ecdf_uniformity_test",
    "evaluation_points",
    "fractional_ranks",
    "mixture_quantities",
    "null_statistics",
    "parameter_quantities",
    "rank_shape",
    "sbc_ranks",
    "simulate_mixture",
    "thinned",
]
