"""Where the chains start: the MAP-EM fit, its optima, the ordering constraint, jitter.

:func:`find_start` runs MAP-EM (:func:`bayesgmm.em.estimator.fit_map`) under the
sampler's prior (Dirichlet concentrations below one raised to one,
:meth:`MixtureSpec.map_prior`) and returns a :class:`Start`: the MAP (sorted by mean in
1-D, in the order of the identifying constraint with ``identify="ordered_projection"``),
the EM optima that start chains and which chain starts where. The points themselves are
mapped to a model's unconstrained space and jittered by :mod:`bayesgmm.bayes.sampling`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.initial_point import make_initial_point_fn

from bayesgmm.bayes.options import Settings
from bayesgmm.core.methods import MCMC_METHODS
from bayesgmm.core.missing import has_missing
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.core.weights import weighted_moments
from bayesgmm.em.estimator import GaussianMixture, fit_map
from bayesgmm.posterior.relabel import ProjectionOrder, projection_order

#: Convergence of the MAP-EM start: tighter than GaussianMixture's default (1e-3 per sample),
#: which on a million rows stops tens of posterior sds short of the mode.
EM_TOL = 1e-6
EM_MAX_ITER = 1000
#: EM optima whose log posterior density lies within this many nats of the best one's
#: start chains too (a mode ``e^-5`` times lower at its peak holds little mass unless it
#: is much wider, which the stacking weights then tell).
START_LOG_DENSITY_GAP = 5.0


@dataclasses.dataclass(frozen=True, eq=False)
class Start:
    """The start of a fit (the estimator's ``em_``, ``map_``, ``start_optima_``, ...).

    Attributes
    ----------
    em : GaussianMixture
        The MAP-EM fit (``em.optima_``: every distinct optimum of its restarts).
    map : MixtureParams
        The MAP on the user's scale: sorted by mean in 1-D, in the constraint's order
        with ``identify="ordered_projection"``.
    noise_weight : float or None
        The MAP noise weight (``None`` without a noise component).
    projection_order : ProjectionOrder or None
        The identifying direction of ``identify="ordered_projection"``, else ``None``.
    optima : list of MixtureParams
        The EM optima within ``START_LOG_DENSITY_GAP`` nats of the best, at most one per
        chain, best first (sorted by mean in 1-D).
    chain_starts : ndarray of shape (chains,)
        Index of each chain's start in ``optima`` (or in the ``start`` setting).
    starts_given : bool
        Whether ``chain_starts`` index the ``start`` setting (one start per chain).
    points : MixtureParams or list of MixtureParams
        What the sampler starts from: one point, or one per chain.
    """

    em: GaussianMixture
    map: MixtureParams
    noise_weight: float | None
    projection_order: ProjectionOrder | None
    optima: list[MixtureParams]
    chain_starts: np.ndarray
    points: MixtureParams | list[MixtureParams]
    starts_given: bool = False

    @property
    def order_basis(self) -> np.ndarray | None:
        """The basis of the ordering constraint (:meth:`ProjectionOrder.basis`), or ``None``."""
        return None if self.projection_order is None else self.projection_order.basis()


def weighted_spec(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    n_components: int,
    covariance_type: str,
    prior,
    **noise,
) -> MixtureSpec:
    """The spec of the model of ``X`` with rows repeated ``w_n`` times: the default prior
    from the weighted moments and the weighted standardisation (``noise``: the noise
    keywords of :meth:`MixtureSpec.from_data`)."""
    if sample_weight is None:
        return MixtureSpec.from_data(X, n_components, covariance_type, prior, **noise)
    spec = MixtureSpec.from_data(
        X,
        n_components,
        covariance_type,
        prior,
        standardize=False,
        moments=weighted_moments(X, sample_weight),
        **noise,
    )
    scaling = Standardization.from_data(X, spec.structure, sample_weight)
    return dataclasses.replace(spec, standardization=scaling)


def is_plain(X: np.ndarray, sample_weight: np.ndarray | None, spec: MixtureSpec) -> bool:
    """No noise component, frequency weights or missing entries: the cached graph fits."""
    return sample_weight is None and spec.noise is None and not has_missing(X)


def sorted_in_1d(params: MixtureParams) -> MixtureParams:
    """``params`` sorted by mean in one dimension (the model's ordered means), else as is."""
    return params.sorted_by_mean() if params.means.shape[1] == 1 else params


def ordered(
    params: MixtureParams, order: ProjectionOrder | None, scaling: Standardization
) -> MixtureParams:
    """``params`` with its components in the order the constraint imposes (if any)."""
    if order is None:
        return params
    working = scaling.params_to_working(params)
    return params.permuted(np.argsort(working.means @ order.direction, kind="stable"))


def projection_order_for(
    spec: MixtureSpec,
    map_params: MixtureParams,
    settings: Settings,
    sample_weight: np.ndarray | None,
    n_rows: int,
) -> ProjectionOrder | None:
    """The identifying direction of ``identify="ordered_projection"``, or ``None``.

    Raises
    ------
    ValueError
        The prior's Dirichlet concentrations differ (the labels then mean something).
    """
    if (
        settings.identify != "ordered_projection"
        or settings.method not in MCMC_METHODS
        or settings.n_components == 1
        or spec.n_features == 1
    ):
        return None
    conc = spec.prior.concentration(settings.n_components)
    if not np.all(conc == conc[0]):
        raise ValueError(
            "identify='ordered_projection' needs a prior that treats the components "
            f"alike, got weight_concentration={conc.tolist()}: the labels then mean "
            "something and ordering them would change the posterior; use "
            "identify='relabel'"
        )
    working = spec.standardization.params_to_working(map_params)
    total = float(n_rows if sample_weight is None else np.sum(sample_weight))
    return projection_order(working.means, working.full_covariances(), working.weights, total)


def start_optima(
    optima: Sequence[tuple[MixtureParams, float]], chains: int, n_samples: int
) -> list[MixtureParams]:
    """The EM optima within ``START_LOG_DENSITY_GAP`` nats of the best, at most ``chains``.

    Parameters
    ----------
    optima : sequence of (MixtureParams, float)
        EM optima and their objective per sample, best first (``GaussianMixture.optima_``).
    chains : int
    n_samples : int
        Rows fitted (the objective per sample times this is in nats).
    """
    best = optima[0][1]
    kept = [
        params
        for params, bound in optima[:chains]
        if (best - bound) * n_samples <= START_LOG_DENSITY_GAP
    ]
    return [sorted_in_1d(p) for p in kept]


def find_start(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    spec: MixtureSpec,
    settings: Settings,
    noise_init: np.ndarray | None,
) -> Start:
    """MAP-EM under ``spec``'s MAP prior, and the start of every chain.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Checked data, rows of positive weight.
    sample_weight : ndarray of shape (n_samples,) or None
    spec : MixtureSpec
        The sampler's spec (its prior is the sampler's).
    settings : Settings
    noise_init : ndarray of shape (n_samples,) or None
        Checked initial noise probabilities (noise only).

    Returns
    -------
    Start
    """
    map_spec = spec.with_prior(spec.map_prior())
    em = fit_map(
        X,
        map_spec,
        sample_weight=sample_weight,
        n_init=settings.em_n_init,
        tol=EM_TOL,
        max_iter=EM_MAX_ITER,
        random_state=settings.random_state,
        noise_init=noise_init,
        missing=settings.missing,
    )
    map_params = sorted_in_1d(em.params_)
    order = projection_order_for(spec, map_params, settings, sample_weight, len(X))
    map_params = ordered(map_params, order, spec.standardization)  # the constraint's labels
    optima = start_optima(em.optima_, settings.chains, len(X))
    points = map_params if settings.start is None else settings.start
    chain_starts = np.zeros(settings.chains, dtype=int)
    per_chain = settings.sampler == "pymc" or is_plain(X, sample_weight, spec)
    mcmc = settings.method in MCMC_METHODS
    if mcmc and settings.start is None and per_chain and len(optima) > 1:
        chain_starts = np.arange(settings.chains) % len(optima)
        points = [optima[i] for i in chain_starts]
    starts_given = isinstance(settings.start, Sequence) and len(settings.start) > 1
    if starts_given:
        chain_starts = np.arange(settings.chains)
    return Start(
        em=em,
        map=map_params,
        noise_weight=em.noise_weight_ if spec.noise is not None else None,
        projection_order=order,
        optima=optima,
        chain_starts=chain_starts,
        points=points,
        starts_given=starts_given,
    )


def transformed_point(model: pm.Model, point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map constrained values of the free variables to the sampler's unconstrained space."""
    fn = make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )
    return fn(0)


def constrained_point(model: pm.Model, point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`transformed_point`: free variables' values keyed by their own names.

    ``pm.sample(initvals=...)`` recovers a variable from a transformed value's name by
    cutting at the last underscore, which fails for transforms whose names contain one
    (``LKJCorr``'s ``cholesky_corr``); constrained values keyed by the variables' names
    avoid that.
    """
    out = {}
    for rv in model.free_RVs:
        value = point[model.rvs_to_values[rv].name]
        transform = model.rvs_to_transforms.get(rv)
        if transform is not None:
            value = transform.backward(pt.as_tensor(value), *rv.owner.inputs).eval()
        out[rv.name] = np.asarray(value)
    return out


def jitter_points(
    point: dict[str, np.ndarray], n_points: int, scale: float, rng: np.random.Generator
) -> list[dict[str, np.ndarray]]:
    """``n_points`` copies of an unconstrained point with U(-scale, scale) noise added."""
    return [
        {name: value + rng.uniform(-scale, scale, np.shape(value)) for name, value in point.items()}
        for _ in range(n_points)
    ]


__all__ = [
    "EM_MAX_ITER",
    "EM_TOL",
    "START_LOG_DENSITY_GAP",
    "Start",
    "constrained_point",
    "find_start",
    "is_plain",
    "jitter_points",
    "ordered",
    "start_optima",
    "transformed_point",
    "weighted_spec",
]
