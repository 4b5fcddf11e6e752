"""The PSIS checks of a variational fit: Pareto k-hat of q, the defensive correction.

Pure functions over a PyMC model and a one-group approximation (ADVI, full-rank ADVI; the
fit itself: :mod:`bayesgmm.bayes.vi`, which re-exports every public name here):

* :func:`psis_khat` is the Pareto-smoothed importance-sampling diagnostic of Yao, Vehtari,
  Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational inference": draws
  ``theta ~ q`` in the unconstrained space, log ratios ``log p(theta, X) - log q(theta)`` with
  the model's joint log density *including* the Jacobian of the transforms, and the Pareto
  shape ``k-hat`` of their upper tail. ``k-hat < 0.5``: good; ``< 0.7``: usable, and the
  smoothed weights correct the posterior summaries (:meth:`PSISResult.summary`); otherwise VI
  is unreliable for this model and data: use NUTS.
* :func:`psis_khat` with ``proposal="defensive"`` is the *correction*: importance sampling
  from a defensive mixture adapted once. Stage 1 draws from ``(q + q_wide) / 2``, ``q_wide``
  being q with its Cholesky factor doubled (Hesterberg 1995; Owen & Zhou 2000, "Safe and
  effective importance sampling", JASA 95); its Pareto-smoothed weights give a mean ``m``
  and covariance ``S`` (importance-weighted moment matching, Paananen et al. 2021), and
  stage 2 draws from ``(N(m, S) + N(m, 4 S)) / 2``, Pareto-smoothed (Vehtari, Simpson,
  Gelman, Yao & Gabry 2024, JMLR 25(72)). Its k-hat is reported beside q's: it says whether
  the *corrected* posterior is usable, while q's k-hat says whether q itself is.
  :func:`psis_posterior` resamples its draws by weight into an ordinary posterior sample.
* :func:`psis_khat_subsample` is the same check for minibatch fits on a seeded subsample of the
  rows, the likelihood scaled by ``N / n``: an approximation of the full-data check.

Why the defensive correction (measured on galaxies K=3 against NUTS, 13 chains x 1000 pooled
over four seeds, fit seeds 1-3; numbers in ``reports/vi.md``). The 3-galaxy component's mean
and variance have heavy-tailed posteriors (the variance's tail index ~2-3) and the 7-galaxy
variance is skewed; a Gaussian q is too narrow there (q's sd of the 3-galaxy variance 0.22-0.24
of NUTS's) whichever the family, start or iteration budget, and q's own k-hat is borderline
(0.49-0.74). Reweighting q's own draws helps little because q rarely visits the tail. The
plain defensive mixture (stage 1 alone) reaches it, but for mean-field q its k-hat is
0.37-0.75 over fit and proposal seeds with 16000 draws (ESS ~2000): a mean-field q has no
correlations to widen. Matching its weighted moments once gives stage 2 k-hats of 0.26-0.57
for both families and an ESS of 5000-6000 of 16000; the corrected draws have every
interquartile range within 0.86-1.09 of NUTS's and every sd within 0.76-1.17 except the
3-galaxy component's mean and variance (0.5-0.8: their sd is dominated by rare excursions
towards another configuration, which NUTS's own 1000-draw chains estimate at 0.44-1.55 of
the pooled value). Alternatives measured: q inflated 2x alone (ratios unbounded near the
mode: k-hat 0.77-1.05 on faithful's 14 dimensions), a multivariate Student-t with q's scale
(nu 5 or 7: k-hat up to 0.80), and mixtures of q with q widened 3x or 4x, a Student-t (nu 3)
or a Cauchy (no better in the tail, k-hat up to 0.83).
A small correction k-hat does not vouch for regions no stage reaches (another
mode of a multimodal posterior): the correction repairs the tails of the mode VI found.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pandas as pd
import pymc as pm
from arviz_stats.base import array_stats
from pymc.variational.minibatch_rv import MinibatchRandomVariable
from scipy.special import logsumexp

from bayesgmm.bayes.graph import MODE, reproducible_compilation
from bayesgmm.bayes.model import build_model

Verdict = Literal["good", "ok", "unreliable"]
#: Pareto k-hat thresholds of Yao et al. (2018) / Vehtari et al. (2024).
KHAT_GOOD = 0.5
KHAT_USABLE = 0.7
UNRELIABLE_MESSAGE = "VI is unreliable here: use NUTS"
#: The defensive proposal of the PSIS correction, adapted once: stage 1 draws from
#: ``(q + q_wide) / 2``, ``q_wide`` having q's mean and its Cholesky factor times
#: ``DEFENSIVE_INFLATION`` (Hesterberg 1995; Owen & Zhou 2000); its PSIS-weighted mean ``m``
#: and covariance ``S`` (importance-weighted moment matching, Paananen et al. 2021) give
#: stage 2, the one reported: ``(N(m, S) + N(m, 4 S)) / 2``. A mean-field q thus gets a full
#: covariance (measured in ``reports/vi.md``, galaxies K=3, 16000 draws: mean-field
#: correction k-hat 0.37-0.75 with the stage-1 mixture, 0.29-0.49 adapted).
DEFENSIVE_INFLATION = 2.0
#: Stage 1's moments are matched when its k-hat is below this: the weighted mean exists for
#: k < 1, and stage 2's own k-hat judges the result (Paananen et al. adapt when k-hat > 0.7;
#: galaxies mean-field stage-1 k-hats reach 0.71-0.82, with stage 2 then at 0.41-0.44).
MATCH_KHAT = 1.0
Proposal = Literal["q", "defensive"]
PROPOSALS: tuple[str, ...] = ("q", "defensive")
SUMMARY_VARS: tuple[str, ...] = ("weights", "means", "covariances")


@dataclasses.dataclass(frozen=True)
class PSISResult:
    """Pareto-smoothed importance sampling of the posterior with a variational proposal.

    Attributes
    ----------
    khat : float
        Pareto shape of the upper tail of the importance ratios.
    log_weights : ndarray of shape (n_draws,)
        Smoothed log weights, normalised (``logsumexp(log_weights) == 0``).
    verdict : {"good", "ok", "unreliable"}
        ``khat < 0.5``, ``khat < 0.7``, otherwise.
    message : str
        One line for users; ``"VI is unreliable here: use NUTS"`` for ``"unreliable"``.
    ess : float
        Importance-sampling effective sample size ``1 / sum(w**2)``.
    draws : dict of str to ndarray of shape (n_draws, ...)
        ``weights``, ``means``, ``covariances`` (user's scale) at every draw of ``q``, for
        :meth:`summary`.
    likelihood_scale : float
        Factor on the log-likelihood (``N / n`` for a subsample check, else 1).
    proposal : {"q", "defensive"}
        What the draws came from: ``q`` itself (the k-hat of Yao et al. 2018, a verdict on
        q) or the defensive mixture of q and a wider copy (a verdict on the correction).
    theta : ndarray of shape (n_draws, n_unconstrained)
        The draws in the unconstrained space (for :func:`psis_posterior`).
    """

    khat: float
    log_weights: np.ndarray = dataclasses.field(repr=False)
    verdict: str
    message: str
    ess: float
    draws: dict[str, np.ndarray] = dataclasses.field(repr=False)
    likelihood_scale: float = 1.0
    proposal: str = "q"
    theta: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def reliable(self) -> bool:
        """Whether ``khat < 0.7``."""
        return self.verdict != "unreliable"

    def moments(self, *, weighted: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Posterior mean and sd of each variable, importance-weighted or plain.

        Parameters
        ----------
        weighted : bool
            ``True`` for the PSIS-corrected moments (refused when ``khat >= 0.7``: the
            weights are then too heavy-tailed to estimate anything), ``False`` for the plain
            moments of the variational draws.

        Returns
        -------
        dict of str to (mean, sd)
            Arrays of each variable's shape.
        """
        if weighted and not self.reliable:
            raise ValueError(
                f"PSIS-corrected summaries need khat < {KHAT_USABLE}, got khat={self.khat:.2f}: "
                f"{UNRELIABLE_MESSAGE}"
            )
        w = np.exp(self.log_weights) if weighted else np.full(len(self.log_weights), 1.0)
        w = w / w.sum()
        out = {}
        for name, values in self.draws.items():
            mean = np.tensordot(w, values, axes=1)
            var = np.tensordot(w, (values - mean) ** 2, axes=1)
            out[name] = (mean, np.sqrt(var))
        return out

    def resample(self, n: int, *, random_seed: int | None = None) -> np.ndarray:
        """Indices of ``n`` draws resampled by the smoothed weights (systematic resampling).

        Resampling turns the weighted draws into an unweighted posterior sample with about
        ``ess`` distinct values; it is refused when ``khat >= 0.7``.

        Returns
        -------
        ndarray of shape (n,)
            Indices into the draws, in a seeded random order.
        """
        if not self.reliable:
            raise ValueError(
                f"resampling needs khat < {KHAT_USABLE}, got khat={self.khat:.2f}: "
                f"{UNRELIABLE_MESSAGE}"
            )
        check = int(n) == n and n >= 1
        if not check:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        rng = np.random.default_rng(random_seed)
        cdf = np.cumsum(np.exp(self.log_weights))
        cdf[-1] = 1.0
        positions = (rng.random() + np.arange(int(n))) / int(n)
        return rng.permutation(np.searchsorted(cdf, positions, side="right"))

    def summary(self, *, weighted: bool = True) -> pd.DataFrame:
        """Means and sds as a table, one row per scalar (``weights[0]``, ``means[1, 0]``...)."""
        rows = {}
        for name, (mean, sd) in self.moments(weighted=weighted).items():
            for index in np.ndindex(mean.shape):
                label = f"{name}[{', '.join(map(str, index))}]" if index else name
                rows[label] = (mean[index], sd[index])
        return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "sd"])


