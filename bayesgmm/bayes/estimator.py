"""``BayesianGaussianMixture``: the full posterior of a Gaussian mixture, by NUTS or VI.

The estimator orchestrates three steps:

1. **Start.** MAP-EM (:class:`bayesgmm.GaussianMixture`) under the same prior gives
   ``map_``; in one dimension it is sorted by mean to match the ordered means of the
   model. Every chain starts at this point plus a small seeded uniform jitter in the
   unconstrained space (``jitter``, default 0.1), so no chain starts in a hopeless
   region. With ``sampler="nutpie"`` (the default) each chain is one nutpie run from
   its jittered start; with ``sampler="pymc"`` the jittered points are passed per chain
   as ``initvals`` (``init="adapt_diag"``: no further jitter).
2. **Inference.** NUTS, by default nutpie on the structure's compiled log-density,
   compiled once per (K, covariance structure, d, prior family) and process and reused
   for every later fit of that structure (:mod:`bayesgmm.bayes.compiled`, which gives the
   measurements behind the choice); a run whose R-hat or ESS misses its threshold after
   ``draws`` goes on to 2x and 4x ``draws`` (``max_draws``); ``sampler="pymc"`` is
   PyMC's own NUTS on a model compiled per fit. ADVI / full-rank ADVI (optionally
   minibatched), or just the MAP.
3. **Post-processing.** For ``d > 1`` every draw is relabelled to the MAP labelling
   (:mod:`bayesgmm.posterior.relabel`); then ``log_likelihood`` (one term per observation, the
   user's scale) and ``posterior_predictive`` (one replicate data set per draw) are
   computed in NumPy, so nothing is compiled after sampling.

Method ``"map"`` stores the MAP estimate as a single-draw posterior (1 chain x 1 draw)
with its log-likelihood, so every posterior method also works for it; it has no
``sample_stats`` and :meth:`BayesianGaussianMixture.diagnose` refuses it. VI draws are
independent and stored as one chain; they are importance-resampled draws of a defensive
proposal adapted from q when that correction's PSIS k-hat is < 0.7 (``bayesgmm.bayes.vi``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pymc.initial_point import make_initial_point_fn
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, DensityMixin, clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import validate_data

from bayesgmm.bayes.model import (
    COVARIANCE_PRIOR_FAMILIES,
    OBSERVED,
    CovariancePriorFamily,
    build_model,
    check_model_options,
    initial_point,
)
from bayesgmm.core.covariance import CovarianceType, covariance_types, get_structure
from bayesgmm.core.methods import METHODS, SAMPLERS, TUNE, Method, Sampler
from bayesgmm.core.missing import MISSING_OPTIONS, check_missing_columns, has_missing
from bayesgmm.core.noise import check_noise_init, check_noise_volume, with_noise_column
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.core.validation import (
    RANDOM_STATE_HELP,
    RandomState,
    check_data,
    check_feature_combination,
    check_positive_int,
    check_random_state,
    is_random_state,
)
from bayesgmm.core.weights import check_sample_weight, positive_rows, weighted_moments
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.posterior.diagnostics import (
    POSTERIOR_VARS,
    chain_modes,
    chain_stacking,
    diagnose,
    drifting_chains,
    log_density_draws,
    parameter_matrix,
    stacking_groups,
)
from bayesgmm.posterior.draws import (
    equal_tailed_interval,
    impute_draws,
    log_joint_densities,
    log_mixture_density,
    responsibilities,
    sample_mixture,
    stack_draws,
)
from bayesgmm.posterior.kernels import replicates_kernel
from bayesgmm.posterior.partitions import Loss, PartitionSummary, summarize_partitions
from bayesgmm.posterior.relabel import (
    ProjectionOrder,
    RelabelingRecord,
    apply_permutations,
    identity_record,
    projection_order,
    relabel_to_reference,
)
from bayesgmm.posterior.stacking import stacked_indices
from bayesgmm.posterior.summaries import parameter_draws, point_estimate_table, posterior_summary

MINIBATCH_THRESHOLD = 20_000
MINIBATCH_SIZE = 1_000
#: Draws of the defensive proposal of the VI correction (at least ``draws``): 16000 keep the
#: galaxies K=3 correction's k-hat below 0.7 over fit and proposal seeds (4000: up to 0.72)
#: and its sds of heavy-tailed variances steadier; 2-4 s on galaxies, 3-8 s on Old Faithful.
PSIS_DRAWS = 16_000
#: Each draw evaluates the log density on every row (about 3 ms for 18000 rows): above
#: ``PSIS_ROW_BUDGET / PSIS_DRAWS`` rows the correction uses ``PSIS_ROW_BUDGET / n_rows``
#: draws, at least ``PSIS_MIN_DRAWS`` (the earlier default; many rows make the posterior
#: nearer Gaussian, and the k-hat still judges the result).
PSIS_ROW_BUDGET = 16_000_000
PSIS_MIN_DRAWS = 4_000
TARGET_ACCEPT = 0.9
START_JITTER = 0.1
#: Convergence of the MAP-EM start: tighter than GaussianMixture's default (1e-3 per sample),
#: which on a million rows stops tens of posterior sds short of the mode.
EM_TOL = 1e-6
EM_MAX_ITER = 1000
#: Largest ``n_obs * chains * draws`` for which log-likelihood and predictive draws are stored.
MAX_POINTWISE_VALUES = 20_000_000
#: EM optima whose log posterior density lies within this many nats of the best one's
#: start chains too (a mode ``e^-5`` times lower at its peak holds little mass unless it
#: is much wider, which the stacking weights then tell).
START_LOG_DENSITY_GAP = 5.0
#: Nats by which EM from a posterior draw must beat the restarts' optimum to become the MAP:
#: more than two EM runs that stop at the same optimum differ by (measured: a 2-component
#: 80-row fit's restarts and EM from a draw both at -305.50, the second a few thousandths
#: higher; galaxies K=4's missed optimum is 4.7 nats higher).
REFINE_MIN_GAIN = 0.01
#: An extended run stops early when even this multiple of the ESS projected to ``max_draws``
#: (in proportion to the draws) misses the threshold: short runs of slowly mixing chains
#: underestimate the ESS that longer ones reach.
EXTEND_ESS_SLACK = 2.0
#: ``max_draws=None`` extends a run of at least this many draws (all chains): one sized
#: to reach the ESS threshold of 400 at 25 % efficiency; shorter runs are quick looks.
EXTEND_MIN_TOTAL_DRAWS = 1600
#: How chains are combined into one posterior (:mod:`bayesgmm.posterior.stacking`).
CHAIN_COMBINATIONS: tuple[str, ...] = ("auto", "pool", "stack")
#: How NUTS identifies the component labels in d > 1 (``identify``).
IDENTIFICATIONS: tuple[str, ...] = ("relabel", "ordered_projection")


def psis_draws(n_rows: int, draws: int) -> int:
    """Draws of the VI correction for ``n_rows`` rows and ``draws`` posterior draws.

    ``PSIS_DRAWS`` up to 1000 rows, then ``PSIS_ROW_BUDGET / n_rows``, never fewer than
    ``PSIS_MIN_DRAWS`` nor than ``draws``.
    """
    budget = int(np.clip(PSIS_ROW_BUDGET // max(int(n_rows), 1), PSIS_MIN_DRAWS, PSIS_DRAWS))
    return max(budget, int(draws))


def transformed_point(model: pm.Model, point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map constrained values of the free variables to the sampler's unconstrained space."""
    fn = make_initial_point_fn(
        model=model, overrides=point, jitter_rvs=set(), return_transformed=True
    )
    return fn(0)


@contextlib.contextmanager
def _pymc_log_level(verbose: bool):
    """Silence PyMC's INFO messages (``Sampling: [X]``) unless ``verbose``."""
    logger = logging.getLogger("pymc")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


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


def _sample_pymc(model, starts, *, draws, tune, chains, seed, progressbar, **kwargs):
    """NUTS with PyMC's sampler, chain ``c`` starting exactly at ``starts[c]``."""
    return pm.sample(
        draws,
        tune=tune,
        chains=chains,
        initvals=starts,
        init="adapt_diag",
        model=model,
        nuts_sampler="pymc",
        random_seed=seed,
        progressbar=progressbar,
        quiet=not progressbar,
        compute_convergence_checks=False,
        **kwargs,
    )


def _sample_nutpie(model, start, jitter, *, draws, tune, chains, seed, progressbar, **kwargs):
    """NUTS with nutpie, every chain starting at ``start`` plus a seeded U(-jitter, jitter)."""
    import nutpie

    # Workaround of an upstream limitation: nutpie's initial point is PyMC's, whose jitter is
    # a fixed U(-1, 1) on every jittered variable, with no scale and no per-chain start
    # (https://github.com/pymc-devs/nutpie/issues/149, https://github.com/pymc-devs/pymc/issues/7555):
    #   c = nutpie.compile_pymc_model(model, initial_points=start)
    #   c.initial_point_func(0) - c.initial_point_func(1)  # differences up to 2, not 2 * jitter
    # So compile without jitter and replace the initial-point function by a scaled one.
    compiled = nutpie.compile_pymc_model(model, initial_points=start, jitter_rvs=set())
    base = np.asarray(compiled.initial_point_func(0), dtype=np.float64)

    def jittered(chain_seed) -> np.ndarray:
        return base + np.random.default_rng(chain_seed).uniform(-jitter, jitter, base.shape)

    compiled = dataclasses.replace(compiled, initial_point_func=jittered)
    return nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progress_bar=progressbar,
        **kwargs,
    )


def _sample_compiled(
    X, spec, family, start_points, jitter, rng, *, seed, order_basis=None, **settings
):
    """NUTS with nutpie on the structure's cached compiled model (:mod:`bayesgmm.bayes.compiled`).

    ``start_points`` are constrained points, one per chain or one for all; each chain
    starts there plus a seeded U(-jitter, jitter) in the unconstrained space.
    ``order_basis``: the identifying basis of an ordered-projection model, or ``None``.
    """
    from bayesgmm.bayes.compiled import compiled_mixture

    compiled = compiled_mixture(
        X, spec, covariance_prior_family=family, ordered_projection=order_basis is not None
    )
    starts = [compiled.unconstrained(point) for point in start_points]
    if len(starts) == 1:
        starts = starts * settings["chains"]
    jittered = [x + rng.uniform(-jitter, jitter, x.shape) for x in starts]
    settings = {k: v for k, v in settings.items() if k != "chains"}
    return compiled.sample(X, spec, jittered, seed=seed, order_basis=order_basis, **settings)


