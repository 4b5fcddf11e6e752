"""``method="gibbs"``: the exact conjugate Gibbs sampler of the package's own model.

The model is the one NUTS samples (:mod:`bayesgmm.bayes.model`): ``w ~ Dirichlet(a)``,
``Sigma_k ~ InvWishart(nu0, Psi0)``, ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``, on the
working scale ``x_z = (x - location) / scale`` with the prior mapped there exactly
(:meth:`bayesgmm.core.spec.Standardization.prior_to_working`), so the posterior on the
user's scale is the same whatever the standardisation. The blocked sampler
(:func:`bayesgmm.posterior.gibbs_kernels.gibbs_chain`) augments it with the labels
``z`` and alternates the exact conditionals: weights and each component's ``(mu_k,
Sigma_k)`` given ``z`` (Dirichlet, Normal-Inverse-Wishart), then ``z`` given them. The
``(w, mu, Sigma)`` draws are draws of the labels-summed-out posterior NUTS samples, with no
tuning, no step size and no divergences.

Under the hierarchical prior (:class:`~bayesgmm.core.priors.HierarchicalPrior`) the scale
``Psi`` of the Inverse-Wishart is one more block, drawn after the components from its
Wishart full conditional ``Wishart(nu_g + K nu0, (G0 + sum_k Sigma_k^-1)^-1)``
(:func:`bayesgmm.posterior.gibbs_kernels.hierarchical_gibbs_chain`) and stored as
``covariance_scale_z`` (working scale), as NUTS stores it.

Scope: ``covariance_type="full"``, ``covariance_prior_family="niw"``, complete data, no
``sample_weight``, no noise component (:func:`check_gibbs`). Each chain starts from
allocations drawn from the responsibilities of its start (the MAP, or the EM optimum or
``start`` point of that chain), runs ``tune`` sweeps that are discarded, then keeps
``draws``; chain ``c`` uses the ``c``-th child of ``numpy.random.default_rng(seed)``, so
one seed gives the same draws.

Identification is that of NUTS: in one dimension each draw's components are sorted by mean
(the ordered-means model; with equal concentrations the ordered posterior is the
symmetric one sorted), with ``identify="ordered_projection"`` by their working-scale means
along the identifying direction, and in ``d > 1`` :func:`bayesgmm.bayes.postprocess.postprocess`
relabels every draw to the MAP.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy.special import gammaln, multigammaln

from bayesgmm.bayes.options import Settings
from bayesgmm.bayes.start import Start
from bayesgmm.bayes.structures import SCALE_NAME
from bayesgmm.core.densities import log_inverse_wishart, log_normal_precision_scaled
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import HierarchicalPrior, MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.posterior.gibbs_kernels import gibbs_chain, hierarchical_gibbs_chain

#: What ``method="gibbs"`` fits, for the error messages.
GIBBS_SCOPE = (
    "covariance_type='full', covariance_prior_family='niw', complete data (no NaN), no "
    "sample_weight and no noise component"
)


def gibbs_problem(
    settings: Settings,
    spec: MixtureSpec,
    *,
    weighted: bool,
    missing: bool,
) -> str | None:
    """What ``method="gibbs"`` does not support in this model, in words; ``None`` if nothing.

    Parameters
    ----------
    settings : Settings
    spec : MixtureSpec
    weighted : bool
        Whether the fit has frequency weights.
    missing : bool
        Whether the data have missing entries.
    """
    problems = []
    if spec.covariance_type != "full":
        problems.append(f"covariance_type={spec.covariance_type!r}")
    if settings.covariance_prior_family != "niw":
        problems.append(f"covariance_prior_family={settings.covariance_prior_family!r}")
    if missing:
        problems.append("missing entries (NaN)")
    if weighted:
        problems.append("sample_weight")
    if spec.noise is not None:
        problems.append("noise=True")
    if settings.sampler_kwargs:
        problems.append(f"sampler_kwargs={settings.sampler_kwargs!r} (it takes none)")
    if problems:
        return f"method='gibbs' supports {GIBBS_SCOPE}; got {', '.join(problems)}"
    conc = spec.prior.concentration(spec.n_components)
    if spec.n_features == 1 and spec.n_components > 1 and not np.all(conc == conc[0]):
        return (
            "method='gibbs' in one dimension needs equal Dirichlet concentrations (the "
            f"ordered-means model is then the symmetric one sorted), got "
            f"weight_concentration={conc.tolist()}"
        )
    return None


def check_gibbs(
    settings: Settings,
    spec: MixtureSpec,
    *,
    weighted: bool,
    missing: bool,
) -> None:
    """Raise ``ValueError`` naming what ``method="gibbs"`` does not support
    (:func:`gibbs_problem`), with the remedy."""
    problem = gibbs_problem(settings, spec, weighted=weighted, missing=missing)
    if problem is not None:
        raise ValueError(f"{problem}: use method='nuts' for this model")


def log_prior_draws(
    weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, prior: MixturePrior
) -> np.ndarray:
    """``log p(w) + sum_k log p(mu_k, Sigma_k)`` of every draw (full covariances).

    Parameters
    ----------
    weights : ndarray of shape (..., K)
    means : ndarray of shape (..., K, d)
    covariances : ndarray of shape (..., K, d, d)
    prior : MixturePrior
        A ``full`` prior on the scale of the draws.

    Returns
    -------
    ndarray of shape (...)
    """
    n_components = weights.shape[-1]
    conc = prior.concentration(n_components)
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    log_dir = gammaln(conc.sum()) - gammaln(conc).sum()
    log_dir = log_dir + np.sum(np.where(conc == 1.0, 0.0, (conc - 1.0) * log_w), axis=-1)
    if n_components == 1:
        log_dir = np.zeros(weights.shape[:-1])
    lead = means.shape[:-2]
    d = means.shape[-1]
    flat_means = means.reshape(-1, d)
    flat_covs = covariances.reshape(-1, d, d)
    log_iw = log_inverse_wishart(
        flat_covs, prior.degrees_of_freedom, np.asarray(prior.covariance_prior)
    )
    log_mean = log_normal_precision_scaled(
        flat_means, np.asarray(prior.mean_prior), flat_covs, prior.mean_precision
    )
    return log_dir + (log_iw + log_mean).reshape(*lead, n_components).sum(-1)


def log_hierarchical_prior_draws(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    scales: np.ndarray,
    prior: HierarchicalPrior,
) -> np.ndarray:
    """``log p(w, mu, Sigma, Psi)`` of every draw under the hierarchical prior.

    Parameters
    ----------
    weights, means, covariances
        As :func:`log_prior_draws`: (..., K), (..., K, d), (..., K, d, d).
    scales : ndarray of shape (..., d, d)
        Each draw's ``Psi``.
    prior : HierarchicalPrior
        On the scale of the draws.

    Returns
    -------
    ndarray of shape (...)
    """
    d = scales.shape[-1]
    nu0, nu_g = prior.degrees_of_freedom, prior.scale_degrees_of_freedom
    eye = np.eye(d)
    fixed = log_prior_draws(weights, means, covariances, prior.conditional(eye))
    precision_sum = np.linalg.inv(covariances).sum(axis=-3)
    logdet_psi = np.linalg.slogdet(scales)[1]
    n_components = weights.shape[-1]
    # log InvWishart(Sigma | nu0, Psi) - log InvWishart(Sigma | nu0, I), summed over k
    shift = 0.5 * n_components * nu0 * logdet_psi - 0.5 * np.einsum(
        "...ij,...ji->...", scales - eye, precision_sum
    )
    log_wishart = (
        0.5 * (nu_g - d - 1.0) * logdet_psi
        - 0.5 * np.einsum("ij,...ji->...", prior.scale_rate, scales)
        + 0.5 * nu_g * np.linalg.slogdet(prior.scale_rate)[1]
        - 0.5 * nu_g * d * np.log(2.0)
        - multigammaln(0.5 * nu_g, d)
    )
    return fixed + shift + log_wishart


def initial_allocations(
    x_z: np.ndarray, params_z: MixtureParams, rng: np.random.Generator
) -> np.ndarray:
    """Labels drawn from the responsibilities of ``params_z`` (working scale), shape (n,)."""
    covs = params_z.full_covariances()
    chol = np.linalg.cholesky(covs)
    diff = x_z[None, :, :] - params_z.means[:, None, :]
    solved = np.linalg.solve(chol[:, None], diff[..., None])[..., 0]
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    with np.errstate(divide="ignore"):
        log_w = np.log(params_z.weights)
    log_resp = log_w[:, None] - 0.5 * (logdet[:, None] + (solved**2).sum(-1))
    log_resp -= log_resp.max(axis=0)
    resp = np.exp(log_resp)
    cdf = np.cumsum(resp, axis=0)
    u = rng.random(x_z.shape[0]) * cdf[-1]
    z = (cdf < u[None, :]).sum(axis=0)
    return np.minimum(z, params_z.n_components - 1).astype(np.int64)


def identified_order(
    means_z: np.ndarray, direction: np.ndarray | None, n_features: int
) -> np.ndarray | None:
    """Per-draw component order of the identifying constraint, shape (..., K), or ``None``.

    One dimension: by mean; with a projection direction (d,): by the working-scale means
    along it; otherwise ``None`` (the draws are relabelled to the MAP afterwards).
    """
    if n_features == 1:
        return np.argsort(means_z[..., 0], axis=-1, kind="stable")
    if direction is not None:
        return np.argsort(means_z @ direction, axis=-1, kind="stable")
    return None


def _take_components(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values`` (chains, draws, K, ...) with the components of each draw in ``order``."""
    index = order.reshape(order.shape + (1,) * (values.ndim - order.ndim))
    return np.take_along_axis(values, index, axis=2)