def is_minibatch(model: pm.Model) -> bool:
    """Whether an observed variable of ``model`` is a ``pm.Minibatch`` (``total_size`` set)."""
    return any(isinstance(rv.owner.op, MinibatchRandomVariable) for rv in model.observed_RVs)


def _gaussian_of(approx) -> tuple[np.ndarray, np.ndarray, dict]:
    """Mean, Cholesky factor of the covariance and flat ordering of a one-group approximation."""
    if len(approx.groups) != 1:
        raise ValueError(
            f"psis_khat needs an approximation with one group (ADVI, FullRankADVI), got "
            f"{len(approx.groups)} groups"
        )
    group = approx.groups[0]
    mu = np.asarray(group.mean.eval(), dtype=np.float64)
    if hasattr(group, "L"):
        chol = np.asarray(group.L.eval(), dtype=np.float64)
    else:
        chol = np.diag(np.asarray(group.std.eval(), dtype=np.float64))
    return mu, chol, group.ordering


@reproducible_compilation()
def psis_khat(
    model: pm.Model,
    approx,
    *,
    n_draws: int = 4000,
    random_seed: int | None = None,
    likelihood_scale: float = 1.0,
    proposal: Proposal = "q",
) -> PSISResult:
    """Pareto k-hat of the importance ratios ``p(theta, X) / g(theta)`` (Yao et al., 2018).

    With ``proposal="q"`` the draws come from the approximation, ``g = q``: k-hat says how
    good q is. With ``proposal="defensive"`` the draws come from a defensive mixture adapted
    once. Stage 1 (``max(1000, n_draws // 4)`` draws, not returned): half from q, half from
    ``q_wide`` (q's mean, its Cholesky factor times ``DEFENSIVE_INFLATION``), the
    deterministic-allocation defensive mixture of Owen & Zhou (2000); when its k-hat is < 1
    (``MATCH_KHAT``), its PSIS-weighted mean ``m`` and covariance ``S`` (importance-weighted
    moment matching, Paananen, Piironen, Buerkner & Vehtari 2021, Stat. Comput. 31:16)
    replace q's moments in stage 2. Stage 2 (``n_draws`` draws, the ones returned):
    ``g = (N(m, S) + N(m, 4 S)) / 2``, the same defensive mixture around the matched
    moments: its ratios are at most twice those against ``N(m, S)``, ``S`` carries the
    correlations a mean-field q lacks and the wide half covers the tails q cuts off, so the
    smoothed weights correct q where it is too narrow; k-hat then says whether that
    correction is usable (Vehtari, Simpson, Gelman, Yao & Gabry 2024,
    "Pareto smoothed importance sampling", JMLR 25(72)).

    Parameters
    ----------
    model : pymc.Model
        A model with the free variables the approximation was fitted on and the data to check
        against (the fitted model, or for a minibatch fit a full-data or subsample model: see
        :func:`psis_khat_subsample`). Must not hold a ``pm.Minibatch``.
    approx : pymc.variational.Approximation
        Mean-field or full-rank Gaussian in the unconstrained space (``VIResult.approximation``).
    n_draws : int
        Draws from the proposal; the k-hat estimate needs a few thousand (the correction in
        ``BayesianGaussianMixture`` uses 16000: its weighted sds of heavy-tailed variances
        need them, ``reports/vi.md``).
    random_seed : int, optional
    likelihood_scale : float
        Factor on the observed variables' log density (``N / n`` on a subsample).
    proposal : {"q", "defensive"}

    Returns
    -------
    PSISResult
    """
    if proposal not in PROPOSALS:
        raise ValueError(f"proposal must be one of {PROPOSALS}, got {proposal!r}")
    if is_minibatch(model):
        raise ValueError(
            "psis_khat needs a model without pm.Minibatch (each evaluation would see other rows): "
            "build the model on all rows or use psis_khat_subsample"
        )
    if int(n_draws) != n_draws or n_draws < 100:
        raise ValueError(f"n_draws must be an integer >= 100, got {n_draws!r}")
    mu, chol, ordering = _gaussian_of(approx)
    rng = np.random.default_rng(random_seed)
    names = [name for name in SUMMARY_VARS if name in model.named_vars]
    fn = model.compile_fn(
        [
            model.logp(vars=model.free_RVs, jacobian=True),
            model.logp(vars=model.observed_RVs),
            *model.replace_rvs_by_values([model[name] for name in names]),
        ],
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode=MODE,  # as fit_vi: no Blockwise(AllocDiag) left for numba's object mode
    )
    if proposal == "q":
        theta, log_q = _mixture_draws(rng, [(1.0, mu, chol)], int(n_draws))
    else:
        # stage 1: the defensive mixture of q and q widened, whose PSIS-weighted mean and
        # covariance (moment matching, Paananen et al. 2021) centre the stage-2 proposal
        wide = [(0.5, mu, chol), (0.5, mu, DEFENSIVE_INFLATION * chol)]
        theta1, log_g1 = _mixture_draws(rng, wide, max(1000, int(n_draws) // 4))
        log_p1, _ = _evaluate(fn, theta1, ordering, names, likelihood_scale)
        mean, cov_chol = _matched_moments(theta1, log_p1 - log_g1, default=(mu, chol))
        # stage 2: the defensive mixture again, around the matched moments; its ratios are
        # at most twice those against N(m, S), and it is stage 1 when the match is refused
        components = [(0.5, mean, cov_chol), (0.5, mean, DEFENSIVE_INFLATION * cov_chol)]
        theta, log_q = _mixture_draws(rng, components, int(n_draws))
    log_p, draws = _evaluate(fn, theta, ordering, names, likelihood_scale)
    log_ratios = log_p - log_q
    if not np.all(np.isfinite(log_ratios)):
        raise FloatingPointError(
            f"{np.sum(~np.isfinite(log_ratios))} of {len(theta)} draws from q have a non-finite "
            "joint log density: the approximation puts mass where the model has none"
        )
    # arviz-stats smooths log-likelihood-like input: weights are proportional to exp(-input)
    smoothed, khat = array_stats.psislw(-log_ratios, r_eff=1.0)
    log_weights = smoothed - logsumexp(smoothed)
    khat = float(khat)
    if proposal == "defensive":
        verdict, message = _correction_verdict(khat)
    elif khat < KHAT_GOOD:
        verdict, message = "good", f"k-hat = {khat:.2f} < {KHAT_GOOD}: VI is good here"
    elif khat < KHAT_USABLE:
        verdict, message = (
            "ok",
            f"k-hat = {khat:.2f} < {KHAT_USABLE}: VI is usable here, prefer the PSIS-corrected "
            "summaries",
        )
    elif not np.isfinite(khat):
        # the Pareto tail fit fails when one draw carries almost all the weight, e.g. with a
        # subsample's likelihood scaled by N/n: the check then cannot vouch for the fit
        verdict = "unreliable"
        message = (
            "k-hat could not be estimated (one draw carries nearly all the importance weight"
            + (
                f"; the likelihood is scaled by N/n = {likelihood_scale:.0f}"
                if likelihood_scale > 1
                else ""
            )
            + f"): the approximation is unchecked: {UNRELIABLE_MESSAGE}, or on a subsample"
        )
    else:
        verdict = "unreliable"
        message = f"k-hat = {khat:.2f} >= {KHAT_USABLE}: {UNRELIABLE_MESSAGE}"
    return PSISResult(
        khat=khat,
        log_weights=log_weights,
        verdict=verdict,
        message=message,
        ess=float(1.0 / np.sum(np.exp(2 * log_weights))),
        draws=draws,
        likelihood_scale=float(likelihood_scale),
        proposal=proposal,
        theta=theta,
    )


def _matched_moments(
    theta: np.ndarray, log_ratios: np.ndarray, *, default: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """PSIS-weighted mean and Cholesky factor of the covariance of ``theta``, or ``default``.

    ``default`` is kept when a ratio is not finite, the Pareto k-hat is ``>= MATCH_KHAT``
    (the weighted mean may not exist) or the weighted covariance is singular.

    Parameters
    ----------
    theta : ndarray of shape (n, d)
    log_ratios : ndarray of shape (n,)
        ``log p - log g`` at the rows of ``theta``.
    default : (mean of shape (d,), Cholesky factor of shape (d, d))
    """
    if not np.all(np.isfinite(log_ratios)):
        return default
    smoothed, khat = array_stats.psislw(-log_ratios, r_eff=1.0)
    if not float(khat) < MATCH_KHAT:
        return default
    w = np.exp(smoothed - logsumexp(smoothed))
    mean = w @ theta
    centred = theta - mean
    try:
        return mean, np.linalg.cholesky((centred * w[:, None]).T @ centred)
    except np.linalg.LinAlgError:
        return default


def _mixture_draws(
    rng: np.random.Generator, components: list[tuple[float, np.ndarray, np.ndarray]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws of a Gaussian mixture, allocated deterministically, and its log density.

    Parameters
    ----------
    components : list of (fraction, mean of shape (d,), Cholesky factor of shape (d, d))

    Returns
    -------
    theta : ndarray of shape (n, d)
    log_density : ndarray of shape (n,)
    """
    counts = [round(fraction * n) for fraction, _, _ in components]
    counts[-1] = n - sum(counts[:-1])
    theta = np.concatenate(
        [
            mean + rng.standard_normal((count, len(mean))) @ chol.T
            for count, (_, mean, chol) in zip(counts, components, strict=True)
        ]
    )
    log_density = logsumexp(
        [np.log(frac) + _log_gaussian(theta, mean, chol) for frac, mean, chol in components],
        axis=0,
    )
    return theta, log_density


def _log_gaussian(theta: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Log density of ``N(mean, chol chol^T)`` at the rows of ``theta``; shape (n,)."""
    z = np.linalg.solve(chol, (theta - mean).T).T
    d = theta.shape[1]
    return -0.5 * np.sum(z**2, axis=1) - np.sum(np.log(np.diag(chol))) - 0.5 * d * np.log(2 * np.pi)


def _evaluate(fn, theta, ordering, names, likelihood_scale) -> tuple[np.ndarray, dict]:
    """Joint log density (Jacobian included) and the summary variables at each draw."""
    log_p = np.empty(len(theta))
    draws = {name: [] for name in names}
    for i, row in enumerate(theta):
        point = {name: row[s].reshape(shape) for name, s, shape, _ in ordering.values()}
        prior, obs, *values = fn(point)
        log_p[i] = prior + likelihood_scale * obs
        for name, value in zip(names, values, strict=True):
            draws[name].append(np.asarray(value))
    return log_p, {name: np.stack(values) for name, values in draws.items()}


def _correction_verdict(khat: float) -> tuple[str, str]:
    """Verdict and message of the defensive-proposal (correction) k-hat."""
    if khat < KHAT_GOOD:
        return "good", f"correction k-hat = {khat:.2f} < {KHAT_GOOD}: the PSIS correction is good"
    if khat < KHAT_USABLE:
        return "ok", f"correction k-hat = {khat:.2f} < {KHAT_USABLE}: the PSIS correction is usable"
    shown = f"{khat:.2f}" if np.isfinite(khat) else "not estimable"
    return "unreliable", f"correction k-hat = {shown}: the PSIS correction is unreliable too"


def psis_posterior(model: pm.Model, approx, psis: PSISResult, draws: int, *, random_seed=None):
    """The PSIS-corrected posterior as ``draws`` resampled draws, one chain.

    Parameters
    ----------
    model : pymc.Model
        The model ``psis`` was computed on.
    approx : pymc.variational.Approximation
        The approximation ``psis`` was computed from (its variable ordering).
    psis : PSISResult
        With ``khat < 0.7`` (else :meth:`PSISResult.resample` refuses).
    draws : int
    random_seed : int, optional

    Returns
    -------
    xarray.DataTree
        With a ``posterior`` group like ``approx.sample(draws)``'s (free variables in the
        constrained space and deterministics).
    """
    from pymc.backends.base import MultiTrace
    from pymc.backends.ndarray import NDArray

    index = psis.resample(draws, random_seed=random_seed)
    _, _, ordering = _gaussian_of(approx)
    points = [
        {name: psis.theta[i, s].reshape(shape) for name, s, shape, _ in ordering.values()}
        for i in index
    ]
    trace = NDArray(model=model, test_point=points[0])
    try:
        trace.setup(draws=len(points), chain=0)
        for point in points:
            trace.record(point, in_warmup=False)
    finally:
        trace.close()
    return pm.to_inference_data(MultiTrace([trace]), model=model, log_likelihood=False)


@reproducible_compilation()
def psis_khat_subsample(
    X: np.ndarray,
    spec,
    approx,
    *,
    n_rows: int = 2000,
    n_draws: int = 4000,
    random_seed: int | None = None,
    **model_kwargs,
) -> PSISResult:
    """:func:`psis_khat` for a minibatch fit, on a seeded subsample of the rows.

    The joint log density is the prior plus ``N / n`` times the log-likelihood of ``n``
    rows drawn without replacement: an unbiased estimate of the full-data log-likelihood, so
    k-hat is approximate (the subsampling noise adds to the tail of the ratios; with
    ``n_rows >= N`` it is exact).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data the approximation was fitted on.
    spec : MixtureSpec
        The spec of the fitted model.
    approx : pymc.variational.Approximation
    n_rows : int
        Subsample size.
    n_draws : int
    random_seed : int, optional
        Seeds the subsample and the draws from ``q``.
    **model_kwargs
        Passed to :func:`bayesgmm.bayes.model.build_model` (``covariance_prior_family``...); not
        ``batch_size``.

    Returns
    -------
    PSISResult
    """
    X = np.asarray(X, dtype=np.float64)
    n_samples = len(X)
    rng = np.random.default_rng(random_seed)
    if n_rows >= n_samples:
        rows, scale = np.arange(n_samples), 1.0
    else:
        rows = np.sort(rng.choice(n_samples, size=int(n_rows), replace=False))
        scale = n_samples / n_rows
    model = build_model(X[rows], spec, **model_kwargs)
    return psis_khat(
        model,
        approx,
        n_draws=n_draws,
        random_seed=int(rng.integers(2**31 - 1)),
        likelihood_scale=scale,
    )


__all__ = [
    "KHAT_GOOD",
    "KHAT_USABLE",
    "PROPOSALS",
    "UNRELIABLE_MESSAGE",
    "PSISResult",
    "is_minibatch",
    "psis_khat",
    "psis_khat_subsample",
    "psis_posterior",
]
