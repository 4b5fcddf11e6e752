"""Inference: NUTS (the cached compiled model, nutpie or PyMC) and VI, from a start.

* :func:`run_nuts`: NUTS from the start's points plus a seeded uniform jitter in the
  unconstrained space. By default (``sampler="nutpie"``) nutpie on the structure's
  compiled log-density, compiled once per (K, covariance structure, d, prior family) and
  process (:mod:`bayesgmm.bayes.compiled`); a run whose R-hat or ESS misses its threshold
  after ``draws`` goes on to the longer lengths of :func:`checkpoints` while
  :func:`long_enough` says no. Models with noise, weights or missing entries run the same
  chain runner on a target compiled from their own model
  (:meth:`~bayesgmm.bayes.compiled.CompiledMixture.of_model`, no longer extended);
  ``sampler="pymc"`` is PyMC's NUTS with per-chain ``initvals``.
* :func:`run_gibbs` (:mod:`bayesgmm.bayes.gibbs`): the conjugate Gibbs sampler (``full``
  covariances, complete unweighted data without noise), from the same starts.
* :func:`run_vi`: ADVI / full-rank ADVI (optionally minibatched) from the MAP, then the
  PSIS check of q and the PSIS correction from a defensive proposal (:mod:`bayesgmm.bayes.vi`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import warnings
from collections.abc import Sequence

import numpy as np
import pymc as pm
import xarray as xr

from bayesgmm.bayes.gibbs import run_gibbs
from bayesgmm.bayes.model import build_model, initial_point
from bayesgmm.bayes.options import MINIBATCH_SIZE, MINIBATCH_THRESHOLD, Settings
from bayesgmm.bayes.postprocess import pymc_log_level, relabel_posterior
from bayesgmm.bayes.queries import component_counts
from bayesgmm.bayes.start import (
    Start,
    constrained_point,
    jitter_points,
    ordered,
    transformed_point,
)
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.posterior.diagnostics import diagnose
from bayesgmm.posterior.modes import empty_components

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
#: An extended run stops early when even this multiple of the ESS projected to ``max_draws``
#: (in proportion to the draws) misses the threshold: short runs of slowly mixing chains
#: underestimate the ESS that longer ones reach.
EXTEND_ESS_SLACK = 2.0
#: ``max_draws=None`` extends a run of at least this many draws (all chains): one sized
#: to reach the ESS threshold of 400 at 25 % efficiency; shorter runs are quick looks.
EXTEND_MIN_TOTAL_DRAWS = 1600


@dataclasses.dataclass(frozen=True, eq=False)
class VIFit:
    """A VI fit and its PSIS checks (the estimator's ``vi_``, ``psis_``, ...).

    Attributes
    ----------
    idata : DataTree
        The posterior draws: PSIS-resampled when the correction is reliable
        (``attrs["vi_draws"] == "psis"``), else q's (``"q"``).
    result : bayesgmm.bayes.vi.VIResult
    psis : bayesgmm.bayes.vi.PSISResult
        The PSIS check of q itself.
    psis_correction : bayesgmm.bayes.vi.PSISResult or None
        PSIS from the defensive proposal; ``None`` for minibatch fits.
    """

    idata: xr.DataTree
    result: object
    psis: object
    psis_correction: object | None


def psis_draws(n_rows: int, draws: int) -> int:
    """Draws of the VI correction for ``n_rows`` rows and ``draws`` posterior draws.

    ``PSIS_DRAWS`` up to 1000 rows, then ``PSIS_ROW_BUDGET / n_rows``, never fewer than
    ``PSIS_MIN_DRAWS`` nor than ``draws``.
    """
    budget = int(np.clip(PSIS_ROW_BUDGET // max(int(n_rows), 1), PSIS_MIN_DRAWS, PSIS_DRAWS))
    return max(budget, int(draws))


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


#: Seconds a model's compilation may take before :func:`compile_notice` speaks.
COMPILE_NOTICE_SECONDS = 2.0


@contextlib.contextmanager
def compile_notice(spec: MixtureSpec, *, enabled: bool, delay: float = COMPILE_NOTICE_SECONDS):
    """Say on stderr what the wait is when compiling the model takes more than ``delay`` s.

    A model is compiled once per process and structure and loaded from the disk caches in
    a second or two; on a machine's first run (or after an upgrade) compiling takes from
    about ten seconds (a hand-written kernel) to a minute or two (a PyTensor graph), with no
    other output. ``bayesgmm warmup`` pays it once for every default structure.
    """
    if not enabled:
        yield
        return
    what = f"K={spec.n_components} {spec.structure.name}, {spec.n_features} feature(s)"
    timer = threading.Timer(
        delay,
        lambda: print(
            f"compiling the model ({what}): the first fit of a structure on this machine "
            "compiles it (up to a minute or two; then cached on disk, and "
            "'bayesgmm warmup' compiles every default structure at once)",
            file=sys.stderr,
            flush=True,
        ),
    )
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _sample_compiled(
    X, spec, family, start_points, jitter, rng, *, seed, model=None, order_basis=None, **settings
):
    """NUTS with nutpie on a compiled model (:mod:`bayesgmm.bayes.compiled`).

    The structure's cached model, or with ``model`` (a noise component, sample weights or
    missing entries) that model's own target
    (:meth:`~bayesgmm.bayes.compiled.CompiledMixture.of_model`).
    ``start_points`` are constrained points, one per chain or one for all; each chain
    starts there plus a seeded U(-jitter, jitter) in the unconstrained space.
    ``order_basis``: the identifying basis of an ordered-projection model, or ``None``.
    """
    from bayesgmm.bayes.compiled import CompiledMixture, compiled_mixture

    with compile_notice(spec, enabled=settings.get("progressbar", False)):
        if model is None:
            compiled = compiled_mixture(
                X, spec, covariance_prior_family=family, ordered_projection=order_basis is not None
            )
        else:
            compiled = CompiledMixture.of_model(model)
    starts = [compiled.unconstrained(point) for point in start_points]
    if len(starts) == 1:
        starts = starts * settings["chains"]
    jittered = [x + rng.uniform(-jitter, jitter, x.shape) for x in starts]
    settings = {k: v for k, v in settings.items() if k != "chains"}
    return compiled.sample(X, spec, jittered, seed=seed, order_basis=order_basis, **settings)


def start_list(start) -> list[MixtureParams]:
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


def checkpoints(draws: int, max_draws: int | None, chains: int) -> tuple[int, ...]:
    """The longer runs tried when ``draws`` are not enough (``max_draws``).

    ``draws`` doubled until ``max_draws`` (``None``: ``4 * draws`` when
    ``chains * draws >= EXTEND_MIN_TOTAL_DRAWS``, else no extension), which ends them.
    """
    if max_draws is None:
        sized = chains * draws >= EXTEND_MIN_TOTAL_DRAWS
        longest = 4 * draws if sized else draws
    else:
        longest = max_draws
    lengths = []
    length = 2 * draws
    while length < longest:
        lengths.append(length)
        length *= 2
    return (*lengths, longest) if longest > draws else ()


def mostly_empty(
    trace: xr.DataTree, X: np.ndarray, *, per_chain: int = 100, max_rows: int = 2000
) -> tuple[int, ...]:
    """Components holding fewer than one point in more than half of the recent draws.

    ``N_k = sum_n gamma_nk`` per draw, on the last ``per_chain`` draws of every chain and at
    most ``max_rows`` evenly spaced rows of ``X`` (counts scaled to all rows), as
    :func:`bayesgmm.posterior.modes.empty_components` judges them.

    Parameters
    ----------
    trace : DataTree
        ``posterior`` with ``weights``, ``means``, ``covariances`` (user's scale).
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    tuple of int
    """
    posterior = trace["posterior"].to_dataset().isel(draw=slice(-per_chain, None))
    rows = np.unique(np.linspace(0, len(X) - 1, min(len(X), max_rows)).astype(int))
    counts = component_counts(posterior, X[rows], None).to_numpy()
    counts = counts.reshape(-1, counts.shape[-1])
    return empty_components(counts * (len(X) / len(rows)))


def long_enough(
    trace: xr.DataTree, reference: MixtureParams, longest: int, X: np.ndarray | None = None
) -> bool:
    """Whether to stop at ``trace``: R-hat and both ESS pass on its relabelled draws, or
    ESS, growing in proportion to the draws, cannot reach its threshold by the longest
    run even twice over (chains that barely move are not run four times as long), or
    (given ``X``) a component is empty in most draws (:func:`mostly_empty`): the answer is
    then "fewer components", which longer chains would not change, and the verdict says so.

    Parameters
    ----------
    trace : DataTree
        The draws so far (``posterior``, ``sample_stats``).
    reference : MixtureParams
        The MAP, the labelling the draws are relabelled to (K > 1, d > 1).
    longest : int
        Draws per chain of the longest run allowed.
    """
    posterior = trace["posterior"].to_dataset()
    n_components, n_features = reference.means.shape
    if n_components > 1 and n_features > 1:
        posterior, _ = relabel_posterior(posterior, reference)
    tree = xr.DataTree.from_dict(
        {"posterior": posterior, "sample_stats": trace["sample_stats"].to_dataset()}
    )
    diag = diagnose(tree)
    if diag.mixes:
        return True
    if X is not None and n_components > 1 and mostly_empty(trace, X):
        return True
    ess = min(diag.min_ess_bulk, diag.min_ess_tail)
    projected = EXTEND_ESS_SLACK * ess * longest / diag.n_draws
    return not projected >= diag.ess_threshold


def run_nuts(
    X: np.ndarray,
    spec: MixtureSpec,
    model: pm.Model,
    start: Start,
    settings: Settings,
    *,
    plain: bool,
    rng: np.random.Generator,
    seed: int,
) -> xr.DataTree:
    """NUTS from ``start.points``, each chain's start jittered by ``rng``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    spec : MixtureSpec
    model : pymc.Model
        The model of ``X`` (:func:`bayesgmm.bayes.model.build_model`).
    start : Start
    settings : Settings
    plain : bool
        No noise, weights or missing entries: ``sampler="nutpie"`` runs the cached
        compiled model, and runs may extend (:func:`checkpoints`).
    rng : Generator
        Draws the start jitter.
    seed : int
        The sampler's seed.

    Returns
    -------
    DataTree
        ``posterior`` and ``sample_stats``.

    Raises
    ------
    KeyboardInterrupt
        The sampler returned fewer chains or draws than asked (it was interrupted).
    """
    common = {
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "seed": int(seed),
        "target_accept": settings.target_accept,
        "progressbar": settings.progressbar,
        **settings.extra_kwargs,
    }
    scaling = spec.standardization
    points = [ordered(s, start.projection_order, scaling) for s in start_list(start.points)]
    values = [initial_point(s, model, spec, noise_weight=start.noise_weight) for s in points]
    if settings.sampler == "nutpie":
        if plain:  # the structure's cached model; runs may extend
            lengths = checkpoints(settings.draws, settings.max_draws, settings.chains)
            longest = max(lengths, default=settings.draws)

            def enough(trace: xr.DataTree) -> bool:
                return long_enough(trace, start.map, longest, X)

            target = {"order_basis": start.order_basis, "checkpoints": lengths, "enough": enough}
        else:
            # noise, weights or missing entries: a target of the model's own (its numba code
            # cached on disk, not per structure in this process)
            target = {"model": model}
        idata = _sample_compiled(
            X,
            spec,
            settings.covariance_prior_family,
            values,
            settings.jitter,
            rng,
            **target,
            **common,
        )
        return _check_complete(idata, common)
    starts = [transformed_point(model, v) for v in values]
    chain_points = starts * settings.chains if len(starts) == 1 else starts
    jittered = [
        constrained_point(model, jitter_points(p, 1, settings.jitter, rng)[0]) for p in chain_points
    ]
    return _check_complete(_sample_pymc(model, jittered, **common), common)


def run_vi(
    X: np.ndarray,
    spec: MixtureSpec,
    model: pm.Model,
    start: Start,
    settings: Settings,
    *,
    weighted: bool,
    seed: int,
) -> VIFit:
    """ADVI or full-rank ADVI from the start, its PSIS checks and the corrected draws.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    spec : MixtureSpec
    model : pymc.Model
        The full-batch model of ``X``.
    start : Start
        ``start.points`` is one point.
    settings : Settings
    weighted : bool
        Whether ``X`` has frequency weights (``batch_size="auto"`` then never minibatches).
    seed : int

    Returns
    -------
    VIFit
    """
    point = start.points
    if isinstance(point, Sequence):
        (point,) = point
    batch_size = settings.batch_size
    if isinstance(batch_size, str):
        large = len(X) > MINIBATCH_THRESHOLD and not weighted
        batch_size = MINIBATCH_SIZE if large else None
    fit_model = model
    if batch_size is not None:
        fit_model = build_model(
            X,
            spec,
            covariance_prior_family=settings.covariance_prior_family,
            batch_size=batch_size,
            random_seed=int(seed),
        )
    from bayesgmm.bayes.vi import fit_vi, psis_khat, psis_khat_subsample, psis_posterior

    with pymc_log_level(settings.progressbar):  # PyMC logs "Interrupted at ..." on stopping
        result = fit_vi(
            fit_model,
            initial_point(point, fit_model, spec, noise_weight=start.noise_weight),
            settings.method,
            max_iter=settings.vi_iterations,
            random_seed=int(seed),
            progressbar=settings.progressbar,
            **settings.extra_kwargs,
        )
    if not result.converged:
        warnings.warn(
            f"{settings.method} stopped at vi_iterations={result.n_iter} before its ELBO "
            "settled: increase vi_iterations or use method='nuts'",
            UserWarning,
            stacklevel=3,
        )
    correction = None
    if batch_size is None:
        psis = psis_khat(fit_model, result.approximation, random_seed=int(seed) + 1)
        # the correction: PSIS from the defensive proposal (q and q widened, then
        # moment-matched), whose resampled draws replace q's when its k-hat < 0.7
        # (bayesgmm.bayes.vi, reports/vi.md)
        correction = psis_khat(
            fit_model,
            result.approximation,
            n_draws=psis_draws(len(X), settings.draws),
            random_seed=int(seed) + 2,
            proposal="defensive",
        )
    else:
        # a subsample's weights estimate the subsample posterior: no correction
        psis = psis_khat_subsample(
            X,
            spec,
            result.approximation,
            random_seed=int(seed) + 1,
            covariance_prior_family=settings.covariance_prior_family,
        )
    if correction is not None and correction.reliable:
        idata = psis_posterior(
            fit_model, result.approximation, correction, settings.draws, random_seed=int(seed)
        )
        idata["posterior"].attrs["vi_draws"] = "psis"
        return VIFit(idata, result, psis, correction)
    if not psis.reliable:
        warnings.warn(psis.message, UserWarning, stacklevel=3)
    idata = result.approximation.sample(settings.draws, random_seed=int(seed))
    idata["posterior"].attrs["vi_draws"] = "q"
    return VIFit(idata, result, psis, correction)


__all__ = [
    "EXTEND_ESS_SLACK",
    "EXTEND_MIN_TOTAL_DRAWS",
    "PSIS_DRAWS",
    "PSIS_MIN_DRAWS",
    "PSIS_ROW_BUDGET",
    "VIFit",
    "checkpoints",
    "long_enough",
    "psis_draws",
    "run_gibbs",
    "run_nuts",
    "run_vi",
]
