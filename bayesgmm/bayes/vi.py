"""Variational inference that says whether it worked: converging ADVI and the PSIS k-hat check.

Pure orchestration functions over a PyMC model (from :func:`bayesgmm.bayes.model.build_model`):

* :func:`fit_vi` fits mean-field (``"advi"``) or full-rank (``"fullrank_advi"``) ADVI from a
  start point (the MAP) with a small initial spread for *both* families, Adam with a decaying
  step size, and a stopping rule on the ELBO, so ``max_iter`` is only a ceiling.
* the PSIS checks and correction (:func:`psis_khat`, :func:`psis_khat_subsample`,
  :func:`psis_posterior`) live in :mod:`bayesgmm.bayes.psis` and are re-exported here.

Why the defaults (measured on Old Faithful, K=2, full covariances, against NUTS 4 x 1000).
PyMC 6.4's ``FullRankADVI`` starts its Cholesky factor at the identity *after* the softplus of
its diagonal, i.e. every unconstrained standard deviation at ``log(1 + e) = 1.31``, and its
default optimiser (``adagrad_window``, step 1e-3) does not shrink that in 10000 iterations: the
result was posterior sds 18-28 times too wide and means off by 0.3 data-sd. Starting the
diagonal at ``softplus^-1(0.1)`` (as mean-field's ``start_sigma=0.1``), Adam at step 0.01
decaying like ``1 / (1 + t / window)``, and stopping when a windowed mean of the ELBO
stops moving fixes both (numbers in ``reports/vi.md``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Literal

import numpy as np
import pymc as pm
import pytensor

from bayesgmm.bayes.graph import MODE, reproducible_compilation
from bayesgmm.bayes.psis import (
    KHAT_GOOD,
    KHAT_USABLE,
    PROPOSALS,
    UNRELIABLE_MESSAGE,
    PSISResult,
    is_minibatch,
    psis_khat,
    psis_khat_subsample,
    psis_posterior,
)

VIMethod = Literal["advi", "fullrank_advi"]
VI_METHODS: tuple[str, ...] = ("advi", "fullrank_advi")

#: Initial standard deviation of every unconstrained coordinate, for both families.
START_SIGMA = 0.1
#: Stop when the mean ELBO of the last ``window`` iterations differs from the previous
#: window's by less than ``tol`` relative to its size.
TOL = 1e-4
WINDOW = 500
#: Initial Adam step; step ``t`` is ``LEARNING_RATE * (1 + t / window) ** -LR_DECAY_POWER``.
#: Measured on faithful K=2: power 1 gives sds within 11% of NUTS and k-hat 0.35-0.45 in
#: 2000-2500 iterations; power 0.5 leaves Adam's stationary jitter in q (sds up to 1.5x,
#: minibatch k-hat 0.87); a constant step of 0.003 stops early on galaxies (k-hat 0.89).
LEARNING_RATE = 0.01
LR_DECAY_POWER = 1.0
MAX_ITER = 30_000


@dataclasses.dataclass(frozen=True)
class VIResult:
    """A fitted variational approximation and how the fit went.

    Attributes
    ----------
    approximation : pymc.variational.Approximation
        Draw from it with ``approximation.sample(draws, random_seed=...)``.
    hist : ndarray of shape (n_iter,)
        The loss (negative ELBO, one Monte Carlo estimate) at every iteration.
    n_iter : int
        Iterations run (at most ``max_iter``).
    converged : bool
        Whether the stopping rule fired before ``max_iter``.
    method : {"advi", "fullrank_advi"}
    window : int
        Window of the stopping rule (also the smoothing window of the ELBO plot).
    seconds : float
        Wall time of compilation and optimisation.
    """

    approximation: pm.variational.Approximation
    hist: np.ndarray = dataclasses.field(repr=False)
    n_iter: int
    converged: bool
    method: str
    window: int
    seconds: float

    @property
    def elbo(self) -> np.ndarray:
        """ELBO trace, shape (n_iter,)."""
        return -self.hist

    @property
    def final_elbo(self) -> float:
        """Mean ELBO over the last window."""
        return float(self.elbo[-self.window :].mean())


@dataclasses.dataclass(frozen=True)
class VIDiagnostics:
    """What ``diagnose()`` reports for a variational fit: convergence and two PSIS k-hats.

    Attributes
    ----------
    method : {"advi", "fullrank_advi"}
    converged : bool
        The ELBO stopping rule fired before the iteration limit.
    n_iter : int
    khat : float
        Pareto k-hat of q itself against the exact posterior (Yao et al. 2018): how good the
        Gaussian approximation is.
    verdict : {"good", "ok", "unreliable"}
        Of ``khat``.
    message : str
    correction_khat : float or None
        k-hat of the defensive proposal that the PSIS correction uses (``None``: no
        correction was computed, e.g. minibatch fits).
    correction_verdict : {"good", "ok", "unreliable"} or None
    posterior : {"q", "psis"}
        What the fit's posterior draws are: draws of q, or q's defensive proposal
        resampled by the smoothed importance weights (when ``correction_khat < 0.7``).
    correction_ess : float or None
        Importance-sampling effective sample size of the correction.
    """

    method: str
    converged: bool
    n_iter: int
    khat: float
    verdict: str
    message: str
    correction_khat: float | None = None
    correction_verdict: str | None = None
    posterior: str = "q"
    correction_ess: float | None = None

    @property
    def ok(self) -> bool:
        """Converged, and the posterior draws are checked: k-hat of what they come from < 0.7.

        For ``posterior="psis"`` that is the correction's k-hat, otherwise q's.
        """
        verdict = self.correction_verdict if self.posterior == "psis" else self.verdict
        return self.converged and verdict != "unreliable"

    @classmethod
    def from_results(
        cls, result: VIResult, psis: PSISResult, correction: PSISResult | None = None
    ) -> VIDiagnostics:
        """Combine a fit's convergence with its PSIS checks (q's and the correction's).

        The posterior is ``"psis"`` when ``correction`` is given and reliable.
        """
        use = correction is not None and correction.reliable
        return cls(
            result.method,
            bool(result.converged),
            int(result.n_iter),
            float(psis.khat),
            psis.verdict,
            psis.message,
            None if correction is None else float(correction.khat),
            None if correction is None else correction.verdict,
            "psis" if use else "q",
            None if correction is None else float(correction.ess),
        )

    def __str__(self) -> str:
        status = "OK" if self.ok else "PROBLEMS FOUND"
        stop = "converged" if self.converged else "stopped at the iteration limit"
        lines = [
            f"Variational diagnostics ({self.method}): {status}",
            f"  ELBO           {stop} after {self.n_iter} iterations",
            f"  PSIS k-hat     {self.khat:.2f} of q itself  (< {KHAT_GOOD} good, "
            f"< {KHAT_USABLE} usable): {self.verdict}",
        ]
        if self.correction_khat is not None:
            lines.append(
                f"  correction     k-hat {self.correction_khat:.2f} of the adapted defensive "
                f"proposal, ESS {self.correction_ess:.0f}: "
                f"{self.correction_verdict}"
            )
        if self.posterior == "psis":
            lines.append("  posterior      PSIS-resampled draws (importance-corrected q)")
            if self.verdict == "unreliable":
                lines.append(
                    "  note           q alone is unreliable here; only the corrected draws are"
                )
        else:
            lines.append(f"  posterior      draws of q: {self.message}")
        if not self.converged:
            lines.append("  remedy         increase vi_iterations, or use method='nuts'")
        elif not self.ok:
            lines.append(f"  remedy         {UNRELIABLE_MESSAGE}")
        return "\n".join(lines)


class _ELBOStopper:
    """PyMC callback: decay the step size and stop when the windowed mean ELBO is flat.

    Every ``window`` iterations from ``2 * window`` on, compare the mean loss of the last
    window, ``m1``, to the previous window's, ``m0``; stop when ``|m1 - m0| / |m0| < tol``.
    """

    def __init__(self, learning_rate, initial_rate: float, window: int, tol: float) -> None:
        self.learning_rate = learning_rate
        self.initial_rate = initial_rate
        self.window = window
        self.tol = tol
        self.stopped_at: int | None = None
        self.losses: np.ndarray | None = None

    def __call__(self, approx, losses, i: int) -> None:
        decay = (1.0 + i / self.window) ** -LR_DECAY_POWER
        self.learning_rate.set_value(self.initial_rate * decay)
        w = self.window
        if i % w or i < 2 * w:
            return
        m0, m1 = np.mean(losses[-2 * w : -w]), np.mean(losses[-w:])
        if abs(m1 - m0) < self.tol * abs(m0):
            self.stopped_at = i
            self.losses = np.array(losses, dtype=np.float64)
            raise StopIteration(f"ELBO converged at iteration {i}")


def _check_method(method: str) -> None:
    if method not in VI_METHODS:
        raise ValueError(f"method must be one of {VI_METHODS}, got {method!r}")


@reproducible_compilation()
def fit_vi(
    model: pm.Model,
    start: dict[str, np.ndarray],
    method: VIMethod,
    *,
    max_iter: int = MAX_ITER,
    random_seed: int | None = None,
    progressbar: bool = False,
    tol: float = TOL,
    window: int = WINDOW,
    learning_rate: float = LEARNING_RATE,
    start_sigma: float = START_SIGMA,
) -> VIResult:
    """Fit ADVI from ``start`` until the ELBO stops improving.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayesgmm.bayes.model.build_model`, possibly with ``batch_size`` (then the
        objective is not rescaled to the minibatch: PyMC 6.4 divides it by a wrong constant,
        see :func:`bayesgmm.bayes.sampling.run_vi`).
    start : dict of str to ndarray
        Constrained values of the free variables (:func:`bayesgmm.bayes.model.initial_point`),
        the mean of ``q`` at the start.
    method : {"advi", "fullrank_advi"}
    max_iter : int
        Most iterations; the stopping rule usually ends earlier.
    random_seed : int, optional
        Seed of the Monte Carlo gradient draws (and minibatches); the same seed gives the
        same approximation.
    progressbar : bool
    tol : float
        Relative change of the windowed mean ELBO below which the fit stops.
    window : int
        Window length of the stopping rule and time scale of the step-size decay.
    learning_rate : float
        Initial Adam step; step ``t`` uses ``learning_rate / (1 + t / window)``.
    start_sigma : float
        Initial standard deviation of ``q`` in every unconstrained coordinate (mean-field
        ``rho`` / the diagonal of the full-rank Cholesky factor; off-diagonals start at 0).

    Returns
    -------
    VIResult
    """
    _check_method(method)
    for name, value in (("max_iter", max_iter), ("window", window)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    positives = (("tol", tol), ("learning_rate", learning_rate), ("start_sigma", start_sigma))
    for name, value in positives:
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    t0 = time.perf_counter()
    kwargs = {"model": model, "random_seed": random_seed, "start": start}
    if method == "advi":
        kwargs["start_sigma"] = {v.name: start_sigma for v in model.value_vars}
        inference = pm.ADVI(**kwargs)
    else:
        inference = pm.FullRankADVI(**kwargs)
        _set_fullrank_scale(inference.approx.groups[0], start_sigma)
    if is_minibatch(model):
        # PyMC 6.4 divides a minibatch objective by total_size / (every entry of the
        # minibatch's shape) instead of total_size / batch_size (Approximation.
        # symbolic_normalizing_constant wraps the shape in a tuple); the unscaled ELBO has the
        # same optimum and usable gradients
        inference.approx.scale_cost_to_minibatch = False
    rate = pytensor.shared(np.float64(learning_rate), name="learning_rate")
    stopper = _ELBOStopper(rate, learning_rate, window, tol)
    approx = inference.fit(
        int(max_iter),
        progressbar=progressbar,
        callbacks=[stopper],
        obj_optimizer=pm.adam(learning_rate=rate),
        # the package's mode (graph.MODE): PyMC's default leaves Blockwise(AllocDiag) nodes
        # in the full-rank gradient, run by numba in object mode, and the step function
        # was compiled afresh at every fit (a 1-D K=2 fit: 62 s of 111 s; the same draws
        # in 25 s with the unbatch_alloc_diag rewrite, reports/calibration.md)
        compile_kwargs={"mode": MODE},
    )
    # PyMC drops the last loss when a callback stops the fit; the stopper kept them all
    hist = stopper.losses if stopper.losses is not None else np.asarray(inference.hist, float)
    n_iter = len(hist)
    return VIResult(
        approximation=approx,
        hist=hist,
        n_iter=int(n_iter),
        converged=stopper.stopped_at is not None,
        method=method,
        window=int(window),
        seconds=time.perf_counter() - t0,
    )


def _set_fullrank_scale(group, sigma: float) -> None:
    """Start a ``FullRankGroup`` at ``L = sigma * I``.

    Its ``L_tril`` holds the lower triangle row by row with the diagonal entries before a
    softplus (``rho2sigma``); PyMC 6.4 initialises it to the identity, i.e. sds of 1.31.
    """
    n = group.ddim
    rows, cols = np.tril_indices(n)
    values = np.zeros(len(rows))
    values[rows == cols] = np.log(np.expm1(sigma))
    group.params_dict["L_tril"].set_value(values.astype(pytensor.config.floatX))


__all__ = [
    "KHAT_GOOD",
    "KHAT_USABLE",
    "PROPOSALS",
    "UNRELIABLE_MESSAGE",
    "VI_METHODS",
    "PSISResult",
    "VIMethod",
    "VIResult",
    "fit_vi",
    "is_minibatch",
    "psis_khat",
    "psis_khat_subsample",
    "psis_posterior",
]