def _pointwise_groups(
    X: np.ndarray, posterior: xr.Dataset, seed: int
) -> tuple[xr.Dataset, xr.Dataset]:
    """``log_likelihood`` and ``posterior_predictive`` groups (compiled loops over draws).

    ``log p(x_n | theta_s)`` for every draw and observation (the user's scale), and one
    replicate data set per draw, drawn from that draw's mixture.
    """
    weights = posterior["weights"].transpose("chain", "draw", "component").values
    means = posterior["means"].transpose("chain", "draw", "component", "feature").values
    covs = (
        posterior["covariances"]
        .transpose("chain", "draw", "component", "feature", "feature_bis")
        .values
    )
    n_chains, n_draws = weights.shape[:2]
    n_obs, d = X.shape
    log_lik = np.stack(
        [log_mixture_density(X, weights[c], means[c], covs[c]) for c in range(n_chains)]
    )
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(covs)
    cdf = np.cumsum(weights, axis=-1)
    cdf /= cdf[..., -1:]
    replicates = np.empty((n_chains, n_draws, n_obs, d))
    for c in range(n_chains):
        u = rng.random((n_draws, n_obs))
        noise = rng.standard_normal((n_draws, n_obs, d))
        replicates[c] = replicates_kernel(
            u, noise, np.ascontiguousarray(cdf[c]), np.ascontiguousarray(means[c]), chol[c]
        )
    coords = {
        "chain": posterior["chain"].values,
        "draw": posterior["draw"].values,
        "obs": np.arange(n_obs),
    }
    log_likelihood = xr.Dataset({OBSERVED: (("chain", "draw", "obs"), log_lik)}, coords=coords)
    predictive = xr.Dataset(
        {OBSERVED: (("chain", "draw", "obs", "feature"), replicates)},
        coords={**coords, "feature": np.arange(d)},
    )
    return log_likelihood, predictive


def _start_list(start) -> list[MixtureParams]:
    """One start, or one per chain, as a list."""
    return list(start) if isinstance(start, Sequence) else [start]


def _check_complete(idata: xr.DataTree, settings: dict) -> xr.DataTree:
    """Raise ``KeyboardInterrupt`` if the sampler returned fewer chains or draws than asked.

    PyMC catches Ctrl-C and returns the draws made so far; a truncated run must not pass
    for a finished fit (diagnostics and reports would silently describe a partial posterior).
    """
    sizes = idata["posterior"].sizes
    if sizes["chain"] < settings["chains"] or sizes["draw"] < settings["draws"]:
        raise KeyboardInterrupt(
            f"sampling was interrupted: {sizes['chain']} chain(s) x {sizes['draw']} draws of "
            f"the {settings['chains']} x {settings['draws']} asked for"
        )
    return idata


def _posterior_from_point(model: pm.Model, values: dict[str, np.ndarray]) -> xr.Dataset:
    """A (1 chain x 1 draw) posterior dataset from named values."""
    dims = model.named_vars_to_dims
    data = {
        name: (("chain", "draw", *dims.get(name, ())), np.asarray(value)[None, None])
        for name, value in values.items()
    }
    coords = {name: np.asarray(c) for name, c in model.coords.items()}
    ds = xr.Dataset(data, coords={"chain": [0], "draw": [0]})
    return ds.assign_coords({k: v for k, v in coords.items() if k in ds.dims})


def _relabel_posterior(posterior: xr.Dataset, reference: MixtureParams):
    """Relabel every draw of a (d > 1) posterior to ``reference``."""
    means = posterior["means"].transpose("chain", "draw", "component", "feature").values
    covs = (
        posterior["covariances"]
        .transpose("chain", "draw", "component", "feature", "feature_bis")
        .values
    )
    perms, record = relabel_to_reference(means, covs, reference)
    updated = {}
    for name, var in posterior.data_vars.items():
        if "component" not in var.dims:
            continue
        rest = [d for d in var.dims if d not in ("chain", "draw", "component")]
        ordered = var.transpose("chain", "draw", "component", *rest)
        updated[name] = ordered.copy(data=apply_permutations(ordered.values, perms)).transpose(
            *var.dims
        )
    return posterior.assign(updated), record


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


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _int_at_least(minimum: int) -> Callable[[object], bool]:
    return lambda value: _is_int(value) and value >= minimum


def _one_of(choices: tuple[str, ...]) -> Callable[[object], bool]:
    return lambda value: isinstance(value, str) and value in choices


def _is_bool(value) -> bool:
    return isinstance(value, bool | np.bool_)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value) and np.isfinite(value)


def _is_start(value) -> bool:
    if value is None or isinstance(value, MixtureParams):
        return True
    return (
        isinstance(value, Sequence)
        and len(value) > 0
        and all(isinstance(v, MixtureParams) for v in value)
    )


def _is_noise_volume(value) -> bool:
    try:
        check_noise_volume(value)
    except ValueError:
        return False
    return True


