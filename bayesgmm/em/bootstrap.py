"""Bootstrap uncertainty of EM / MAP-EM estimates (mclust's ``MclustBootstrap``).

Each replicate refits the mixture from the fitted solution (its weights, means and
precisions as the start: one EM run, no restarts) and is relabelled to the fitted
solution by the KL-Hungarian rule of :mod:`bayesgmm.posterior.relabel`, so that component ``k``
of every replicate estimates component ``k`` of the fit. Three kinds:

* ``"nonparametric"``: rows resampled with replacement, as multinomial counts used as
  frequency weights (:mod:`bayesgmm.core.weights`), which fits exactly the resampled data
  without copying it (Efron 1979).
* ``"weighted"``: the weighted likelihood (Bayesian) bootstrap, weights
  ``W * Dirichlet(1, ..., 1)`` (Rubin 1981; Newton & Raftery 1994), smooth where the
  multinomial counts are not.
* ``"parametric"``: ``N`` rows drawn from the fitted mixture, then refitted.

With frequency weights ``w`` the data are the rows repeated ``w_n`` times: the counts are
``Multinomial(W, w / W)`` (integer weights; otherwise ``N`` draws rescaled to ``W``), the
Dirichlet concentrations are ``w`` and the parametric replicates have ``round(W)`` rows.

Every replicate draws its random numbers from its own child of
``numpy.random.SeedSequence(random_state)``, so results do not depend on ``n_jobs``.
The prior is the one resolved for the fit (``prior_``), held fixed across replicates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from bayesgmm.core.exceptions import NumericalError, SingularCovarianceError
from bayesgmm.core.params import MixtureParams
from bayesgmm.posterior.draws import equal_tailed_interval, sample_mixture
from bayesgmm.posterior.relabel import apply_permutations, best_permutations, gaussian_kl_cost
from bayesgmm.posterior.summaries import SUMMARY_PREFIXES, _parameter_entries

BootstrapKind = Literal["nonparametric", "weighted", "parametric"]


def _multinomial_counts(rng: np.random.Generator, n_rows: int, base: np.ndarray | None):
    """Resampling counts as frequency weights, shape (n_rows,)."""
    if base is None:
        return rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows)).astype(np.float64)
    total = float(base.sum())
    p = base / total
    if np.all(base == np.round(base)):
        return rng.multinomial(round(float(total)), p).astype(np.float64)
    return rng.multinomial(n_rows, p) * (total / n_rows)


def _dirichlet_weights(rng: np.random.Generator, n_rows: int, base: np.ndarray | None):
    """Weighted-likelihood bootstrap weights ``W * Dirichlet(alpha)``, shape (n_rows,)."""
    alpha = np.ones(n_rows) if base is None else base
    gamma = rng.standard_gamma(alpha)
    return gamma / gamma.sum() * float(alpha.sum())


#: ``resample(rng, n_rows, base weights or None) -> replicate weights`` per kind (the
#: parametric bootstrap draws new rows instead).
RESAMPLERS = {"nonparametric": _multinomial_counts, "weighted": _dirichlet_weights}
KINDS = (*RESAMPLERS, "parametric")


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap replicates of a mixture fit, relabelled to the fitted solution.

    Attributes
    ----------
    kind : {"nonparametric", "weighted", "parametric"}
    estimate : MixtureParams
        The fitted solution; the replicates use its labels.
    weights : ndarray of shape (n_boot, n_components)
    means : ndarray of shape (n_boot, n_components, n_features)
    covariances : ndarray of shape (n_boot, *layout)
        In the structure's layout, as ``covariances_``: (B, K, d, d), (B, d, d), (B, K, d)
        or (B, K). A failed replicate's entries are NaN.
    converged : ndarray of bool, shape (n_boot,)
    failed : ndarray of bool, shape (n_boot,)
        Replicates whose fit raised (a singular covariance, say); excluded from summaries.
    ci_prob : float
        Default probability of :meth:`intervals`.
    feature_names : list of str
    """

    kind: str
    estimate: MixtureParams
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    converged: np.ndarray
    failed: np.ndarray
    ci_prob: float = 0.89
    feature_names: list[str] = field(default_factory=list)

    @property
    def n_boot(self) -> int:
        """Number of replicates (failed ones included)."""
        return int(self.weights.shape[0])

    def full_covariances(self) -> np.ndarray:
        """Covariances as full matrices, shape (n_boot, n_components, d, d)."""
        k, d = self.estimate.n_components, self.estimate.n_features
        structure = self.estimate.structure
        return np.stack([structure.expand(c, k, d) for c in self.covariances])

    def permuted(self, order: np.ndarray) -> BootstrapResult:
        """The same replicates with components reordered as ``order`` (see
        :meth:`MixtureParams.permuted`), estimate included."""
        structure = self.estimate.structure
        return BootstrapResult(
            self.kind,
            self.estimate.permuted(order),
            self.weights[:, order],
            self.means[:, order],
            np.stack([structure.permute(c, np.asarray(order)) for c in self.covariances]),
            self.converged,
            self.failed,
            self.ci_prob,
            self.feature_names,
        )

    def _entries(self):
        est = self.estimate
        names = self.feature_names or [str(j) for j in range(est.n_features)]
        return _parameter_entries(
            est.n_components, est.n_features, est.covariance_type, names, SUMMARY_PREFIXES
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per replicate, one column per free parameter (failed replicates: NaN).

        Columns are named as :func:`~bayesgmm.posterior.summaries.point_estimate_table` names its
        rows
        (``weights[0]``, ``means[0, x]``, ``covariances[0, x, y]``).
        """
        values = {
            "weights": self.weights,
            "means": self.means,
            "covariances": self.full_covariances(),
        }
        columns = {
            label: values[kind][(slice(None), *index)] for kind, label, index in self._entries()
        }
        return pd.DataFrame(columns, index=pd.RangeIndex(self.n_boot, name="replicate"))

    def _estimates(self) -> pd.DataFrame:
        point = {
            "weights": self.estimate.weights,
            "means": self.estimate.means,
            "covariances": self.estimate.full_covariances(),
        }
        entries = self._entries()
        return pd.DataFrame(
            {
                "kind": [kind for kind, _, _ in entries],
                "estimate": [float(point[kind][index]) for kind, _, index in entries],
            },
            index=pd.Index([label for _, label, _ in entries], name="parameter"),
        )

    def standard_errors(self) -> pd.DataFrame:
        """Bootstrap standard errors, one row per free parameter.

        Returns
        -------
        DataFrame indexed by parameter
            ``kind``, ``estimate`` (the fit) and ``se`` (standard deviation of the
            successful replicates, ``ddof=1``).
        """
        table = self._estimates()
        replicates = self.to_frame()[~self.failed]
        table["se"] = replicates.std(ddof=1).to_numpy()
        return table

    def intervals(self, ci_prob: float | None = None) -> pd.DataFrame:
        """Percentile intervals, one row per free parameter.

        Parameters
        ----------
        ci_prob : float, optional
            Probability inside each interval (default :attr:`ci_prob`); equal tails.

        Returns
        -------
        DataFrame indexed by parameter
            ``kind``, ``estimate``, ``lower``, ``upper``; ``attrs["ci_prob"]``.
        """
        ci_prob = self.ci_prob if ci_prob is None else ci_prob
        table = self._estimates()
        replicates = self.to_frame()[~self.failed].to_numpy()
        lower, upper = equal_tailed_interval(replicates, ci_prob)
        table["lower"], table["upper"] = lower, upper
        table.attrs["ci_prob"] = ci_prob
        return table

    def __repr__(self) -> str:
        return (
            f"BootstrapResult(kind={self.kind!r}, n_boot={self.n_boot}, "
            f"failed={int(self.failed.sum())}, n_components={self.estimate.n_components}, "
            f"covariance_type={self.estimate.covariance_type!r})"
        )


def replicate_seeds(random_state, n_boot: int) -> list[np.random.SeedSequence]:
    """One independent seed per replicate from ``random_state`` (int, SeedSequence,
    Generator, BitGenerator or None)."""
    if isinstance(random_state, np.random.BitGenerator):
        random_state = np.random.Generator(random_state)
    if isinstance(random_state, np.random.Generator):
        random_state = int(random_state.integers(2**63))
    if not isinstance(random_state, np.random.SeedSequence):
        random_state = np.random.SeedSequence(random_state)
    return random_state.spawn(n_boot)


def fit_replicate(
    estimator,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    kind: str,
    seed: np.random.SeedSequence,
) -> tuple[MixtureParams | None, bool]:
    """Fit one bootstrap replicate from the estimator's fitted solution.

    Parameters
    ----------
    estimator : GaussianMixture
        Fitted; its parameters are the start and its ``prior_`` the prior.
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
        The fit's frequency weights.
    kind : {"nonparametric", "weighted", "parametric"}
    seed : numpy.random.SeedSequence

    Returns
    -------
    params : MixtureParams or None
        The replicate's estimate, not yet relabelled; ``None`` if the fit failed.
    converged : bool
    """
    from sklearn.base import clone

    rng = np.random.default_rng(seed)
    estimate = estimator.params_
    if kind == "parametric":
        n_rows = X.shape[0] if sample_weight is None else round(float(sample_weight.sum()))
        data, _ = sample_mixture(
            estimate.weights, estimate.means, estimate.full_covariances(), n_rows, rng
        )
        weights = None
    else:
        data, weights = X, RESAMPLERS[kind](rng, X.shape[0], sample_weight)
    model = clone(estimator).set_params(
        prior=estimator.prior_,
        n_init=1,
        weights_init=estimate.weights,
        means_init=estimate.means,
        precisions_init=estimate.precisions(),
        random_state=int(rng.integers(2**31)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(data, sample_weight=weights)
        except (SingularCovarianceError, NumericalError):
            return None, False
    return model.params_, bool(model.converged_)


def bootstrap_mixture(
    estimator,
    X: np.ndarray,
    *,
    n_boot: int = 200,
    kind: BootstrapKind = "nonparametric",
    sample_weight: np.ndarray | None = None,
    n_jobs: int | None = None,
    random_state=None,
    ci_prob: float = 0.89,
    feature_names: list[str] | None = None,
) -> BootstrapResult:
    """Bootstrap a fitted :class:`~bayesgmm.GaussianMixture` (see the module docstring).

    Parameters
    ----------
    estimator : GaussianMixture
        Fitted to ``X`` (with ``sample_weight``).
    X : ndarray of shape (n_samples, n_features)
        Validated data.
    n_boot : int
    kind : {"nonparametric", "weighted", "parametric"}
    sample_weight : ndarray of shape (n_samples,), optional
        Validated frequency weights of the fit.
    n_jobs : int or None
        Processes (joblib; ``None``: one, ``-1``: every core).
    random_state : int, SeedSequence, Generator or None
    ci_prob : float
    feature_names : list of str, optional

    Returns
    -------
    BootstrapResult
    """
    from joblib import Parallel, delayed

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    if not 0 < ci_prob < 1:
        raise ValueError(f"ci_prob must be in (0, 1), got {ci_prob}")
    seeds = replicate_seeds(random_state, n_boot)
    outcomes = Parallel(n_jobs=n_jobs)(
        delayed(fit_replicate)(estimator, X, sample_weight, kind, seed) for seed in seeds
    )
    return collect_replicates(
        estimator.params_, outcomes, kind, ci_prob=ci_prob, feature_names=feature_names
    )


def collect_replicates(
    estimate: MixtureParams,
    outcomes: list[tuple[MixtureParams | None, bool]],
    kind: str,
    *,
    ci_prob: float = 0.89,
    feature_names: list[str] | None = None,
) -> BootstrapResult:
    """Stack replicate fits, relabelled to ``estimate`` (KL-Hungarian), into a result."""
    n_boot = len(outcomes)
    failed = np.array([params is None for params, _ in outcomes], dtype=bool)
    weights = np.full((n_boot, *np.shape(estimate.weights)), np.nan)
    means = np.full((n_boot, *np.shape(estimate.means)), np.nan)
    covariances = np.full((n_boot, *np.shape(estimate.covariances)), np.nan)
    fits = [params for params, _ in outcomes if params is not None]
    if fits:
        ok = ~failed
        weights[ok] = np.stack([p.weights for p in fits])
        means[ok] = np.stack([p.means for p in fits])
        covariances[ok] = np.stack([p.covariances for p in fits])
    if fits and estimate.n_components > 1:
        full = np.stack([p.full_covariances() for p in fits])
        cost = gaussian_kl_cost(means[ok], full, estimate.means, estimate.full_covariances())
        perms = best_permutations(cost)
        weights[ok] = apply_permutations(weights[ok], perms)
        means[ok] = apply_permutations(means[ok], perms)
        structure = estimate.structure
        covariances[ok] = np.stack(
            [structure.permute(c, perm) for c, perm in zip(covariances[ok], perms, strict=True)]
        )
    return BootstrapResult(
        kind,
        estimate,
        weights,
        means,
        covariances,
        np.array([converged for _, converged in outcomes], dtype=bool),
        failed,
        ci_prob,
        list(feature_names or []),
    )


__all__ = [
    "KINDS",
    "BootstrapResult",
    "bootstrap_mixture",
    "collect_replicates",
    "fit_replicate",
    "replicate_seeds",
]
