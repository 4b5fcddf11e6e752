"""The NUTS target of the default full-covariance model as one hand-written Numba kernel.

:class:`bayesgmm.bayes.compiled.CompiledMixture` compiles the log posterior density of a
:func:`bayesgmm.bayes.model.build_model` model and its gradient, in the sampler's unconstrained
space, as a PyTensor graph (numba backend). For the default structure of
``BayesianGaussianMixture(K, covariance_type="full")`` on complete data,
:func:`full_niw_logp_dlogp` computes the same function in one
``numba.njit`` pass; the graph around the fused likelihood (priors, transforms,
Jacobians) costs more than the likelihood itself on small data sets.

The unconstrained vector is ``(y_w, y_Sigma, mu)``, the free variables in the model's
order:

``y_w`` (K - 1,)
    PyMC's simplex transform of ``weights``: ``z = (y_w, -sum y_w)``, ``w = softmax(z)``,
    log-Jacobian ``log K + sum_k log w_k`` (absent when K == 1: ``weights`` is the
    constant 1).
``y_Sigma`` (K, d(d+1)/2)
    :class:`bayesgmm.bayes.model.SPDCholeskyTransform`: the lower triangle of ``L_k`` row by
    row with its diagonal exponentiated, ``Sigma_k = L_k L_k^T``, log-Jacobian
    ``d log 2 + sum_i (d - i + 1) y_ii`` (``i`` from 0).
``mu`` (K, d)
    The working-scale means ``means_z``; in one dimension PyMC's ordered transform of them
    (:func:`ordered_means`: ``mu_0 = y_0``, ``mu_k = mu_{k-1} + exp(y_k)``, log-Jacobian
    ``sum_{k >= 1} y_k``), which the tied, diag and spherical kernels inline too.

and the log density is the sum of

- the Dirichlet(``a``) prior: ``sum_k (a_k - 1) log w_k + log Gamma(sum a) - sum log Gamma(a_k)``;
- per component, the Inverse-Wishart(``nu``, ``Psi``) prior of ``Sigma_k`` w.r.t. the
  matrix: ``nu/2 log|Psi| - nu d/2 log 2 - log Gamma_d(nu/2) - (nu + d + 1)/2 log|Sigma_k|
  - tr(Psi Sigma_k^{-1})/2``;
- per component, ``mu_k ~ N(m0, Sigma_k / kappa0)``;
- the two Jacobians above;
- the likelihood ``sum_n log sum_k w_k N(x_z,n | mu_k, Sigma_k) - N sum_i log scale_i``
  (:mod:`bayesgmm.bayes.likelihood`'s row helpers), every constant included, so the value
  equals the PyTensor graph's (not just up to a constant).

The gradient is analytic. With ``A_k = L_k^{-1}``, ``W_k = A_k chol(Psi)``, the means
prior's residual ``z_k = A_k (mu_k - m0)``, the responsibilities ``r_nk``, the whitened
rows ``z_nk = A_k (x_z,n - mu_k)`` and their sums ``N_k = sum_n r_nk``, ``s_k = sum_n r_nk
z_nk``, ``S_k = sum_n r_nk z_nk z_nk^T`` (one pass over the rows, no triangular solve per
row), the gradient with respect to ``L_k`` (lower triangle) is ``tril(A_k^T M_k) - N_k
diag(1 / L_k,ii)`` with ``M_k = S_k + W_k W_k^T + kappa0 z_k z_k^T``, mapped to ``y`` by
``dL_ii / dy_ii = L_ii`` (plus the log-determinant terms' constants); with respect to
``mu_k`` it is ``A_k^T (s_k - kappa0 z_k)``; with respect to ``log w_k`` it is ``G_k = a_k
+ N_k``, so ``d/dy_j = G_j - G_{K-1} - (sum_k G_k)(w_j - w_{K-1})``. The largest term of
each row's log-sum-exp is ``exp(0)`` (one exponential fewer per row) and the log of the
rows' sums (each in ``[1, K]``) is taken of their product, once per few hundred rows.

:class:`PosteriorKernel` is the callable that :class:`~bayesgmm.bayes.compiled.CompiledMixture`
uses in place of its PyTensor function where :func:`eligible` says so (and
:data:`ENABLED`, which switches every structure's kernel of :mod:`bayesgmm.bayes.kernels`,
whose ``full`` entry this module is): it reads the model's ``pm.Data`` containers at every
call (the values :meth:`~bayesgmm.bayes.compiled.CompiledMixture.set_data` swaps) and keeps
the data-dependent constants it derives from them until one of them is replaced. Timings:
:mod:`bayesgmm.bayes.compiled` ("Graph"), measured by ``benchmarks/bench_gradient.py``.
"""