def _choices(choices: tuple[str, ...]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


#: Every constructor setting: a test of its value and what it must be. ``fit`` checks them all.
PARAMETER_CONSTRAINTS: dict[str, tuple[Callable[[object], bool], str]] = {
    "n_components": (_int_at_least(1), "a positive int (the number of components K)"),
    "covariance_type": (
        lambda v: isinstance(v, str) and v in covariance_types(),
        "a registered covariance structure: " + _choices(covariance_types()),
    ),
    "prior": (
        lambda v: (
            v is None or isinstance(v, MixturePrior) or (isinstance(v, str) and v == "default")
        ),
        "'default', None (flat: method='map' only) or a MixturePrior",
    ),
    "covariance_prior_family": (
        _one_of(COVARIANCE_PRIOR_FAMILIES),
        _choices(COVARIANCE_PRIOR_FAMILIES),
    ),
    "method": (_one_of(METHODS), _choices(METHODS)),
    "draws": (_int_at_least(1), "a positive int (draws per chain)"),
    "max_draws": (
        lambda v: v is None or (_is_int(v) and v >= 1),
        "None (4 x draws) or a positive int (the longest run per chain; draws turns the "
        "extension off)",
    ),
    "tune": (_int_at_least(0), "an int >= 0 (tuning steps per chain)"),
    "chains": (_int_at_least(1), "a positive int"),
    "sampler": (_one_of(SAMPLERS), _choices(SAMPLERS)),
    "target_accept": (
        lambda v: _is_real(v) and 0.0 < v < 1.0,
        "a float strictly between 0 and 1 (e.g. 0.9; raise it towards 0.99 on divergences)",
    ),
    "jitter": (
        lambda v: _is_real(v) and v >= 0.0,
        "a float >= 0 (half-width of the uniform start jitter; 0 starts every chain "
        "exactly at `start`)",
    ),
    "start": (
        _is_start,
        "None (the best EM optima), a MixtureParams, or a list of them, one per chain",
    ),
    "combine_chains": (
        _one_of(CHAIN_COMBINATIONS),
        _choices(CHAIN_COMBINATIONS)
        + " ('auto' stacks the chains when they sit in different modes, else pools them)",
    ),
    "identify": (
        _one_of(IDENTIFICATIONS),
        _choices(IDENTIFICATIONS)
        + " ('relabel': relabel the draws to the MAP; 'ordered_projection': also order the "
        "means along the direction that best separates the MAP's components)",
    ),
    "vi_iterations": (_int_at_least(1), "a positive int (optimisation steps of VI)"),
    "em_n_init": (
        lambda v: (isinstance(v, str) and v == "auto") or _int_at_least(1)(v),
        '"auto" or a positive int (EM restarts of the MAP start; see GaussianMixture\'s n_init)',
    ),
    "batch_size": (
        lambda v: v is None or (isinstance(v, str) and v == "auto") or _int_at_least(1)(v),
        f"'auto' (minibatches of {MINIBATCH_SIZE} above {MINIBATCH_THRESHOLD} rows), None "
        "(no minibatches) or a positive int",
    ),
    "pointwise": (
        lambda v: _is_bool(v) or (isinstance(v, str) and v == "auto"),
        f"'auto' (when at most {MAX_POINTWISE_VALUES:.0e} values), True or False",
    ),
    "sampler_kwargs": (
        lambda v: v is None or (isinstance(v, dict) and all(isinstance(k, str) for k in v)),
        "None or a dict of keyword arguments (str keys) for pymc.sample, nutpie.sample or "
        "the VI fit",
    ),
    "random_state": (is_random_state, RANDOM_STATE_HELP),
    "progressbar": (_is_bool, "True or False"),
    "noise": (_is_bool, "True or False (a uniform background component for outliers)"),
    "noise_volume": (
        _is_noise_volume,
        "None (the data's bounding box) or a positive finite number (the hypervolume of the "
        "noise component in the data's units)",
    ),
    "noise_init": (
        lambda v: v is None or np.ndim(v) == 1,
        "None or an array-like of shape (n_samples,) of bools or probabilities",
    ),
    "missing": (
        _one_of(MISSING_OPTIONS),
        _choices(MISSING_OPTIONS) + " ('marginalize': NaN entries are marginalised, missing "
        "at random)",
    ),
}

#: Keys of ``sampler_kwargs`` that a constructor setting owns (``None``: fixed by the estimator).
RESERVED_SAMPLER_KWARGS: dict[str, str | None] = {
    "draws": "draws",
    "tune": "tune",
    "chains": "chains",
    "target_accept": "target_accept",
    "random_seed": "random_state",
    "seed": "random_state",
    "progressbar": "progressbar",
    "progress_bar": "progressbar",
    "initvals": "start",
    "start": "start",
    "n": "vi_iterations",
    "init": None,
    "model": None,
    "nuts_sampler": None,
}


class BayesianGaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture with a full posterior (PyMC), started from MAP-EM.

    Not scikit-learn's class of the same name: :class:`sklearn.mixture.BayesianGaussianMixture`
    is variational Bayes with a truncation level (a Dirichlet-process or Dirichlet prior on
    the weights of ``n_components`` components, some of which it empties). Here
    ``n_components`` is the number of components of the model, the labels are
    marginalised, and the posterior is sampled by NUTS (or approximated by ADVI and
    checked by PSIS); for "how many clusters" see :func:`bayesgmm.how_many_clusters`.

    A scikit-learn estimator: every setting is a constructor argument (``get_params``,
    ``set_params`` and :func:`sklearn.base.clone` work), checked by :meth:`fit` against
    :data:`PARAMETER_CONSTRAINTS`; :meth:`fit` takes only data.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    prior : "default", None or MixturePrior, default="default"
        ``"default"``: the MAP-EM prior :meth:`MixturePrior.default`. ``None``: flat
        priors, only for ``method="map"`` (the MLE); NUTS and VI need a proper prior.
    covariance_prior_family : {"niw", "lkj"}, default="niw"
        See :func:`bayesgmm.bayes.model.build_model`.
    method : {"nuts", "advi", "fullrank_advi", "map"}, default="nuts"
        NUTS, mean-field or full-rank ADVI, or only the MAP (stored as one draw).
    draws : int, default=1000
        Draws per chain (NUTS); independent draws stored as one chain (VI).
    max_draws : int, optional
        NUTS runs longer when ``draws`` are not enough: if after ``draws`` draws per chain
        R-hat or the bulk or tail ESS misses its threshold (:meth:`diagnose`, on the
        relabelled draws), the same chains go on to 2x, 4x, ... ``draws`` and stop at the
        first of these lengths (or ``max_draws``) where all three pass, or where twice the
        ESS projected to ``max_draws`` (in proportion to the draws) is still below 400. The
        draws are those of a run of that length, so the seed alone fixes the result; the
        length reached is in ``n_draws_`` and the posterior's ``draws_per_chain`` attribute.
        Default (``None``): ``4 * draws`` when ``chains * draws >= 1600`` (a run sized for
        an ESS of 400), else ``draws``; ``max_draws=draws`` keeps the length fixed.
        Only the cached compiled model extends (``sampler="nutpie"``, no noise, weights
        or missing entries); other runs have ``draws`` draws.
    tune : int, default=500
        Tuning steps per chain (NUTS; :data:`TUNE`, chosen by measurement: as robust as
        1000 on the project's data sets, 20-25% faster).
    chains : int, default=4
        NUTS chains. With ``sampler="pymc"`` they run in parallel processes: PyMC 6.4's
        ``pm.sample`` uses ``cores=min(4, os.cpu_count())`` unless told otherwise, and this
        estimator leaves that default (``sampler_kwargs={"cores": 1}`` runs them in turn,
        e.g. when :func:`bayesgmm.selection.compare.compare` already runs candidates in parallel).
    sampler : {"nutpie", "pymc"}, default="nutpie"
        NUTS implementation: nutpie on the cached compiled model of the structure
        (:mod:`bayesgmm.bayes.compiled`; chains one after another unless a gradient call takes
        100 µs or more, then in parallel threads; ``sampler_kwargs={"cores": n}`` runs
        ``n`` at a time, the same draws whatever ``n``), or PyMC's sampler on
        a model compiled per fit.
    target_accept : float, default=0.9
        Target acceptance rate of NUTS.
    jitter : float, default=0.1
        Half-width of the uniform jitter added to the start of every chain in the
        unconstrained space.
    start : MixtureParams, sequence of MixtureParams or None, default=None
        Start on the user's scale. ``None``: the distinct EM optima (beyond label
        permutation) of the ``em_n_init`` restarts whose log posterior density lies within
        ``START_LOG_DENSITY_GAP`` (5) nats of the best, at most one per chain, taken in
        turn by the chains (chain ``c`` starts at optimum ``c mod m``); with one such optimum
        every chain starts at the MAP. ``sampler="nutpie"`` starts every chain at the MAP.
        A sequence gives one start per chain (``sampler="pymc"`` only).
        ``chain_starts_`` records which start each chain came from.
    combine_chains : {"auto", "pool", "stack"}, default="auto"
        How the chains make one posterior (NUTS with the pointwise log-likelihood).
        ``"pool"``: every draw counts once. ``"stack"``: Bayesian stacking of the chains
        (:mod:`bayesgmm.posterior.stacking`, Yao, Vehtari and Gelman 2022): ``chains x draws`` draws
        are resampled with chain ``k`` weighted by its stacking weight and stored as one
        chain; the chains as sampled stay in the ``posterior_chains`` group.
        ``"auto"``: stack when the chains sit in different modes or drift between
        configurations (:func:`diagnose`) and stacking beats pooling by more than its
        free weights gain by chance (:func:`bayesgmm.posterior.stacking.stack_chains`), else pool.
        Chains that share a mode are stacked as one unit, a drifting chain on its own
        (:func:`bayesgmm.posterior.diagnostics.stacking_groups`). ``posterior.attrs`` record
        ``chain_combination`` ("pooled" or "stacked"), ``chain_weights`` and, when
        stacking was tried, ``stacking_gain`` and ``stacking_penalty`` (nats).
    identify : {"relabel", "ordered_projection"}, default="relabel"
        How NUTS treats the component labels in d > 1 (in one dimension the means are
        always ordered). ``"relabel"``: the model is unconstrained, chains may move between
        labellings, and every draw is relabelled to the MAP afterwards
        (:mod:`bayesgmm.posterior.relabel`). ``"ordered_projection"`` (NUTS, K > 1, d > 1, equal
        Dirichlet concentrations): the model also constrains ``mu_1 . v < ... < mu_K . v``
        along the direction ``v`` that best separates the MAP's components
        (:func:`bayesgmm.posterior.relabel.projection_order`,
        :class:`bayesgmm.bayes.model.OrderedFirstCoordinate`), so the sampler stays in one
        labelling; the draws are then relabelled the same way. The constraint keeps one of
        the ``K!`` equivalent labellings of every mixture, so the relabelled posterior has
        the same distribution either way; only mixing differs. Measured
        (``reports/benchmarks.md``): where components overlap enough for chains to switch
        labels (iris, K=3) the posterior has mass on the constraint's boundary and the
        constrained sampler mixes worse (divergences, lower ESS), hence the default.
        ``projection_order_`` and ``posterior.attrs["identification"]`` record the direction.
    vi_iterations : int, default=30000
        Most optimisation steps of ADVI / full-rank ADVI (:func:`bayesgmm.bayes.vi.fit_vi`): both
        start at the MAP with standard deviations 0.1 in the unconstrained space, Adam with a
        step decaying as 1/t, and stop when the windowed mean ELBO settles. Every VI fit is
        then checked by the PSIS k-hat of q (``diagnose()``) and corrected: 16000 draws
        (fewer above 1000 rows: :func:`psis_draws`) from a defensive proposal adapted to
        the posterior (q and q widened 2x, then moment-matched:
        :func:`bayesgmm.bayes.vi.psis_khat`) reweighted by Pareto-smoothed importance sampling
        and resampled become the posterior when their k-hat is < 0.7 (not for minibatch
        fits); otherwise the posterior is q's draws, and
        a k-hat of q >= 0.7 warns: use NUTS.
    em_n_init : "auto" or int, default="auto"
        EM restarts of the MAP-EM start (the best one is kept); ``"auto"`` as in
        :class:`GaussianMixture` (60 starts and split-and-merge moves on small data, 20
        otherwise, fewer above 100,000 rows). After NUTS, EM is also run from every
        chain's highest-density draw: an optimum better than the restarts' becomes
        ``map_`` (``map_source_``).
    batch_size : "auto", int or None, default="auto"
        Minibatch size of VI: ``"auto"`` uses minibatches of 1000 above 20000 rows,
        ``None`` never.
    pointwise : "auto" or bool, default="auto"
        Store the per-observation ``log_likelihood`` and ``posterior_predictive`` groups
        (LOO needs them); ``"auto"``: when they hold at most ``MAX_POINTWISE_VALUES``
        (2e7) values, so a million-row minibatch fit does not allocate gigabytes.
    sampler_kwargs : dict or None, default=None
        Further keyword arguments of ``pymc.sample`` (``sampler="pymc"``),
        ``nutpie.sample`` (``sampler="nutpie"``) or the VI ``fit``; keys that a setting
        above owns (``draws``, ``random_seed``, ...) are refused.
    random_state : int, numpy Generator, SeedSequence or None, default=None
        The one seed (EM start, jitter, sampler, predictive draws): the same int gives
        identical draws; a Generator is consumed (the same generator state gives identical
        draws); ``None`` draws fresh entropy.
    progressbar : bool, default=True
    noise : bool, default=False
        Add a uniform background component for outliers (:mod:`bayesgmm.core.noise`,
        mclust's ``Vinv``): ``noise_weight ~ Beta(a0, K a0)`` and the Gaussians' conditional
        weights ``~ Dirichlet(a0)``, i.e. a Dirichlet over the K + 1 weights. The posterior's
        ``weights`` are then absolute (``weights.sum() + noise_weight == 1``);
        :meth:`noise_probability` gives each point's posterior probability of being noise.
    noise_volume : float, optional
        Hypervolume of the noise component in the data's units (default: the data's
        bounding box).
    noise_init : array-like of shape (n_samples,), optional
        Initial noise probabilities of the MAP-EM start (see :class:`GaussianMixture`).
    missing : {"error", "marginalize"}, default="error"
        Missing entries (NaN): ``"error"`` refuses them; ``"marginalize"`` treats them as
        missing at random. The MAP start is then EM on the observed-data likelihood
        (:class:`GaussianMixture` with ``missing="marginalize"``), the PyMC model's
        likelihood is the marginal density of each row's observed coordinates (grouped by
        missingness pattern, :class:`bayesgmm.bayes.model.MarginalMixtureLogp`), so
        ``log_likelihood`` keeps one term per row (LOO works as usual), and
        :meth:`predict`, :meth:`predict_proba`, :meth:`responsibilities` and
        :meth:`score_samples` accept rows with NaN (marginal densities).
        ``posterior_predictive`` draws complete rows; :meth:`impute` draws the missing
        entries given the observed ones. Minibatch VI is not available with NaN.

    Attributes
    ----------
    idata_ : xarray.DataTree
        ``posterior`` (``weights`` (component), ``means`` (component, feature),
        ``covariances`` (component, feature, feature_bis) on the user's scale, plus the
        working-scale variables), ``sample_stats`` (NUTS), ``log_likelihood`` (``X``:
        chain, draw, obs), ``posterior_predictive``, ``observed_data``.
    map_ : MixtureParams
        MAP estimate on the user's scale (sorted by mean in 1-D, by the projection on the
        ordering direction with ``identify="ordered_projection"``); with a noise component
        the Gaussians with conditional weights (see :mod:`bayesgmm.core.noise`).
    map_source_ : str
        Where ``map_`` comes from: ``"EM restarts"`` (the best of ``em_.optima_``), or EM
        started from a chain's highest-density draw when that reached a better optimum
        (NUTS without noise, weights or missing entries).
    map_noise_weight_ : float
        The MAP noise weight (only with ``noise=True``).
    em_ : GaussianMixture
        The fitted EM estimator that gave the start (``em_.optima_``: every distinct
        optimum its restarts reached).
    start_optima_ : list of MixtureParams
        The EM optima that started chains, best first (NUTS with ``start=None``).
    chain_starts_ : ndarray of shape (chains,)
        Index of each chain's start in ``start_optima_`` (or in ``start`` when given).
    n_draws_ : int
        NUTS: draws per chain, ``draws`` or the longer run ``max_draws`` allowed.
    projection_order_ : ProjectionOrder or None
        The direction the means were ordered along (working scale) and its separation;
        ``None`` when the model was unconstrained (``identify``).
    chain_weights_ : ndarray of shape (chains,) or None
        Stacking weights of the chains (None when not computed: pooled chains without
        several modes, VI, MAP).
    model_ : pymc.Model
    relabeling_ : RelabelingRecord
    approximation_ : pymc Approximation
        VI only.
    vi_ : bayesgmm.bayes.vi.VIResult
        VI only: the fit (ELBO trace, iterations, convergence).
    psis_ : bayesgmm.bayes.vi.PSISResult
        VI only: the PSIS check of q itself (Yao et al. 2018).
    psis_correction_ : bayesgmm.bayes.vi.PSISResult or None
        VI only: PSIS from the defensive proposal; when its k-hat is < 0.7 the posterior
        draws are its resampled draws (``idata_.posterior.attrs["vi_draws"] == "psis"``,
        otherwise ``"q"``). ``None`` for minibatch fits.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names.
    method_ : str
        The method of the last fit.
    sample_weight_ : ndarray of shape (n_rows,) or None
        The frequency weights of the rows fitted (those of positive weight).
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: CovarianceType = "full",
        prior: MixturePrior | Literal["default"] | None = "default",
        covariance_prior_family: CovariancePriorFamily = "niw",
        method: Method = "nuts",
        draws: int = 1000,
        max_draws: int | None = None,
        tune: int = TUNE,
        chains: int = 4,
        sampler: Sampler = "nutpie",
        target_accept: float = TARGET_ACCEPT,
        jitter: float = START_JITTER,
        start: MixtureParams | Sequence[MixtureParams] | None = None,
        combine_chains: Literal["auto", "pool", "stack"] = "auto",
        identify: Literal["relabel", "ordered_projection"] = "relabel",
        vi_iterations: int = 30_000,
        em_n_init: int | Literal["auto"] = "auto",
        batch_size: int | Literal["auto"] | None = "auto",
        pointwise: bool | Literal["auto"] = "auto",
        sampler_kwargs: dict | None = None,
        random_state: RandomState = None,
        progressbar: bool = True,
        noise: bool = False,
        noise_volume: float | None = None,
        noise_init=None,
        missing: Literal["error", "marginalize"] = "error",
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.prior = prior
        self.covariance_prior_family = covariance_prior_family
        self.method = method
        self.draws = draws
        self.max_draws = max_draws
        self.tune = tune
        self.chains = chains
        self.sampler = sampler
        self.target_accept = target_accept
        self.jitter = jitter
        self.start = start
        self.combine_chains = combine_chains
        self.identify = identify
        self.vi_iterations = vi_iterations
        self.em_n_init = em_n_init
        self.batch_size = batch_size
        self.pointwise = pointwise
        self.sampler_kwargs = sampler_kwargs
        self.random_state = random_state
        self.progressbar = progressbar
        self.noise = noise
        self.noise_volume = noise_volume
        self.noise_init = noise_init
        self.missing = missing

    def _validate_params(self) -> None:
        """Check every setting against :data:`PARAMETER_CONSTRAINTS`, then their combinations."""
        name_of = type(self).__name__
        for name, (is_valid, expected) in PARAMETER_CONSTRAINTS.items():
            value = getattr(self, name)
            if not is_valid(value):
                raise ValueError(
                    f"{name_of}({name}={value!r}) is invalid: {name} must be {expected}. "
                    f"Pass such a value to the constructor or to set_params({name}=...)."
                )
        if self.prior is None and self.method != "map":
            raise ValueError(
                f"prior=None (flat, improper) only supports method='map', got "
                f"method={self.method!r}: use prior='default' or a MixturePrior for NUTS and VI"
            )
        for key in self.sampler_kwargs or {}:
            if key not in RESERVED_SAMPLER_KWARGS:
                continue
            owner = RESERVED_SAMPLER_KWARGS[key]
            remedy = (
                f"set {name_of}({owner}=...) instead"
                if owner
                else f"{name_of} sets it itself; remove it"
            )
            raise ValueError(f"sampler_kwargs={{{key!r}: ...}} is not allowed: {remedy}")
        if isinstance(self.start, Sequence) and len(self.start) > 1:
            if self.method in ("advi", "fullrank_advi"):
                raise ValueError(
                    f"method={self.method!r} starts from one point, got {len(self.start)} "
                    "starts: pass a single MixtureParams"
                )
            if len(self.start) != self.chains:
                raise ValueError(
                    f"start must be one MixtureParams or one per chain ({self.chains}), got "
                    f"{len(self.start)}: give {self.chains} starts or set chains={len(self.start)}"
                )

    def fit(self, X, y=None, sample_weight=None) -> BayesianGaussianMixture:
        """Fit the posterior (or only the MAP) with the constructor's settings.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or (n_samples,) for one feature
        y : None
            Ignored; present for scikit-learn's API.
        sample_weight : array-like of shape (n_samples,), optional
            **Frequency weights** (:mod:`bayesgmm.core.weights`): the log-likelihood term of
            ``x_n`` is multiplied by ``w_n``, so the posterior is that of the data with row
            ``n`` repeated ``w_n`` times: it narrows as if ``W = sum_n w_n`` rows had been
            observed (weights that only express relative importance should be rescaled to
            sum to the effective sample size first). Rows of weight 0 are dropped (they are
            not in ``observed_data``); the MAP start and the default prior use the weighted
            data; the pointwise ``log_likelihood`` holds ``w_n log p(x_n)``. NUTS and
            full-batch VI take weights; minibatch VI does not (``batch_size="auto"`` then
            uses the full batch).

        Returns
        -------
        self
        """
        from bayesgmm.bayes.compiled import reproducible_compilation

        with reproducible_compilation():
            return self._fit(X, sample_weight)

    def _fit(self, X, sample_weight) -> BayesianGaussianMixture:
        """:meth:`fit` under :func:`bayesgmm.bayes.compiled.reproducible_compilation`."""
        self._validate_params()
        check_random_state(self.random_state)
        allow_nan = self.missing == "marginalize"
        data = check_data(X, allow_1d=True, n_components=self.n_components, allow_nan=allow_nan)
        validate_data(
            self,
            X if np.asarray(X).ndim == 2 else data,
            dtype=np.float64,
            ensure_all_finite="allow-nan" if allow_nan else True,
        )
        check_missing_columns(data, names=getattr(self, "feature_names_in_", None))
        weights = check_sample_weight(sample_weight, data.shape[0])
        if weights is not None and isinstance(self.batch_size, int):
            raise ValueError(
                "sample_weight with minibatch VI (batch_size) is not supported: set "
                "batch_size=None (full-batch VI) or use method='nuts'"
            )
        data, weights = positive_rows(data, weights)
        if self.n_components > data.shape[0]:
            raise ValueError(
                f"n_components={self.n_components} must be <= the number of rows with a "
                f"positive sample_weight ({data.shape[0]})"
            )
        n_features = data.shape[1]
        check_feature_combination(
            noise=bool(self.noise),
            weighted=weights is not None,
            missing=has_missing(data),
        )
        spec = weighted_spec(
            data,
            weights,
            self.n_components,
            self.covariance_type,
            self.prior,
            noise=bool(self.noise),
            noise_volume=self.noise_volume,
        )
        noise_init = check_noise_init(self.noise_init, data.shape[0]) if self.noise else None
        check_model_options(spec.structure, self.covariance_prior_family, n_features)
        prior = spec.prior
        seeds = np.random.default_rng(self.random_state).integers(2**31 - 1, size=4)
        self._X = data
        self.sample_weight_ = weights
        self.spec_ = spec
        map_spec = spec.with_prior(spec.map_prior())
        self.em_ = GaussianMixture(
            self.n_components,
            covariance_type=self.covariance_type,
            prior=map_spec.prior,
            n_init=self.em_n_init,
            tol=EM_TOL,
            max_iter=EM_MAX_ITER,
            random_state=self.random_state,
            noise=bool(self.noise),
            noise_init=noise_init,
            missing=self.missing,
        )._fit_spec(data, map_spec, sample_weight=weights)
        params = self.em_.params_
        self.map_ = params.sorted_by_mean() if n_features == 1 else params
        self.map_source_ = "EM restarts"
        if self.noise:
            self.map_noise_weight_ = self.em_.noise_weight_
        else:
            self.__dict__.pop("map_noise_weight_", None)
        self.projection_order_ = self._projection_order(len(data), weights)
        self.map_ = self._ordered_start(self.map_)  # the labels the constraint gives
        self.model_ = build_model(
            data,
            spec,
            covariance_prior_family=self.covariance_prior_family,
            sample_weight=weights,
            order_basis=self._order_basis,
        )
        self.start_optima_ = self._start_optima(n_features, len(data))
        start = self.map_ if self.start is None else self.start
        self.chain_starts_ = np.zeros(self.chains, dtype=int)
        several = len(self.start_optima_) > 1
        per_chain = self.sampler == "pymc" or self._plain_model  # nutpie: the cached graph
        if self.method == "nuts" and self.start is None and per_chain and several:
            self.chain_starts_ = np.arange(self.chains) % len(self.start_optima_)
            start = [self.start_optima_[i] for i in self.chain_starts_]
        elif isinstance(self.start, Sequence) and len(self.start) > 1:
            self.chain_starts_ = np.arange(self.chains)
        if self.method == "map":
            idata = self._map_idata()
        elif self.method == "nuts":
            idata = self._run_nuts(start, np.random.default_rng(seeds[1]), seeds[0])
            if self._plain_model:
                self._refine_map(idata)
        else:
            idata = self._run_vi(data, start, seeds[0], prior)
        self.method_ = self.method
        pointwise = None if isinstance(self.pointwise, str) else self.pointwise
        self.idata_ = self._postprocess(idata, seeds[2], self.method, pointwise)
        self.chain_weights_ = None
        if self.method == "nuts":
            self.idata_ = self._combine_chains(self.idata_, np.random.default_rng(seeds[3]))
        return self

    def _projection_order(self, n_rows: int, weights: np.ndarray | None) -> ProjectionOrder | None:
        """The identifying direction of ``identify="ordered_projection"``, or ``None``."""
        if (
            self.identify != "ordered_projection"
            or self.method != "nuts"
            or self.n_components == 1
            or self.n_features_in_ == 1
        ):
            return None
        conc = self.spec_.prior.concentration(self.n_components)
        if not np.all(conc == conc[0]):
            raise ValueError(
                "identify='ordered_projection' needs a prior that treats the components "
                f"alike, got weight_concentration={conc.tolist()}: the labels then mean "
                "something and ordering them would change the posterior; use "
                "identify='relabel'"
            )
        working = self.spec_.standardization.params_to_working(self.map_)
        total = float(n_rows if weights is None else np.sum(weights))
        return projection_order(working.means, working.full_covariances(), working.weights, total)

    @property
    def _order_basis(self) -> np.ndarray | None:
        order = getattr(self, "projection_order_", None)
        return None if order is None else order.basis()

    def _ordered_start(self, params: MixtureParams) -> MixtureParams:
        """``params`` with its components in the order the constraint imposes (if any)."""
        order = self.projection_order_
        if order is None:
            return params
        working = self.spec_.standardization.params_to_working(params)
        return params.permuted(np.argsort(working.means @ order.direction, kind="stable"))

    def _start_optima(self, n_features: int, n_samples: int) -> list[MixtureParams]:
        """The EM optima within ``START_LOG_DENSITY_GAP`` nats of the best, at most ``chains``."""
        best = self.em_.optima_[0][1]
        kept = [
            params
            for params, bound in self.em_.optima_[: self.chains]
            if (best - bound) * n_samples <= START_LOG_DENSITY_GAP
        ]
        return [p.sorted_by_mean() if n_features == 1 else p for p in kept]

    def _combine_chains(self, tree: xr.DataTree, rng: np.random.Generator) -> xr.DataTree:
        """Pool or stack the chains (``combine_chains``); record the choice in the attributes."""
        posterior = tree["posterior"].to_dataset()
        n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
        posterior.attrs["chain_starts"] = [int(c) for c in self.chain_starts_]
        usable = n_chains > 1 and "log_likelihood" in tree.children
        if self.combine_chains == "pool" or not usable:
            posterior.attrs["chain_combination"] = "pooled"
            tree["posterior"] = posterior
            return tree
        log_density = log_density_draws(tree)
        params = parameter_matrix(posterior, POSTERIOR_VARS)
        modes = chain_modes(log_density, params)
        drifting = drifting_chains(log_density, params, modes)
        if self.combine_chains == "auto" and len(modes) == 1 and not drifting:
            posterior.attrs["chain_combination"] = "pooled"
            tree["posterior"] = posterior
            return tree
        stacking = chain_stacking(tree, stacking_groups(modes, drifting))
        if self.combine_chains == "auto" and not stacking.significant:
            # the chains predict the data equally well: stacking weights would be noise
            posterior.attrs.update(
                chain_combination="pooled",
                stacking_gain=stacking.gain,
                stacking_penalty=stacking.penalty,
            )
            tree["posterior"] = posterior
            return tree
        weights = stacking.stacked
        self.chain_weights_ = weights
        chain, draw = stacked_indices(weights, n_draws, n_chains * n_draws, rng)
        index = {
            "chain": xr.DataArray(chain, dims="sample"),
            "draw": xr.DataArray(draw, dims="sample"),
        }
        groups = {}
        for name in ("posterior", "log_likelihood", "posterior_predictive"):
            if name not in tree.children:
                continue
            ds = tree[name].to_dataset() if name != "posterior" else posterior
            picked = ds.isel(index).drop_vars(["chain", "draw"], errors="ignore")
            picked = picked.rename({"sample": "draw"}).expand_dims(chain=[0])
            groups[name] = picked.assign_coords(draw=np.arange(n_chains * n_draws))
        groups["posterior"].attrs.update(
            posterior.attrs,
            chain_combination="stacked",
            chain_weights=[float(w) for w in weights],
            stacking_gain=stacking.gain,
            stacking_penalty=stacking.penalty,
        )
        for name, ds in groups.items():
            tree[name] = ds
        tree["posterior_chains"] = posterior
        return tree

    def _starts(self, start) -> list[dict[str, np.ndarray]]:
        starts = _start_list(start)
        return [transformed_point(self.model_, self._initial_point(s, self.model_)) for s in starts]

    def _run_nuts(self, start, rng: np.random.Generator, seed) -> xr.DataTree:
        common = {
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
            "seed": int(seed),
            "target_accept": self.target_accept,
            "progressbar": self.progressbar,
            **(self.sampler_kwargs or {}),
        }
        start = [self._ordered_start(s) for s in _start_list(start)]
        if self.sampler == "nutpie":
            points = [self._initial_point(s, self.model_) for s in start]
            if self._plain_model:
                idata = _sample_compiled(
                    self._X,
                    self.spec_,
                    self.covariance_prior_family,
                    points,
                    self.jitter,
                    rng,
                    order_basis=self._order_basis,
                    checkpoints=self._checkpoints(),
                    enough=self._long_enough,
                    **common,
                )
            else:
                # noise, weights or missing entries: a model of its own (not cached), every
                # chain from the first start
                idata = _sample_nutpie(self.model_, points[0], self.jitter, **common)
            return _check_complete(idata, common)
        starts = self._starts(start)
        points = starts * self.chains if len(starts) == 1 else starts
        jittered = [
            constrained_point(self.model_, jitter_points(p, 1, self.jitter, rng)[0]) for p in points
        ]
        return _check_complete(_sample_pymc(self.model_, jittered, **common), common)

    def _checkpoints(self) -> tuple[int, ...]:
        """The longer runs tried when ``draws`` are not enough (``max_draws``)."""
        if self.max_draws is None:
            sized = self.chains * self.draws >= EXTEND_MIN_TOTAL_DRAWS
            longest = 4 * self.draws if sized else self.draws
        else:
            longest = self.max_draws
        lengths = []
        length = 2 * self.draws
        while length < longest:
            lengths.append(length)
            length *= 2
        return (*lengths, longest) if longest > self.draws else ()

    def _long_enough(self, trace: xr.DataTree) -> bool:
        """Whether to stop at ``trace``: R-hat and both ESS pass on its relabelled draws, or
        ESS, growing in proportion to the draws, cannot reach its threshold by the longest
        run even twice over (chains that barely move are not run four times as long)."""
        posterior = trace["posterior"].to_dataset()
        if self.n_components > 1 and self.n_features_in_ > 1:
            posterior, _ = _relabel_posterior(posterior, self.map_)
        tree = xr.DataTree.from_dict(
            {"posterior": posterior, "sample_stats": trace["sample_stats"].to_dataset()}
        )
        diag = diagnose(tree)
        if diag.mixes:
            return True
        longest = max(self._checkpoints(), default=self.draws)
        ess = min(diag.min_ess_bulk, diag.min_ess_tail)
        projected = EXTEND_ESS_SLACK * ess * longest / diag.n_draws
        return not projected >= diag.ess_threshold

    def _run_vi(self, X, start, seed, prior) -> xr.DataTree:
        if isinstance(start, Sequence):
            (start,) = start
        batch_size = self.batch_size
        if isinstance(batch_size, str):
            large = len(X) > MINIBATCH_THRESHOLD and self.sample_weight_ is None
            batch_size = MINIBATCH_SIZE if large else None
        fit_model = self.model_
        if batch_size is not None:
            fit_model = build_model(
                X,
                self.spec_,
                covariance_prior_family=self.covariance_prior_family,
                batch_size=batch_size,
                random_seed=int(seed),
            )
        from bayesgmm.bayes.vi import fit_vi, psis_khat, psis_khat_subsample, psis_posterior

        with _pymc_log_level(self.progressbar):  # PyMC logs "Interrupted at ..." on stopping
            result = fit_vi(
                fit_model,
                self._initial_point(start, fit_model),
                self.method,
                max_iter=self.vi_iterations,
                random_seed=int(seed),
                progressbar=self.progressbar,
                **(self.sampler_kwargs or {}),
            )
        self.vi_ = result
        self.approximation_ = result.approximation
        if not result.converged:
            warnings.warn(
                f"{self.method} stopped at vi_iterations={result.n_iter} before its ELBO "
                "settled: increase vi_iterations or use method='nuts'",
                UserWarning,
                stacklevel=3,
            )
        self.psis_correction_ = None
        if batch_size is None:
            self.psis_ = psis_khat(fit_model, result.approximation, random_seed=int(seed) + 1)
            # the correction: PSIS from the defensive proposal (q and q widened, then
            # moment-matched), whose resampled draws replace q's when its k-hat < 0.7
            # (bayesgmm.bayes.vi, reports/vi.md)
            self.psis_correction_ = psis_khat(
                fit_model,
                result.approximation,
                n_draws=psis_draws(len(X), self.draws),
                random_seed=int(seed) + 2,
                proposal="defensive",
            )
        else:
            # a subsample's weights estimate the subsample posterior: no correction
            self.psis_ = psis_khat_subsample(
                X,
                self.spec_,
                result.approximation,
                random_seed=int(seed) + 1,
                covariance_prior_family=self.covariance_prior_family,
            )
        correction = self.psis_correction_
        if correction is not None and correction.reliable:
            idata = psis_posterior(
                fit_model, result.approximation, correction, self.draws, random_seed=int(seed)
            )
            idata["posterior"].attrs["vi_draws"] = "psis"
            return idata
        if not self.psis_.reliable:
            warnings.warn(self.psis_.message, UserWarning, stacklevel=3)
        idata = result.approximation.sample(self.draws, random_seed=int(seed))
        idata["posterior"].attrs["vi_draws"] = "q"
        return idata

    @property
    def _plain_model(self) -> bool:
        """No noise component, frequency weights or missing entries: the cached graph fits."""
        return self.sample_weight_ is None and not self._has_noise and not has_missing(self._X)

    def _initial_point(self, params: MixtureParams, model: pm.Model) -> dict[str, np.ndarray]:
        """``initial_point`` of the model, at the MAP noise weight if there is noise."""
        return initial_point(
            params, model, self.spec_, noise_weight=getattr(self, "map_noise_weight_", None)
        )

    def _map_idata(self) -> xr.DataTree:
        values = self._initial_point(self.map_, self.model_)
        values.update(
            weights=self.map_.weights * (1.0 - self._map_noise_weight),
            means=self.map_.means,
            covariances=self.map_.full_covariances(),
        )
        return xr.DataTree.from_dict({"posterior": _posterior_from_point(self.model_, values)})

    def _postprocess(
        self, idata: xr.DataTree, seed, method: str, pointwise: bool | None = None
    ) -> xr.DataTree:
        posterior = idata["posterior"].to_dataset()
        n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
        if self.n_components == 1:
            record = identity_record("none", n_chains, n_draws, 1)
        elif self.n_features_in_ == 1:
            record = identity_record("ordered", n_chains, n_draws, self.n_components)
        else:
            posterior, record = _relabel_posterior(posterior, self.map_)
        self.relabeling_ = record
        posterior.attrs["relabeling"] = str(record.to_dict())
        posterior.attrs["map_source"] = self.map_source_
        if method == "nuts":
            self.n_draws_ = n_draws
            posterior.attrs["draws_per_chain"] = n_draws
        order = getattr(self, "projection_order_", None)
        if method == "nuts" and order is not None:
            posterior.attrs["identification"] = (
                f"means ordered along {np.round(order.direction, 4).tolist()} (working scale, "
                f"separation {order.separation:.1f} sd at the MAP), then relabelled"
            )
        groups = {"posterior": posterior}
        if method == "nuts":
            groups["sample_stats"] = idata["sample_stats"].to_dataset()
        groups["observed_data"] = xr.Dataset(
            {OBSERVED: (("obs", "feature"), self._X)},
            coords={"obs": np.arange(len(self._X)), "feature": np.arange(self.n_features_in_)},
        )
        tree = xr.DataTree.from_dict(groups)
        if pointwise is None:
            pointwise = len(self._X) * n_chains * n_draws <= MAX_POINTWISE_VALUES
        if not pointwise:
            return tree
        if self._plain_model:
            log_likelihood, predictive = _pointwise_groups(self._X, posterior, int(seed))
            tree["log_likelihood"] = log_likelihood
            tree["posterior_predictive"] = predictive
            return tree
        # noise, weights, missing entries: the model's own log-likelihood and random draws
        tree = pm.compute_log_likelihood(
            tree, model=self.model_, extend_inferencedata=True, progressbar=False
        )
        with warnings.catch_warnings(), _pymc_log_level(self.progressbar):
            # The observed variable's random function is NumPy code (mixture_random);
            # PyTensor's numba backend says it runs it in object mode, which is expected.
            warnings.filterwarnings("ignore", message="Numba will use object mode")
            tree = pm.sample_posterior_predictive(
                tree,
                model=self.model_,
                extend_inferencedata=True,
                random_seed=int(seed),
                progressbar=False,
                # the draws are the posterior: keep them (pm.Data priors would otherwise
                # make PyMC warn that it froze them implicitly)
                freeze_vars=[rv.name for rv in self.model_.free_RVs],
            )
        if has_missing(self._X):  # PyMC wrote the model's values, NaN entries filled in
            tree["observed_data"] = xr.DataTree(groups["observed_data"])
        return tree

    def _check_fitted(self) -> None:
        if not hasattr(self, "idata_"):
            raise NotFittedError(
                "This BayesianGaussianMixture instance is not fitted yet: call fit(X) first"
            )

    @property
    def _map_noise_weight(self) -> float:
        return float(getattr(self, "map_noise_weight_", 0.0))

    @property
    def _has_noise(self) -> bool:
        spec = getattr(self, "spec_", None)
        return spec is not None and spec.noise is not None

    def _noise_draws(self) -> np.ndarray:
        """Posterior draws of the noise weight, shape (S,) (zeros without noise)."""
        post = self.idata_["posterior"]
        if "noise_weight" not in post.data_vars:
            return np.zeros(post.sizes["chain"] * post.sizes["draw"])
        return post["noise_weight"].transpose("chain", "draw").to_numpy().ravel()

    def _log_joint(self, X: np.ndarray, max_draws: int | None = None, seed: int = 0):
        """Log joint densities per draw, (S, n, K), plus the noise's column (K + 1) if any."""
        post = self.idata_["posterior"].to_dataset()
        weights, means, covs = stack_draws(post, max_draws=max_draws, random_state=seed)
        log_joint = log_joint_densities(X, weights, means, covs)
        if not self._has_noise:
            return log_joint
        noise = post["noise_weight"].transpose("chain", "draw").stack(sample=("chain", "draw"))
        noise = noise.to_numpy()
        if max_draws is not None and noise.size > max_draws:
            keep = np.sort(np.random.default_rng(seed).choice(noise.size, max_draws, replace=False))
            noise = noise[keep]
        return with_noise_column(log_joint, noise, self.spec_.noise.log_density)

    def _draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
        """Posterior weights (S, K), means (S, K, d), covariances (S, K, d, d), (chains, draws)."""
        self._check_fitted()
        post = self.idata_["posterior"].to_dataset()
        weights, means, covs = stack_draws(post)
        return weights, means, covs, (post.sizes["chain"], post.sizes["draw"])

    def _data(self, X) -> np.ndarray:
        self._check_fitted()
        if X is None:
            return self._X
        allow_nan = self.missing == "marginalize"
        data = check_data(
            X,
            allow_1d=self.n_features_in_ == 1,
            min_samples=1,
            check_constant=False,
            allow_nan=allow_nan,
        )
        validate_data(
            self,
            X if np.ndim(X) == 2 else data,
            dtype=np.float64,
            reset=False,
            ensure_all_finite="allow-nan" if allow_nan else True,
        )
        return data

    def summary(
        self, ci_prob: float = 0.89, *, feature_names: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """One row per free parameter: the posterior summary, or the point estimate.

        Rows are the weights, the means and the covariance entries the structure frees
        (:meth:`CovarianceStructure.entries`): each unique entry of a full matrix once
        (its lower triangle), a tied matrix once, the variances of ``diag``, one variance
        per ``spherical`` component; never a structural zero.

        Parameters
        ----------
        ci_prob : float, default=0.89
            Probability of the equal-tailed interval.
        feature_names : sequence of str, optional
            Labels of the features in the row names (``means[0, alcohol]``); by default
            the column names the model was fitted with, else the feature indices.

        Returns
        -------
        DataFrame indexed by parameter
            For a posterior (NUTS, VI): ``kind``, ``mean``, ``sd``, ``eti<pct>_lb``,
            ``eti<pct>_ub``, ``ess_bulk``, ``ess_tail``, ``r_hat``
            (:func:`bayesgmm.posterior.summaries.posterior_summary`; ESS and R-hat are NaN for one
            chain). For ``method="map"``: ``kind`` and ``estimate`` (the MAP).
        """
        self._check_fitted()
        if feature_names is None and hasattr(self, "feature_names_in_"):
            feature_names = self.feature_names_in_
        names = None if feature_names is None else [str(n) for n in feature_names]
        if names is not None and len(names) != self.n_features_in_:
            raise ValueError(
                f"feature_names has {len(names)} names for {self.n_features_in_} features: "
                "give one name per column"
            )
        if self.method_ == "map":
            return point_estimate_table(
                self.map_, names, noise_weight=getattr(self, "map_noise_weight_", None)
            )
        draws = parameter_draws(
            self.idata_["posterior"].to_dataset(), self.map_.covariance_type, names
        )
        return posterior_summary(draws, ci_prob=ci_prob)

    def diagnose(self):
        """Diagnostics of the fit, as a record that prints its verdict first.

        NUTS: R-hat, ESS, divergences, E-BFMI and label switching (:class:`Diagnostics`).
        VI: ELBO convergence and the PSIS k-hat of the approximation against the exact
        posterior (:class:`bayesgmm.bayes.vi.VIDiagnostics`; k-hat < 0.7: usable, else use NUTS).
        """
        self._check_fitted()
        if self.method_ in ("advi", "fullrank_advi"):
            from bayesgmm.bayes.vi import VIDiagnostics

            return VIDiagnostics.from_results(self.vi_, self.psis_, self.psis_correction_)
        if self.method_ != "nuts":
            raise ValueError(
                f"diagnose() needs posterior draws, but the model was fitted with "
                f"method={self.method_!r}: refit with method='nuts' (or a VI method)"
            )
        names = POSTERIOR_VARS + (("noise_weight",) if self._has_noise else ())
        tree = self.idata_
        if "posterior_chains" not in tree.children:
            counts = self.component_counts().transpose("chain", "draw", "component").values
        else:
            chains = tree["posterior_chains"].to_dataset()
            tree = xr.DataTree.from_dict(
                {"posterior": chains, "sample_stats": tree["sample_stats"].to_dataset()}
            )
            if self._has_noise:  # the stacked draws' counts: not per chain as sampled
                counts = self.component_counts().transpose("chain", "draw", "component")
                counts = counts.values.reshape(-1, self.n_components)
            else:
                weights, means, covs = stack_draws(chains)
                resp = responsibilities(self._X, weights, means, covs)
                counts = resp.sum(axis=1).reshape(
                    chains.sizes["chain"], chains.sizes["draw"], self.n_components
                )
        return diagnose(
            tree,
            var_names=names,
            label_switching=self.relabeling_.verdict,
            component_counts=counts,
            chain_weights=self.chain_weights_,
            chain_starts=tuple(int(c) for c in self.chain_starts_),
            chain_combination=str(
                self.idata_["posterior"].attrs.get("chain_combination", "pooled")
            ),
            draws_asked=self.draws,
        )

    def log_posterior_density(self) -> tuple[np.ndarray, float, int]:
        """The MAP-EM objective at every draw and at the MAP.

        ``log p(X | theta) + log p(theta)`` with the MAP prior (:meth:`MixtureSpec.map_prior`)
        and densities with respect to the covariance matrices (variances for diag and
        spherical), as MAP-EM maximises it: the MAP is a mode of this function, so the
        draws' values tell whether they sit in the MAP's mode. Evaluated on the chains as
        sampled (``posterior_chains`` when the chains were stacked). Frequency weights
        multiply each row's term; models with a noise component are not covered.

        Returns
        -------
        draws : ndarray of shape (n_chains, n_draws)
        map : float
        n_free : int
            Number of free parameters of the mixture (weights, means, covariance entries).
        """
        self._check_fitted()
        tree = self.idata_
        group = "posterior_chains" if "posterior_chains" in tree.children else "posterior"
        posterior = tree[group].to_dataset()
        n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
        weights, means, covs = stack_draws(posterior)
        prior = self.spec_.map_prior()
        structure = self.map_.structure

        def objective(params: MixtureParams) -> float:
            rows = log_mixture_density(
                self._X, params.weights, params.means, params.full_covariances()
            )
            weights = self.sample_weight_
            log_lik = rows.sum() if weights is None else weights @ rows
            return float(log_lik + (0.0 if prior is None else prior.log_density(params)))

        values = np.empty(len(weights))
        for s, (w, m, c) in enumerate(zip(weights, means, covs, strict=True)):
            values[s] = objective(self._draw_params(w, m, c))
        n_free = int(structure.n_parameters(self.n_components, self.n_features_in_))
        n_free += self.n_components - 1 + self.n_components * self.n_features_in_
        return values.reshape(n_chains, n_draws), objective(self.map_), n_free

    def _draw_params(self, weights, means, covariances) -> MixtureParams:
        """One draw (weights (K,), means (K, d), full covariances (K, d, d)) as parameters."""
        structure = get_structure(self.covariance_type)
        shape = structure.shape(self.n_components, self.n_features_in_)
        layout = np.stack([structure._from_full(matrix) for matrix in covariances])
        return MixtureParams(
            weights / weights.sum(),
            means,
            layout.reshape(shape) if layout.size == np.prod(shape) else layout[0],
            self.covariance_type,
        )

    def _refine_map(self, idata: xr.DataTree) -> None:
        """EM from every chain's highest-density draw; a better optimum becomes ``map_``.

        EM restarts can miss an optimum that NUTS finds (a narrow component on a few close
        values, galaxies K=4); started from the sampler's best draws, EM reaches it. The
        MAP is then the better optimum, and ``map_source_`` says where it came from.
        """
        lp = log_density_draws(idata)
        if lp is None:
            return
        posterior = idata["posterior"].to_dataset()
        structure = get_structure(self.covariance_type)
        best, found = self.em_.lower_bound_, None
        for chain in range(lp.shape[0]):
            draw = posterior.isel(chain=chain, draw=int(np.argmax(lp[chain])))
            params = self._draw_params(
                draw["weights"].values, draw["means"].values, draw["covariances"].values
            )
            precisions = structure.precisions(structure.precisions_cholesky(params.covariances))
            em = clone(self.em_).set_params(
                n_init=1,
                weights_init=params.weights,
                means_init=params.means,
                precisions_init=precisions,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                try:
                    em.fit(self._X)
                except (np.linalg.LinAlgError, ValueError):  # a draw EM cannot start from
                    continue
            if em.lower_bound_ > best + REFINE_MIN_GAIN / len(self._X):
                best, found = em.lower_bound_, (chain, em.params_)
        if found is None:
            return
        chain, params = found
        params = params.sorted_by_mean() if self.n_features_in_ == 1 else params
        self.map_ = self._ordered_start(params)
        self.map_source_ = (
            f"EM from chain {chain}'s highest-density draw: objective "
            f"{best * len(self._X):.2f}, above the EM restarts' "
            f"{self.em_.lower_bound_ * len(self._X):.2f}"
        )

    def responsibilities(self, X=None) -> xr.DataArray:
        """Posterior draws of ``gamma_nk = p(z_n = k | x_n, theta)``.

        With a noise component the Gaussians' probabilities among all K + 1 components
        (each row sums to one minus the noise probability, :meth:`noise_probability`).

        Returns
        -------
        DataArray of dims (chain, draw, obs, component)
        """
        X = self._data(X)
        weights, means, covs, shape = self._draws()
        if self._has_noise:
            resp = self._all_responsibilities(X)[..., : self.n_components]
        else:
            resp = responsibilities(X, weights, means, covs)
        resp = resp.reshape(*shape, len(X), self.n_components)
        return xr.DataArray(
            resp,
            dims=("chain", "draw", "obs", "component"),
            coords={"obs": np.arange(len(X)), "component": np.arange(self.n_components)},
            name="responsibilities",
        )

    def _all_responsibilities(self, X: np.ndarray) -> np.ndarray:
        """Responsibilities over K + 1 components (noise last), shape (S, n, K + 1)."""
        log_joint = self._log_joint(X)
        return np.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))

    def noise_probability(self, X=None, ci_prob: float = 0.89) -> pd.DataFrame:
        """Posterior probability that each point belongs to the noise component.

        ``p(z_n = noise | x_n, theta)`` per draw, summarised by its posterior mean and
        equal-tailed interval.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            By default the training data.
        ci_prob : float, default=0.89

        Returns
        -------
        DataFrame indexed by obs with columns ``mean``, ``lower``, ``upper``

        Raises
        ------
        ValueError
            The model has no noise component (fit with ``noise=True``).
        """
        self._check_fitted()
        if not self._has_noise:
            raise ValueError(
                "noise_probability needs a noise component: fit BayesianGaussianMixture(noise=True)"
            )
        noise = self._all_responsibilities(self._data(X))[..., -1]
        lower, upper = equal_tailed_interval(noise, ci_prob)
        return pd.DataFrame(
            {"mean": noise.mean(axis=0), "lower": lower, "upper": upper},
            index=pd.Index(np.arange(noise.shape[1]), name="obs"),
        )

    def assignment_probabilities(self, X=None, ci_prob: float = 0.89) -> pd.DataFrame:
        """Posterior mean and equal-tailed interval of each assignment probability.

        Returns
        -------
        DataFrame indexed by (obs, component) with columns ``mean``, ``lower``, ``upper``
        """
        resp = self.responsibilities(X).stack(sample=("chain", "draw")).transpose("sample", ...)
        lower, upper = equal_tailed_interval(resp.values, ci_prob)
        n_obs, k = lower.shape
        index = pd.MultiIndex.from_product([range(n_obs), range(k)], names=["obs", "component"])
        return pd.DataFrame(
            {
                "mean": resp.values.mean(axis=0).ravel(),
                "lower": lower.ravel(),
                "upper": upper.ravel(),
            },
            index=index,
        )

    def partitions(
        self,
        X=None,
        *,
        loss: Loss = "vi",
        ci_prob: float = 0.95,
        max_points: int = 2000,
        max_draws: int = 1000,
        random_state: int | np.random.Generator | None = None,
    ) -> PartitionSummary:
        """Which points belong together: point partition, credible ball, certainty.

        One allocation of the points is drawn per posterior draw from its responsibilities,
        and :func:`bayesgmm.posterior.partitions.summarize_partitions` finds the SALSO estimate
        under ``loss``, its ``ci_prob`` credible ball and each point's co-clustering
        certainty. Everything depends only on which points share a cluster, so label
        switching between or within chains changes nothing. With ``method="map"`` the one
        draw gives the allocation uncertainty at the MAP, not a posterior over partitions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Points to partition; by default the training data.
        loss : {"vi", "binder"}, default="vi"
        ci_prob : float, default=0.95
            Credible-ball probability.
        max_points : int, default=2000
            Above this many points SALSO runs on a seeded subsample (see
            :func:`~bayesgmm.posterior.partitions.summarize_partitions`).
        max_draws : int, default=1000
            Posterior draws used (a seeded random subset), which bounds the
            ``(n_draws, n_samples, n_components)`` array of log densities.
        random_state : int, Generator or None
            Seeds the subset of draws, the allocations and SALSO; ``None`` uses the
            estimator's ``random_state``.

        Returns
        -------
        PartitionSummary
        """
        X = self._data(X)
        max_draws = check_positive_int(max_draws, "max_draws")
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        seed = int(rng.integers(2**31 - 1))
        log_joint = self._log_joint(X, max_draws, seed)  # with noise, one more cluster
        return summarize_partitions(
            log_joint,
            loss=loss,
            ci_prob=ci_prob,
            max_points=max_points,
            random_state=rng,
        )

    def component_counts(self) -> xr.DataArray:
        """Posterior of ``N_k = sum_n gamma_nk`` on the training data (empty components).

        Returns
        -------
        DataArray of dims (chain, draw, component)
        """
        return self.responsibilities().sum("obs").rename("component_counts")

    def predictive_density(self, grid, ci_prob: float = 0.89) -> xr.Dataset:
        """Posterior mean and equal-tailed band of the mixture density at ``grid``.

        Parameters
        ----------
        grid : array-like of shape (n_points, n_features), or (n_points,) in 1-D
        ci_prob : float

        Returns
        -------
        Dataset with ``mean``, ``lower``, ``upper`` (dim ``point``) and the coordinate
        ``grid`` (point, feature)
        """
        grid = self._data(grid)
        density = np.exp(self._log_density(grid))
        lower, upper = equal_tailed_interval(density, ci_prob)
        return xr.Dataset(
            {
                "mean": ("point", density.mean(axis=0)),
                "lower": ("point", lower),
                "upper": ("point", upper),
            },
            coords={"grid": (("point", "feature"), grid)},
            attrs={"ci_prob": ci_prob},
        )

    def _log_density(self, X: np.ndarray) -> np.ndarray:
        """``log p(x_n | theta_s)`` per draw (noise included), shape (S, n_samples)."""
        if self._has_noise:
            return logsumexp(self._log_joint(X), axis=-1)
        return log_mixture_density(X, *self._draws()[:3])

    def predict_proba(self, X) -> np.ndarray:
        """Posterior mean of the responsibilities, shape (n_samples, n_components).

        With a noise component each row sums to one minus the noise probability.
        """
        return self.responsibilities(X).mean(("chain", "draw")).values

    def predict(self, X) -> np.ndarray:
        """Most probable component of each sample, shape (n_samples,).

        With a noise component, ``-1`` where the noise is the most probable (posterior mean).
        """
        if not self._has_noise:
            return self.predict_proba(X).argmax(axis=1)
        mean = self._all_responsibilities(self._data(X)).mean(axis=0)
        labels = mean.argmax(axis=1)
        labels[labels == self.n_components] = -1
        return labels

    def score_samples(self, X) -> np.ndarray:
        """Log posterior predictive density ``log mean_s p(x_n | theta_s)``, shape (n_samples,).

        Includes the noise component's density, if any.
        """
        log_lik = self._log_density(self._data(X))
        return logsumexp(log_lik, axis=0) - np.log(log_lik.shape[0])

    def score(self, X, y=None) -> float:
        """Mean log posterior predictive density per sample."""
        return float(self.score_samples(X).mean())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    def impute(
        self, X=None, *, n_draws: int = 100, random_state: int | None = None
    ) -> xr.DataArray:
        """Multiple imputation: draws of the missing entries given the observed ones.

        One completed data set per posterior draw (a seeded random subset of
        ``n_draws``): a component from the draw's responsibilities given the row's observed
        coordinates, then the missing coordinates from that component's Gaussian
        conditional (:func:`bayesgmm.posterior.draws.impute_draws`). Needs
        ``missing="marginalize"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Rows with NaN; by default the training data.
        n_draws : int, default=100
        random_state : int, optional
            Seed of the subset of draws and of the imputations; ``None`` uses the
            estimator's ``random_state``.

        Returns
        -------
        DataArray of dims (draw, obs, feature)
            Observed entries repeated; missing ones drawn.
        """
        if self.missing != "marginalize":
            raise ValueError('impute() needs a model fitted with missing="marginalize"')
        X = self._data(X)
        n_draws = check_positive_int(n_draws, "n_draws")
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        weights, means, covs = stack_draws(
            self.idata_["posterior"].to_dataset(),
            max_draws=n_draws,
            random_state=int(rng.integers(2**31 - 1)),
        )
        completed = impute_draws(X, weights, means, covs, rng)
        return xr.DataArray(
            completed,
            dims=("draw", "obs", "feature"),
            coords={"obs": np.arange(len(X)), "feature": np.arange(self.n_features_in_)},
            name="imputed",
        )

    def sample(self, n_samples: int = 1, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw from the posterior predictive distribution.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
            ``-1`` for draws from the noise component (uniform on its region, see
            :meth:`bayesgmm.core.noise.NoiseComponent.sample`).
        """
        check_positive_int(n_samples, "n_samples")
        if not self._has_noise:
            return sample_mixture(*self._draws()[:3], n_samples, random_state)
        weights, means, covs, _ = self._draws()
        rng = np.random.default_rng(random_state)
        draw = rng.integers(weights.shape[0], size=n_samples)
        is_noise = rng.random(n_samples) < self._noise_draws()[draw]
        X = np.empty((n_samples, self.n_features_in_))
        labels = np.full(n_samples, -1)
        X[is_noise] = self.spec_.noise.sample(int(is_noise.sum()), rng)
        for s in np.unique(draw[~is_noise]):  # Gaussian points from their own draw
            rows = np.flatnonzero(~is_noise & (draw == s))
            X[rows], labels[rows] = sample_mixture(weights[s], means[s], covs[s], rows.size, rng)
        return X, labels

    def assignment_summary(
        self,
        X=None,
        *,
        ci_prob: float = 0.89,
        max_draws: int | None = None,
        random_state: int | None = None,
    ) -> pd.DataFrame:
        """Each row's most probable component and every assignment probability with its band.

        ``p(z_n = k | x_n, theta)`` per posterior draw (a seeded random subset of at most
        ``max_draws``), summarised by its posterior mean and equal-tailed interval, for the
        K Gaussians and, if the model has one, the noise component.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            By default the training data.
        ci_prob : float, default=0.89
        max_draws : int, optional
            Draws used (all by default).
        random_state : int, optional
            Seed of the subset of draws; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        DataFrame indexed by ``row``
            ``component`` (the largest mean probability; ``-1``: the noise), ``prob``,
            ``prob_lower``, ``prob_upper`` (of that component), then ``p<k>``,
            ``p<k>_lower``, ``p<k>_upper`` for every component (``p_noise...`` for the noise).
        """
        X = self._data(X)
        if max_draws is not None:
            max_draws = check_positive_int(max_draws, "max_draws")
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        log_joint = self._log_joint(X, max_draws, int(rng.integers(2**31 - 1)))
        resp = np.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))
        mean = resp.mean(axis=0)
        lower, upper = equal_tailed_interval(resp, ci_prob)
        component = mean.argmax(axis=1)
        rows = np.arange(len(X))
        table = pd.DataFrame(
            {
                "component": component,
                "prob": mean[rows, component],
                "prob_lower": lower[rows, component],
                "prob_upper": upper[rows, component],
            },
            index=pd.RangeIndex(len(X), name="row"),
        )
        for k in range(mean.shape[1]):
            label = f"p{k}" if k < self.n_components else "p_noise"
            table[label] = mean[:, k]
            table[f"{label}_lower"] = lower[:, k]
            table[f"{label}_upper"] = upper[:, k]
        table.loc[table["component"] == self.n_components, "component"] = -1
        return table

    def save(self, path, *, overwrite: bool = False, input_scaling=None, metadata=None):
        """Save the fitted estimator to the folder ``path``; read it with :func:`bayesgmm.load`.

        ``model.json`` (settings, MAP, spec, EM start, relabelling, diagnostics) and
        ``posterior.zarr`` (``idata_``), in the format of :mod:`bayesgmm.core.persistence`,
        written atomically. Not saved: the PyMC model (rebuilt on first use of ``model_``),
        a VI fit's ``approximation_`` and the draws behind its PSIS checks (their verdicts
        are kept, so :meth:`diagnose` works).

        Parameters
        ----------
        path : str or Path
            The folder; one bayesgmm wrote before is replaced whole.
        overwrite : bool, default=False
            Allow replacing a non-empty folder that bayesgmm did not write.
        input_scaling : Standardization, optional
            An affine map the data went through before ``fit`` (the command line's
            ``--scale``), kept for whoever predicts raw data.
        metadata : dict, optional
            Free JSON data stored with the model.

        Returns
        -------
        Path
        """
        from bayesgmm.core.persistence import save_estimator

        return save_estimator(
            self, path, overwrite=overwrite, input_scaling=input_scaling, metadata=metadata
        )

    def _get_state(self) -> tuple[dict, xr.DataTree]:
        """The fitted attributes for :mod:`bayesgmm.core.persistence`, and ``idata_``."""
        self._check_fitted()
        order, record = self.projection_order_, self.relabeling_
        state = {
            "n_features_in": self.n_features_in_,
            "spec": self.spec_,
            "sample_weight": self.sample_weight_,
            "em": {"params": self.em_.get_params(deep=False), "state": self.em_._get_state()[0]},
            "map": self.map_,
            "map_source": self.map_source_,
            "map_noise_weight": getattr(self, "map_noise_weight_", None),
            "projection_order": None if order is None else dataclasses.asdict(order),
            "start_optima": list(self.start_optima_),
            "chain_starts": np.asarray(self.chain_starts_),
            "method": self.method_,
            "relabeling": {f.name: getattr(record, f.name) for f in dataclasses.fields(record)},
            "n_draws": getattr(self, "n_draws_", None),
            "chain_weights": self.chain_weights_,
        }
        if "vi_" in self.__dict__:
            vi = self.vi_
            fields = ("hist", "n_iter", "converged", "method", "window", "seconds")
            state["vi"] = {name: getattr(vi, name) for name in fields}
            state["psis"] = _psis_verdict(self.psis_)
            state["psis_correction"] = _psis_verdict(self.psis_correction_)
        return state, self.idata_

    def _set_state(self, state: dict, posterior: xr.DataTree | None) -> None:
        """Inverse of :meth:`_get_state` (raises ``ValueError`` on an inconsistent state)."""
        if posterior is None:
            raise ValueError("a BayesianGaussianMixture needs its posterior draws")
        k, d = self.n_components, int(state["n_features_in"])
        spec, map_ = state["spec"], state["map"]
        if not isinstance(spec, MixtureSpec) or not isinstance(map_, MixtureParams):
            raise ValueError("spec and map must be MixtureSpec and MixtureParams records")
        for name, value in (
            ("spec", (spec.n_components, spec.covariance_type, spec.n_features)),
            ("map", (map_.n_components, map_.covariance_type, map_.n_features)),
        ):
            if value != (k, self.covariance_type, d):
                raise ValueError(
                    f"{name} has (n_components, covariance_type, n_features) = {value}, the "
                    f"settings and n_features_in {(k, self.covariance_type, d)}"
                )
        draws = posterior["posterior"]
        for name, shape in (("weights", (k,)), ("means", (k, d)), ("covariances", (k, d, d))):
            var = draws[name]
            if var.dims[:2] != ("chain", "draw") or var.shape[2:] != shape:
                raise ValueError(
                    f"posterior variable {name!r} has dims {var.dims} and shape {var.shape}, "
                    f"expected (chain, draw) + {shape}"
                )
            if not np.all(np.isfinite(var.to_numpy())):
                raise ValueError(f"posterior variable {name!r} contains NaN or infinity")
        X = posterior["observed_data"][OBSERVED].transpose("obs", "feature").to_numpy()
        if X.shape[1] != d:
            raise ValueError(f"posterior observed_data has {X.shape[1]} features, expected {d}")
        weights = state["sample_weight"]
        if weights is not None and (
            np.shape(weights) != (len(X),) or not np.all(np.isfinite(weights) & (weights > 0))
        ):
            raise ValueError(f"sample_weight must be {len(X)} positive finite numbers")
        method = state["method"]
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {METHODS}")
        if method == "nuts" and "sample_stats" not in posterior.children:
            raise ValueError("posterior has no sample_stats group (NUTS diagnostics)")
        self.n_features_in_ = d
        self.spec_ = spec
        self._X = np.ascontiguousarray(X, dtype=np.float64)
        self.sample_weight_ = weights
        self.em_ = GaussianMixture(**state["em"]["params"])
        self.em_._set_state(state["em"]["state"])
        self.map_, self.map_source_ = map_, str(state["map_source"])
        if spec.noise is not None:
            self.map_noise_weight_ = float(state["map_noise_weight"])
        order = state["projection_order"]
        self.projection_order_ = None if order is None else ProjectionOrder(**order)
        self.start_optima_ = list(state["start_optima"])
        self.chain_starts_ = np.asarray(state["chain_starts"], dtype=int)
        self.method_ = method
        self.relabeling_ = RelabelingRecord(**state["relabeling"])
        if state["n_draws"] is not None:
            self.n_draws_ = int(state["n_draws"])
        chain_weights = state["chain_weights"]
        self.chain_weights_ = None if chain_weights is None else np.asarray(chain_weights)
        if "vi" in state:
            from bayesgmm.bayes.vi import VIResult

            self.vi_ = VIResult(approximation=None, **state["vi"])
            self.psis_ = _psis_result(state["psis"])
            self.psis_correction_ = _psis_result(state["psis_correction"])
        self.idata_ = posterior

    def __getstate__(self) -> dict:
        """Pickle without the compiled PyMC objects (``model_`` is rebuilt on first use)."""
        state = dict(super().__getstate__())
        state.pop("model_", None)
        state.pop("approximation_", None)
        vi = state.get("vi_")
        if vi is not None and vi.approximation is not None:
            state["vi_"] = dataclasses.replace(vi, approximation=None)
        return state

    def __getattr__(self, name: str):
        """Rebuild ``model_`` after unpickling or loading; explain a dropped ``approximation_``."""
        fitted = self.__dict__
        if name == "model_" and "spec_" in fitted and "_X" in fitted:
            model = build_model(
                fitted["_X"],
                fitted["spec_"],
                covariance_prior_family=fitted["covariance_prior_family"],
                sample_weight=fitted.get("sample_weight_"),
                order_basis=self._order_basis,
            )
            fitted["model_"] = model
            return model
        if name == "approximation_" and "vi_" in fitted:
            raise AttributeError(
                "approximation_ (the PyMC approximation of a VI fit) is not kept when the "
                "estimator is pickled or saved; its draws are in idata_: refit to get it back"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _psis_verdict(result) -> dict | None:
    """The scalar fields of a PSISResult (its draws and weights are not saved)."""
    if result is None:
        return None
    fields = ("khat", "verdict", "message", "ess", "likelihood_scale", "proposal")
    return {name: getattr(result, name) for name in fields}


def _psis_result(fields: dict | None):
    """A PSISResult from :func:`_psis_verdict`'s fields, with no draws."""
    if fields is None:
        return None
    from bayesgmm.bayes.vi import PSISResult

    return PSISResult(log_weights=np.empty(0), draws={}, **fields)


__all__ = [
    "METHODS",
    "PARAMETER_CONSTRAINTS",
    "SAMPLERS",
    "BayesianGaussianMixture",
    "RelabelingRecord",
    "jitter_points",
    "transformed_point",
]
