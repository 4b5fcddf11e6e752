"""After sampling: relabelling, the MAP refined from the draws, pointwise groups, chains.

Pure functions of the sampler's ``DataTree`` (:mod:`bayesgmm.bayes.sampling`):

* :func:`refine_map`: EM from every chain's highest-density draw; a better optimum than
  the restarts' is returned as the new MAP (with where it came from).
* :func:`postprocess`: every draw relabelled to the MAP (d > 1), the record of it, the
  ``observed_data`` group and, when they fit in memory, ``log_likelihood`` (one term per
  observation, the user's scale) and ``posterior_predictive`` (one replicate data set per
  draw), computed in NumPy for the cached model so nothing is compiled after sampling.
* :func:`combine_chains`: pool the chains, or stack them (:mod:`bayesgmm.posterior.stacking`).
* :func:`map_idata`: the MAP as a single-draw posterior (``method="map"``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import pymc as pm
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from bayesgmm.bayes.model import OBSERVED, initial_point
from bayesgmm.bayes.options import MAX_POINTWISE_VALUES
from bayesgmm.bayes.start import ordered, sorted_in_1d
from bayesgmm.core.covariance import get_structure
from bayesgmm.core.methods import MCMC_METHODS
from bayesgmm.core.missing import has_missing
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.em.estimator import GaussianMixture
from bayesgmm.posterior.decomposition import with_decomposition
from bayesgmm.posterior.diagnostics import (
    POSTERIOR_VARS,
    chain_modes,
    chain_stacking,
    drifting_chains,
    log_density_draws,
    parameter_matrix,
    stacking_groups,
)
from bayesgmm.posterior.draws import log_mixture_density
from bayesgmm.posterior.kernels import replicates_kernel
from bayesgmm.posterior.relabel import (
    ProjectionOrder,
    RelabelingRecord,
    apply_permutations,
    identity_record,
    relabel_to_reference,
)
from bayesgmm.posterior.stacking import PSIS_MIN_DRAWS, stacked_indices

#: Nats by which EM from a posterior draw must beat the restarts' optimum to become the MAP:
#: more than two EM runs that stop at the same optimum differ by (measured: a 2-component
#: 80-row fit's restarts and EM from a draw both at -305.50, the second a few thousandths
#: higher; galaxies K=4's missed optimum is 4.7 nats higher).
REFINE_MIN_GAIN = 0.01


@contextlib.contextmanager
def pymc_log_level(verbose: bool):
    """Silence PyMC's INFO messages (``Sampling: [X]``) unless ``verbose``."""
    logger = logging.getLogger("pymc")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def pointwise_groups(
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


def posterior_from_point(model: pm.Model, values: dict[str, np.ndarray]) -> xr.Dataset:
    """A (1 chain x 1 draw) posterior dataset from named values."""
    dims = model.named_vars_to_dims
    data = {
        name: (("chain", "draw", *dims.get(name, ())), np.asarray(value)[None, None])
        for name, value in values.items()
    }
    coords = {name: np.asarray(c) for name, c in model.coords.items()}
    ds = xr.Dataset(data, coords={"chain": [0], "draw": [0]})
    return ds.assign_coords({k: v for k, v in coords.items() if k in ds.dims})


def map_idata(
    model: pm.Model, spec: MixtureSpec, map_params: MixtureParams, noise_weight: float | None
) -> xr.DataTree:
    """The MAP as a (1 chain x 1 draw) posterior: the model's free variables and the
    user-scale ``weights`` (absolute with noise), ``means`` and ``covariances``."""
    values = initial_point(map_params, model, spec, noise_weight=noise_weight)
    values.update(
        weights=map_params.weights * (1.0 - float(noise_weight or 0.0)),
        means=map_params.means,
        covariances=map_params.full_covariances(),
    )
    return xr.DataTree.from_dict({"posterior": posterior_from_point(model, values)})


def relabel_posterior(
    posterior: xr.Dataset, reference: MixtureParams
) -> tuple[xr.Dataset, RelabelingRecord]:
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
        arranged = var.transpose("chain", "draw", "component", *rest)
        updated[name] = arranged.copy(data=apply_permutations(arranged.values, perms)).transpose(
            *var.dims
        )
    return posterior.assign(updated), record


def draw_params(
    weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, covariance_type: str
) -> MixtureParams:
    """One draw as parameters of ``covariance_type``.

    Parameters
    ----------
    weights : ndarray of shape (K,)
        Normalised to sum to one (the Gaussians' conditional weights with noise).
    means : ndarray of shape (K, d)
    covariances : ndarray of shape (K, d, d)
        Full matrices.
    covariance_type : str
    """
    structure = get_structure(covariance_type)
    shape = structure.shape(*means.shape)
    layout = np.stack([structure._from_full(matrix) for matrix in covariances])
    return MixtureParams(
        weights / weights.sum(),
        means,
        layout.reshape(shape) if layout.size == np.prod(shape) else layout[0],
        covariance_type,
    )


def refine_map(
    idata: xr.DataTree,
    X: np.ndarray,
    em: GaussianMixture,
    order: ProjectionOrder | None,
    scaling: Standardization,
) -> tuple[MixtureParams, str] | None:
    """EM from every chain's highest-density draw: a better optimum and where it came from.

    EM restarts can miss an optimum that NUTS finds (a narrow component on a few close
    values, galaxies K=4); started from the sampler's best draws, EM reaches it.

    Parameters
    ----------
    idata : DataTree
        The sampler's draws (with ``sample_stats``' log density).
    X : ndarray of shape (n_samples, n_features)
        The data ``em`` was fitted to (no weights, noise or missing entries).
    em : GaussianMixture
        The MAP-EM fit (its settings are those of every EM run from a draw).
    order : ProjectionOrder or None
        The ordering constraint, whose order the new MAP takes.
    scaling : Standardization

    Returns
    -------
    (MixtureParams, str) or None
        The new MAP (sorted by mean in 1-D, in the constraint's order) and its
        ``map_source_``; ``None`` when no draw's EM beats the restarts by
        ``REFINE_MIN_GAIN`` nats.
    """
    lp = log_density_draws(idata)
    if lp is None:
        return None
    posterior = idata["posterior"].to_dataset()
    structure = get_structure(em.covariance_type)
    best, found = em.lower_bound_, None
    for chain in range(lp.shape[0]):
        draw = posterior.isel(chain=chain, draw=int(np.argmax(lp[chain])))
        params = draw_params(
            draw["weights"].values,
            draw["means"].values,
            draw["covariances"].values,
            em.covariance_type,
        )
        precisions = structure.precisions(structure.precisions_cholesky(params.covariances))
        refit = clone(em).set_params(
            n_init=1,
            weights_init=params.weights,
            means_init=params.means,
            precisions_init=precisions,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                refit.fit(X)
            except (np.linalg.LinAlgError, ValueError):  # a draw EM cannot start from
                continue
        if refit.lower_bound_ > best + REFINE_MIN_GAIN / len(X):
            best, found = refit.lower_bound_, (chain, refit.params_)
    if found is None:
        return None
    chain, params = found
    source = (
        f"EM from chain {chain}'s highest-density draw: objective "
        f"{best * len(X):.2f}, above the EM restarts' "
        f"{em.lower_bound_ * len(X):.2f}"
    )
    return ordered(sorted_in_1d(params), order, scaling), source


def postprocess(
    idata: xr.DataTree,
    X: np.ndarray,
    model: pm.Model,
    *,
    reference: MixtureParams,
    map_source: str,
    order: ProjectionOrder | None,
    method: str,
    seed: int,
    pointwise: bool | str,
    plain: bool,
    progressbar: bool,
) -> tuple[xr.DataTree, RelabelingRecord]:
    """The stored posterior: relabelled draws and the groups made from them.

    Parameters
    ----------
    idata : DataTree
        The draws of NUTS, VI or the MAP (``posterior``, ``sample_stats`` for NUTS).
    X : ndarray of shape (n_samples, n_features)
        The data fitted (rows of positive weight; NaN for missing entries).
    model : pymc.Model
        The model sampled (the pointwise groups of noise, weights or missing entries).
    reference : MixtureParams
        The MAP, the labelling every draw is relabelled to (d > 1).
    map_source : str
    order : ProjectionOrder or None
    method : str
    seed : int
        Seed of the posterior predictive draws.
    pointwise : bool or "auto"
        Whether to store ``log_likelihood`` and ``posterior_predictive``; ``"auto"``:
        when they hold at most ``MAX_POINTWISE_VALUES`` values.
    plain : bool
        No noise, weights or missing entries (the groups are computed in NumPy).
    progressbar : bool
        Whether PyMC may log.

    Returns
    -------
    tree : DataTree
        ``posterior`` (with its attributes), ``sample_stats`` (NUTS), ``observed_data``,
        and the pointwise groups.
    relabeling : RelabelingRecord
    """
    posterior = idata["posterior"].to_dataset()
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    n_components, n_features = reference.means.shape
    if n_components == 1:
        record = identity_record("none", n_chains, n_draws, 1)
    elif n_features == 1:
        record = identity_record("ordered", n_chains, n_draws, n_components)
    else:
        posterior, record = relabel_posterior(posterior, reference)
    # mclust's decomposed models: identified volumes, shapes, orientations per draw
    posterior = with_decomposition(
        posterior, reference.full_covariances(), reference.covariance_type
    )
    posterior.attrs["relabeling"] = str(record.to_dict())
    posterior.attrs["map_source"] = map_source
    if method in MCMC_METHODS:
        posterior.attrs["draws_per_chain"] = n_draws
    if method in MCMC_METHODS and order is not None:
        posterior.attrs["identification"] = (
            f"means ordered along {np.round(order.direction, 4).tolist()} (working scale, "
            f"separation {order.separation:.1f} sd at the MAP), then relabelled"
        )
    groups = {"posterior": posterior}
    if method in MCMC_METHODS:
        groups["sample_stats"] = idata["sample_stats"].to_dataset()
    groups["observed_data"] = xr.Dataset(
        {OBSERVED: (("obs", "feature"), X)},
        coords={"obs": np.arange(len(X)), "feature": np.arange(n_features)},
    )
    tree = xr.DataTree.from_dict(groups)
    if isinstance(pointwise, str):
        pointwise = len(X) * n_chains * n_draws <= MAX_POINTWISE_VALUES
    if not pointwise:
        return tree, record
    if plain:
        log_likelihood, predictive = pointwise_groups(X, posterior, int(seed))
        tree["log_likelihood"] = log_likelihood
        tree["posterior_predictive"] = predictive
        return tree, record
    # noise, weights, missing entries: the model's own log-likelihood and random draws
    tree = pm.compute_log_likelihood(
        tree, model=model, extend_inferencedata=True, progressbar=False
    )
    with warnings.catch_warnings(), pymc_log_level(progressbar):
        # The observed variable's random function is NumPy code (mixture_random);
        # PyTensor's numba backend says it runs it in object mode, which is expected.
        warnings.filterwarnings("ignore", message="Numba will use object mode")
        tree = pm.sample_posterior_predictive(
            tree,
            model=model,
            extend_inferencedata=True,
            random_seed=int(seed),
            progressbar=False,
            # the draws are the posterior: keep them (pm.Data priors would otherwise
            # make PyMC warn that it froze them implicitly)
            freeze_vars=[rv.name for rv in model.free_RVs],
        )
    if has_missing(X):  # PyMC wrote the model's values, NaN entries filled in
        tree["observed_data"] = xr.DataTree(groups["observed_data"])
    return tree, record


def combine_chains(
    tree: xr.DataTree,
    chain_starts: np.ndarray,
    combine: str,
    rng: np.random.Generator,
    starts_given: bool = False,
) -> tuple[xr.DataTree, np.ndarray | None]:
    """Pool or stack the chains (``combine_chains``); record the choice in the attributes.

    Parameters
    ----------
    tree : DataTree
        The post-processed NUTS draws (:func:`postprocess`); changed in place.
    chain_starts : ndarray of shape (chains,)
        Index of each chain's start (recorded in the attributes).
    combine : {"auto", "pool", "stack"}
    rng : Generator
        Draws the stacked sample.
    starts_given : bool
        Whether ``chain_starts`` index the user's starts (recorded as
        ``chain_start_source``: ``"given"``, else ``"em"``).

    Returns
    -------
    tree : DataTree
        With ``chain_combination`` (and the stacking's numbers) in the posterior's
        attributes; stacked chains as one chain, the chains as sampled in
        ``posterior_chains``.
    chain_weights : ndarray of shape (chains,) or None
        The stacking weights when the chains were stacked.
    """
    posterior = tree["posterior"].to_dataset()
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    posterior.attrs["chain_starts"] = [int(c) for c in chain_starts]
    posterior.attrs["chain_start_source"] = "given" if starts_given else "em"
    usable = n_chains > 1 and "log_likelihood" in tree.children
    if usable and n_draws < PSIS_MIN_DRAWS:  # too few draws per chain for PSIS-LOO
        usable = False
        if combine == "stack":
            warnings.warn(
                f"combine_chains='stack' needs at least {PSIS_MIN_DRAWS} draws per chain "
                f"(got {n_draws}): the chains were pooled",
                UserWarning,
                stacklevel=4,
            )
    if combine == "pool" or not usable:
        posterior.attrs["chain_combination"] = "pooled"
        tree["posterior"] = posterior
        return tree, None
    log_density = log_density_draws(tree)
    params = parameter_matrix(posterior, POSTERIOR_VARS)
    modes = chain_modes(log_density, params)
    drifting = drifting_chains(log_density, params, modes)
    if combine == "auto" and len(modes) == 1 and not drifting:
        posterior.attrs["chain_combination"] = "pooled"
        tree["posterior"] = posterior
        return tree, None
    stacking = chain_stacking(tree, stacking_groups(modes, drifting))
    if combine == "auto" and not stacking.significant:
        # the chains predict the data equally well: stacking weights would be noise
        posterior.attrs.update(
            chain_combination="pooled",
            stacking_gain=stacking.gain,
            stacking_penalty=stacking.penalty,
        )
        tree["posterior"] = posterior
        return tree, None
    weights = stacking.stacked
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
    return tree, weights


__all__ = [
    "REFINE_MIN_GAIN",
    "combine_chains",
    "draw_params",
    "map_idata",
    "pointwise_groups",
    "postprocess",
    "refine_map",
    "relabel_posterior",
]