from __future__ import annotations

import operator

import numba
import numpy as np
from scipy.special import gammaln, multigammaln

from bayesgmm._numba import gaussian
from bayesgmm._numba.cache import depend_on
from bayesgmm._numba.gaussian import whiten
from bayesgmm.bayes import kernel_terms, likelihood
from bayesgmm.bayes.kernel_terms import _INLINE, _JIT, add_row_total, row_run, simplex_weights
from bayesgmm.bayes.likelihood import _component_constants, _row_log_joint, _scale_terms

#: Use the kernel for the structures it covers (:func:`eligible`); ``False``: every
#: structure compiled afterwards keeps its PyTensor function.
ENABLED = True

#: The model's ``pm.Data`` containers the kernel reads, in :meth:`PosteriorKernel.prepare`'s order.
DATA_NAMES = (
    "X_data",
    "location",
    "scale",
    "concentration",
    "mean_prior",
    "mean_precision",
    "degrees_of_freedom",
    "covariance_prior",
)


@numba.njit(**_INLINE)
def ordered_means(x, off_mean, n_components):
    """The means (K, 1) of one-dimensional models from ``y = x[off_mean:]``, and the log-Jacobian.

    :class:`bayesgmm.bayes.ordering.OrderedComponents`: ``mu_0 = y_0``, ``mu_k = mu_{k-1} +
    exp(y_k)``; log-Jacobian ``sum_{k >= 1} y_k``.
    """
    means = np.empty((n_components, 1))
    acc = x[off_mean]
    means[0, 0] = acc
    jacobian = 0.0
    for k in range(1, n_components):
        acc += np.exp(x[off_mean + k])
        means[k, 0] = acc
        jacobian += x[off_mean + k]
    return means, jacobian


@numba.njit(**_INLINE)
def ordered_gradient(x, off_mean, n_components, grad):
    """Turn ``grad[off_mean:]`` from ``d/dmu`` (K,) into ``d/dy`` (:func:`ordered_means`).

    ``d/dy_j = exp(y_j) sum_{k >= j} d/dmu_k + 1`` for ``j >= 1``, ``d/dy_0 = sum_k d/dmu_k``.
    """
    total = 0.0
    for back in range(n_components):
        k = n_components - 1 - back
        total += grad[off_mean + k]
        if k > 0:
            grad[off_mean + k] = total * np.exp(x[off_mean + k]) + 1.0
        else:
            grad[off_mean] = total