def run_gibbs(
    X: np.ndarray,
    spec: MixtureSpec,
    start: Start,
    settings: Settings,
    *,
    seed: int,
) -> xr.DataTree:
    """Chains of the conjugate Gibbs sampler (module docstring), as NUTS returns them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Complete data on the user's scale.
    spec : MixtureSpec
        A ``full`` spec with a prior and no noise (:func:`check_gibbs`).
    start : Start
        The chains' starts (``start.points``: one, or one per chain) and the identifying
        direction (``start.projection_order``).
    settings : Settings
        ``chains``, ``draws`` (kept sweeps per chain) and ``tune`` (discarded sweeps).
    seed : int

    Returns
    -------
    DataTree
        ``posterior``: ``weights`` (component), ``means_z`` (component, feature),
        ``covariances_z`` (component, feature, feature_bis) on the working scale and
        ``means``, ``covariances`` on the user's scale, dims ``chain``, ``draw``;
        ``sample_stats``: ``lp`` (log-likelihood plus log prior of the draw, on the
        working scale: the user-scale log posterior up to a constant), ``log_likelihood``
        (its likelihood part), ``diverging`` (all ``False``), and the attribute
        ``sampling_time``.
    """
    scaling = spec.standardization
    prior_z = spec.working_prior
    x_z = np.ascontiguousarray(scaling.to_working(X))
    points = list(start.points) if isinstance(start.points, Sequence) else [start.points]
    if len(points) == 1:
        points = points * settings.chains
    conc = prior_z.concentration(spec.n_components)
    hierarchical = isinstance(prior_z, HierarchicalPrior)
    results = []
    began = time.perf_counter()
    for point, chain_rng in zip(
        points, np.random.default_rng(int(seed)).spawn(settings.chains), strict=True
    ):
        point_z = scaling.params_to_working(point)
        z0 = initial_allocations(x_z, point_z, chain_rng)
        common = (x_z, z0, conc, prior_z.mean_prior, prior_z.mean_precision)
        if hierarchical:  # Psi drawn in every sweep, from its mode given the start
            chain = hierarchical_gibbs_chain(
                *common,
                prior_z.degrees_of_freedom,
                prior_z.scale_mode(point_z.full_covariances()),
                prior_z.scale_degrees_of_freedom,
                prior_z.scale_rate,
                settings.tune,
                settings.draws,
                chain_rng,
            )
        else:
            chain = gibbs_chain(
                *common,
                prior_z.degrees_of_freedom,
                prior_z.covariance_prior,
                settings.tune,
                settings.draws,
                chain_rng,
            )
        results.append(chain)
    seconds = time.perf_counter() - began
    stacked = [np.stack(r) for r in zip(*results, strict=True)]
    log_w, means_z, covs_z, loglik = stacked[:4]
    direction = None if start.projection_order is None else start.projection_order.direction
    order = identified_order(means_z, direction, spec.n_features)
    if order is not None:
        log_w, means_z, covs_z = (_take_components(v, order) for v in (log_w, means_z, covs_z))
    weights = np.exp(log_w)
    weights /= weights.sum(axis=-1, keepdims=True)
    if hierarchical:
        lp = loglik + log_hierarchical_prior_draws(weights, means_z, covs_z, stacked[5], prior_z)
    else:
        lp = loglik + log_prior_draws(weights, means_z, covs_z, prior_z)
    loc, sc = scaling.location, scaling.scale
    dims = ("chain", "draw")
    comp = (*dims, "component")
    n_chains, n_draws, n_components, d = means_z.shape
    coords = {
        "chain": np.arange(n_chains),
        "draw": np.arange(n_draws),
        "component": np.arange(n_components),
        "feature": np.arange(d),
        "feature_bis": np.arange(d),
    }
    posterior = xr.Dataset(
        {
            "weights": (comp, weights),
            "means_z": ((*comp, "feature"), means_z),
            "covariances_z": ((*comp, "feature", "feature_bis"), covs_z),
            "means": ((*comp, "feature"), loc + sc * means_z),
            "covariances": ((*comp, "feature", "feature_bis"), covs_z * np.outer(sc, sc)),
        },
        coords=coords,
        attrs={"sampler": "gibbs", "sampling_time": seconds, "tune": int(settings.tune)},
    )
    if hierarchical:
        posterior[SCALE_NAME] = ((*dims, "feature", "feature_bis"), stacked[5])
    stats = xr.Dataset(
        {
            "lp": (dims, lp),
            "log_likelihood": (dims, loglik - len(X) * scaling.log_jacobian),
            "diverging": (dims, np.zeros((n_chains, n_draws), dtype=bool)),
        },
        coords={"chain": coords["chain"], "draw": coords["draw"]},
        attrs={"sampling_time": seconds},
    )
    return xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})


__all__ = [
    "GIBBS_SCOPE",
    "check_gibbs",
    "gibbs_problem",
    "identified_order",
    "initial_allocations",
    "log_hierarchical_prior_draws",
    "log_prior_draws",
    "run_gibbs",
]