@numba.njit(**_JIT)
def full_niw_logp_dlogp(
    x, value, location, scale, concentration, mean_prior, kappa, dof, psi_chol, constant
):
    """Log posterior density and its gradient at the unconstrained vector ``x``.

    Parameters
    ----------
    x : ndarray of shape (n_dim,)
        ``(y_w (K - 1), y_Sigma (K, d(d+1)/2), mu (K, d))`` flattened (module docstring).
    value : ndarray of shape (n_samples, n_features)
        Observations on the user's scale.
    location, scale : ndarray of shape (n_features,)
        The standardisation ``x_z = (x - location) / scale``.
    concentration : ndarray of shape (n_components,)
        Dirichlet concentrations ``a``.
    mean_prior : ndarray of shape (n_features,)
        ``m0``.
    kappa, dof : float
        ``kappa0`` (mean precision) and the Inverse-Wishart degrees of freedom ``nu``.
    psi_chol : ndarray of shape (n_features, n_features)
        Lower Cholesky factor of the Inverse-Wishart scale ``Psi``.
    constant : float
        The terms that depend on the prior only (:func:`prior_constant`).

    Returns
    -------
    logp : float
    grad : ndarray of shape (n_dim,)
    """
    n_rows, d = value.shape
    n_components = concentration.shape[0]
    n_tri = d * (d + 1) // 2
    off_cov = n_components - 1
    off_mean = off_cov + n_components * n_tri
    grad = np.zeros(x.shape[0])

    # weights: PyMC's simplex transform (backward as PyMC writes it)
    weights = np.empty(n_components)
    log_w = np.empty(n_components)
    simplex_weights(x, n_components, weights, log_w)

    # Cholesky factors of the covariances
    chol = np.zeros((n_components, d, d))
    logp = constant
    for k in range(n_components):
        t = off_cov + k * n_tri
        for i in range(d):
            for j in range(i):
                chol[k, i, j] = x[t]
                t += 1
            chol[k, i, i] = np.exp(x[t])
            # log|L| terms: Inverse-Wishart -(nu + d + 1), Jacobian d - i + 1, means prior -1
            logp += (d - i + 1.0 - (dof + d + 1.0) - 1.0) * x[t]
            t += 1

    # likelihood: one pass over the rows (bayesgmm.bayes.likelihood's row helpers)
    means = x[off_mean:].reshape((n_components, d))
    if d == 1:  # one dimension: the means are ordered
        means, jacobian = ordered_means(x, off_mean, n_components)
        logp += jacobian
    const, inv_diag = _component_constants(weights, chol, d)
    log_scale, inv_scale = _scale_terms(scale)
    x_z = np.empty(d)
    z = np.empty((n_components, d))
    log_joint = np.empty(n_components)
    counts = np.zeros(n_components)  # N_k = sum_n r_nk
    sum_z = np.zeros((n_components, d))  # sum_n r_nk z_nk
    sum_zz = np.zeros((n_components, d, d))  # sum_n r_nk z_nk z_nk^T (lower triangle)
    loglik = 0.0
    # the rows' sums of exp(log_joint - top) lie in [1, K]: their product is kept and its
    # log taken every `run` rows (before it could overflow), one log per run, not per row
    run = row_run(n_rows, n_components)
    product = 1.0
    left = run
    for n in range(n_rows):
        top = _row_log_joint(
            value, n, means, chol, location, inv_scale, const, inv_diag, x_z, z, log_joint
        )
        # exp(log_joint - top) in place, one exponential fewer per row
        total = gaussian.exp_shifted(log_joint, top)
        loglik += top
        loglik, product, left = add_row_total(loglik, product, left, total, run, n == n_rows - 1)
        inv_total = 1.0 / total
        for k in range(n_components):
            r = log_joint[k] * inv_total
            counts[k] += r
            for i in range(d):
                rz = r * z[k, i]
                sum_z[k, i] += rz
                for j in range(i + 1):
                    sum_zz[k, i, j] += rz * z[k, j]
    logp += loglik - n_rows * log_scale

    # priors of each component's covariance and mean
    w_psi = np.empty((d, d))
    m_psi = np.empty((d, d))
    v_psi = np.empty((d, d))
    zm = np.empty(d)
    um = np.empty(d)
    for k in range(n_components):
        # W = L^{-1} chol(Psi) (lower triangular), column by column
        for c in range(d):
            for i in range(d):
                if i < c:
                    w_psi[i, c] = 0.0
                    continue
                s = psi_chol[i, c]
                for j in range(c, i):
                    s -= chol[k, i, j] * w_psi[j, c]
                w_psi[i, c] = s * inv_diag[k, i]
        trace = 0.0
        for i in range(d):
            for c in range(i + 1):
                trace += w_psi[i, c] * w_psi[i, c]
        # means prior residual z = L^{-1}(mu - m0)
        quad = whiten(means[k], mean_prior, chol[k], inv_diag[k], zm)
        logp += -0.5 * trace - 0.5 * kappa * quad
        # d/dL (lower triangle) of the likelihood, -tr(W W^T)/2 and -kappa |z|^2/2 is
        # tril(L^{-T} M) - diag(N_k / L_ii), M = sum_n r z z^T + W W^T + kappa z z^T; and
        # d/dmu is L^{-T} (sum_n r z - kappa z): both by back substitution
        for i in range(d):
            for c in range(d):
                s = 0.0
                for m in range(min(i, c) + 1):
                    s += w_psi[i, m] * w_psi[c, m]
                m_psi[i, c] = s + sum_zz[k, max(i, c), min(i, c)] + kappa * zm[i] * zm[c]
        for c in range(d):
            for back in range(d):
                i = d - 1 - back
                s = m_psi[i, c]
                for j in range(i + 1, d):
                    s -= chol[k, j, i] * v_psi[j, c]
                v_psi[i, c] = s * inv_diag[k, i]
        for back in range(d):
            i = d - 1 - back
            s = sum_z[k, i] - kappa * zm[i]
            for j in range(i + 1, d):
                s -= chol[k, j, i] * um[j]
            um[i] = s * inv_diag[k, i]
        # gradient with respect to y_Sigma (dL_ii / dy_ii = L_ii) and the means
        t = off_cov + k * n_tri
        for i in range(d):
            for j in range(i + 1):
                if j < i:
                    grad[t] = v_psi[i, j]
                else:
                    g = v_psi[i, i] - counts[k] * inv_diag[k, i]
                    grad[t] = g * chol[k, i, i] + (d - i + 1.0 - (dof + d + 1.0) - 1.0)
                t += 1
            grad[off_mean + k * d + i] = um[i]

    # weights: G_k = d logp / d log w_k = a_k + N_k, through the softmax
    if n_components > 1:
        total_g = 0.0
        for k in range(n_components):
            logp += concentration[k] * log_w[k]
            total_g += concentration[k] + counts[k]
        last = n_components - 1
        g_last = concentration[last] + counts[last]
        for j in range(n_components - 1):
            grad[j] = concentration[j] + counts[j] - g_last - total_g * (weights[j] - weights[last])
    if d == 1:
        ordered_gradient(x, off_mean, n_components, grad)
    return logp, grad


def prior_constant(
    concentration: np.ndarray, kappa: float, dof: float, psi_chol: np.ndarray
) -> float:
    """The terms of :func:`full_niw_logp_dlogp`'s density that depend on the prior only.

    ``log Gamma(sum a) - sum log Gamma(a_k) + log K`` (Dirichlet and simplex Jacobian,
    when K > 1) plus, per component, the Inverse-Wishart normalisation ``nu/2 log|Psi| -
    nu d/2 log 2 - log Gamma_d(nu/2)``, the Cholesky Jacobian's ``d log 2`` and the means
    prior's ``-d/2 log 2 pi + d/2 log kappa0``.

    Parameters
    ----------
    concentration : ndarray of shape (n_components,)
    kappa, dof : float
    psi_chol : ndarray of shape (n_features, n_features)

    Returns
    -------
    float
    """
    n_components, d = concentration.shape[0], psi_chol.shape[0]
    constant = 0.0
    if n_components > 1:
        constant += gammaln(concentration.sum()) - gammaln(concentration).sum()
        constant += np.log(n_components)
    half_dof = 0.5 * dof
    logdet_psi = 2.0 * np.log(np.diagonal(psi_chol)).sum()
    per_component = (
        half_dof * logdet_psi
        - half_dof * d * np.log(2.0)
        - multigammaln(half_dof, d)
        + d * np.log(2.0)
        - 0.5 * d * np.log(2.0 * np.pi)
        + 0.5 * d * np.log(kappa)
    )
    return float(constant + n_components * per_component)


def eligible(key, model, X: np.ndarray) -> bool:
    """Whether :func:`full_niw_logp_dlogp` computes the NUTS target of ``model``.

    Parameters
    ----------
    key : StructureKey
        (:class:`bayesgmm.bayes.compiled.StructureKey`) Full covariances, the
        Normal-Inverse-Wishart prior family, no ordered projection (in one dimension the
        means carry :class:`~bayesgmm.bayes.ordering.OrderedComponents`, which the kernel
        applies: :func:`ordered_means`).
    model : pymc.Model
        Of :func:`bayesgmm.bayes.model.build_model`: a proper prior, free variables
        ``weights`` (when K > 1, simplex transform), ``covariances_z``
        (:class:`~bayesgmm.bayes.model.SPDCholeskyTransform`), ``means_z`` in that order and
        nothing else (no noise component), no sample weights.
    X : ndarray of shape (n_samples, n_features)
        The data ``model`` was built from: complete (the density of rows with missing
        entries is another one).

    Returns
    -------
    bool
        Also ``False`` whenever :data:`ENABLED` is.
    """
    from bayesgmm.bayes.model import OBSERVED, OrderedComponents, SPDCholeskyTransform
    from bayesgmm.core.missing import has_missing

    kind = (key.covariance_type, key.covariance_prior_family, key.ordered_projection)
    if not ENABLED or kind != ("full", "niw", False) or has_missing(X):
        return False
    names = ["weights"] * (key.n_components > 1) + ["covariances_z", "means_z"]
    if [rv.name for rv in model.free_RVs] != names:
        return False
    if [rv.name for rv in model.observed_RVs] != [OBSERVED] or "sample_weight" in model.named_vars:
        return False
    if any(name not in model.named_vars for name in DATA_NAMES):
        return False
    transforms = [model.rvs_to_transforms.get(rv) for rv in model.free_RVs]
    return (
        isinstance(transforms[-2], SPDCholeskyTransform)
        and (
            isinstance(transforms[-1], OrderedComponents)
            if key.n_features == 1
            else transforms[-1] is None
        )
        and (key.n_components == 1 or type(transforms[0]).__name__ == "SimplexTransform")
    )


class PosteriorKernel:
    """``x -> (logp, grad)`` of a model of :func:`bayesgmm.bayes.model.build_model` (full, NIW).

    Called like the PyTensor function it replaces (:func:`bayesgmm.bayes.graph.reentrant`)
    and from many threads at once: it reads the current values of the model's ``pm.Data``
    containers (:data:`DATA_NAMES`) at every call, and derives the kernel's arguments
    from them (contiguous data, ``chol(Psi)``, the prior's constant; all but the data packed
    in one vector, which numba types faster than nine arguments) only when one of them was
    replaced (:meth:`prepare`); the result is kept as one tuple, replaced whole, so a thread
    never sees half of an update.

    Parameters
    ----------
    model : pymc.Model
        Checked by :func:`eligible`.
    """

    def __init__(self, model) -> None:
        self._cells = tuple(model[name].container.storage for name in DATA_NAMES)
        self._prepared: tuple[tuple, np.ndarray, np.ndarray] | None = None

    @staticmethod
    def prepare(values: tuple) -> tuple:
        """:func:`full_niw_logp_dlogp`'s arguments after ``x`` from the containers' ``values``."""
        data, location, scale, conc, mean_prior, kappa, dof, psi = values
        psi_chol = np.linalg.cholesky(psi)
        kappa, dof = float(kappa), float(dof)
        return (
            np.ascontiguousarray(data, dtype=np.float64),
            np.ascontiguousarray(location, dtype=np.float64),
            np.ascontiguousarray(scale, dtype=np.float64),
            np.ascontiguousarray(conc, dtype=np.float64),
            np.ascontiguousarray(mean_prior, dtype=np.float64),
            kappa,
            dof,
            np.ascontiguousarray(psi_chol),
            prior_constant(np.asarray(conc, dtype=np.float64), kappa, dof, psi_chol),
        )

    def arguments(self) -> tuple:
        """:func:`full_niw_logp_dlogp`'s arguments after ``x`` for the current values."""
        return self.prepare(tuple(map(_FIRST, self._cells)))

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Log posterior density and gradient at the unconstrained ``x`` (n_dim,)."""
        prepared = self._prepared
        if prepared is None or not all(map(operator.is_, prepared[0], map(_FIRST, self._cells))):
            values = tuple(map(_FIRST, self._cells))
            args = self.prepare(values)
            # everything but the data in one vector: fewer arguments for numba to type
            packed = np.concatenate([np.ravel(a) for a in args[1:]])
            prepared = self._prepared = (values, args[0], packed)
        return _packed_logp_dlogp(x, prepared[1], prepared[2])


_FIRST = operator.itemgetter(0)


@numba.njit(**_JIT)
def _packed_logp_dlogp(x, value, packed):
    """:func:`full_niw_logp_dlogp` with the arguments after ``value`` in one vector.

    ``packed``: location, scale (d each), concentration (K), mean prior (d), kappa0, nu,
    chol(Psi) (d * d, row-major), constant, in :meth:`PosteriorKernel.prepare`'s order.
    """
    d = value.shape[1]
    n_components = (x.shape[0] + 1) // (1 + d * (d + 1) // 2 + d)
    at = 3 * d + n_components
    return full_niw_logp_dlogp(
        x,
        value,
        packed[:d],
        packed[d : 2 * d],
        packed[2 * d : 2 * d + n_components],
        packed[2 * d + n_components : at],
        packed[at],
        packed[at + 1],
        packed[at + 2 : at + 2 + d * d].reshape((d, d)),
        packed[at + 2 + d * d],
    )


# the kernels inline likelihood.py's row helpers and gaussian.py's: recompile them when
# either file changes
depend_on(globals(), likelihood, gaussian, kernel_terms)

__all__ = [
    "DATA_NAMES",
    "ENABLED",
    "PosteriorKernel",
    "eligible",
    "full_niw_logp_dlogp",
    "prior_constant",
]
