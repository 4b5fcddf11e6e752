"""``GaussianMixture``: the EM / MAP estimator with scikit-learn conventions.

The estimator only orchestrates: validation, the prior, and the pure functions of
:mod:`bayesgmm.em`. With ``prior=None`` it is maximum likelihood and, from the same
starting parameters and with ``reg_covar=0``, reproduces
:class:`sklearn.mixture.GaussianMixture` (our ``reg_covar`` is relative to each feature's
variance, scikit-learn's absolute); with ``prior="default"`` (or a
:class:`~bayesgmm.priors.MixturePrior`) every M-step is the conjugate MAP update and the
fit can no longer collapse onto a singular covariance.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesgmm._validation import check_data, check_positive_int, check_random_state
from bayesgmm.covariance import get_structure
from bayesgmm.em.chunked import (
    as_dask_array,
    data_moments,
    fit_em_chunked,
    is_chunked_store,
    is_dask_array,
)
from bayesgmm.em.fit import (
    EMResult,
    fit_em,
    options_to_working,
    result_to_user,
    warn_if_not_converged,
)
from bayesgmm.em.steps import e_step
from bayesgmm.params import MixtureParams
from bayesgmm.posterior import sample_mixture
from bayesgmm.priors import MixturePrior
from bayesgmm.spec import EMOptions, MixtureSpec, Standardization


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM (maximum likelihood) or MAP-EM.

    Parameters
    ----------
    n_components : int, default=1
        Number of components K.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Same meaning as in scikit-learn.
    prior : None, "default" or MixturePrior, default=None
        ``None``: maximum likelihood. ``"default"``: MAP under
        :meth:`MixturePrior.default` (data-scaled, Fraley & Raftery 2007).
    tol : float, default=1e-8
        Convergence threshold on the per-sample objective, for the rule ``stopping``.
    reg_covar : float, default=1e-6
        Non-negative value added to the diagonals of the covariances **of the standardised
        data**: relative to each feature's variance (``reg_covar * var(x_j)`` in the data's
        units; one common variance for ``spherical``), as mclust's data-scaled priors are.
        EM runs on standardised data and maps the results back exactly, so the fit does not
        depend on the data's units. scikit-learn adds ``reg_covar`` in the data's units:
        the two agree exactly only for ``reg_covar=0``.
    max_iter : int, default=1000
    n_init : int, default=20
        Number of starts; the best objective among the non-degenerate fits is kept (a
        start that ends with a component on repeated values is replaced by another).
    init_params : {"hierarchical", "kmeans", "k-means++", "random", "random_from_data"}, \
default="hierarchical"
        ``"hierarchical"`` is mclust's start (agglomeration on scaled principal components);
        the second and later starts then take random rows and ``"k-means++"`` in turn.
    stopping : {"aitken", "absolute"}, default="aitken"
        ``"absolute"``: scikit-learn's rule (change below ``tol``; use ``tol=1e-3`` for its
        default). ``"aitken"``: stop when the Aitken-extrapolated limit of the objective is
        within ``tol``, i.e. at the maximum this start leads to.

        These defaults reach the best log-likelihood found by 50 restarts far more often
        than scikit-learn's (one k-means start, ``tol=1e-3``): see ``reports/benchmarks.md``.
    weights_init : ndarray of shape (n_components,), optional
    means_init : ndarray of shape (n_components, n_features), optional
    precisions_init : ndarray, optional
        Precisions in scikit-learn's layout for ``covariance_type``.
    random_state : int, numpy Generator or None, default=None
        Seed of the initialisation and of :meth:`sample`.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        Shape (K, d, d), (d, d), (K, d) or (K,) for full, tied, diag, spherical.
    precisions_ : ndarray
        Inverses of ``covariances_``, same layout.
    precisions_cholesky_ : ndarray
        Cholesky factors of ``precisions_``, same layout.
    params_ : MixtureParams
        The fitted parameters as one record.
    prior_ : MixturePrior or None
        The prior actually used.
    spec_ : MixtureSpec
        The model fitted: K, covariance structure, prior (:class:`bayesgmm.spec.MixtureSpec`).
    converged_ : bool
        Never true with non-finite parameters: a fit that produces them raises
        :class:`~bayesgmm.exceptions.NumericalError`.
    n_iter_ : int
    lower_bound_ : float
        Per-sample objective (log-likelihood, plus ``log p(theta) / N`` for MAP) of the best fit.
    lower_bound_trace_ : ndarray of shape (n_iter_,)
        The objective at every iteration of the best start.
    n_reseeds_ : int
        Collapsed components re-seeded during the best start (MLE only).
    degenerate_ : bool
        Whether the kept fit has a degenerate component (only when every start had one;
        a warning says so).
    optima_ : tuple of (MixtureParams, float)
        The distinct optima (beyond label permutation) that the ``n_init`` starts reached,
        best first, each with its per-sample objective; the first is the kept fit.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        prior: MixturePrior | str | None = None,
        tol: float = 1e-8,
        reg_covar: float = 1e-6,
        max_iter: int = 1000,
        n_init: int = 20,
        init_params: str = "hierarchical",
        stopping: str = "aitken",
        weights_init: np.ndarray | None = None,
        means_init: np.ndarray | None = None,
        precisions_init: np.ndarray | None = None,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.prior = prior
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.stopping = stopping
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state

    def _options(self) -> EMOptions:
        """The EM settings as one validated record (raises naming a bad setting)."""
        check_positive_int(self.n_components, "n_components")
        get_structure(self.covariance_type)
        return EMOptions(
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            n_init=self.n_init,
            init_params=self.init_params,
            stopping=self.stopping,
            weights_init=self.weights_init,
            means_init=self.means_init,
            precisions_init=self.precisions_init,
        )

    def fit(self, X, y=None) -> GaussianMixture:
        """Estimate the parameters by EM; see :meth:`fit_predict`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self

        Notes
        -----
        A Dask array (or a Zarr / chunked HDF5 array, read as one) is fitted out of core by
        :func:`bayesgmm.em.chunked.fit_em_chunked`: one pass over its blocks per iteration,
        by Dask's scheduler or the active ``dask.distributed`` client (the same code on a
        laptop or a cluster), initialised on a seeded subsample of ``20_000`` rows or from
        explicit ``*_init`` arrays; ``n_init`` is not used (one start).
        """
        if is_chunked_store(X):
            X = as_dask_array(X)
        if is_dask_array(X):
            self._fit_chunked(X)
        else:
            self.fit_predict(X, y)
        return self

    def _fit_chunked(self, X) -> None:
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        options = self._options()
        check_random_state(self.random_state)
        moments = data_moments(X)
        spec = MixtureSpec.from_data(
            X,
            self.n_components,
            self.covariance_type,
            self.prior,
            standardize=False,
            moments=moments,
        )
        # the same working scale as the in-memory path (so reg_covar means the same)
        n_samples = X.shape[0]
        std = np.sqrt(np.diag(moments[1]) * (n_samples - 1) / max(n_samples, 1))
        scaling = Standardization.from_moments(moments[0], std, spec.structure)
        working_spec = replace(spec, prior=spec.working_prior_for(scaling))
        working = (X - scaling.location) / scaling.scale  # lazy for Dask arrays
        working_options = options_to_working(options, scaling, spec)
        result = fit_em_chunked(
            working, working_spec, working_options, random_state=self.random_state
        )
        result = result_to_user(result, scaling, spec, working_spec, n_samples)
        warn_if_not_converged(result, options)
        self._store(result, spec)
        self.n_features_in_ = X.shape[1]

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, then label every sample with its most probable component.

        ``fit(X).predict(X)`` gives the same labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        options = self._options()
        data = check_data(
            X,
            n_components=self.n_components,
            check_constant=self.prior is None,
            keep_float32=True,
        )
        validate_data(self, X, dtype=[np.float64, np.float32])
        spec = MixtureSpec.from_data(
            data, self.n_components, self.covariance_type, self.prior, standardize=False
        )
        result = fit_em(data, spec, options, random_state=self.random_state)
        self._store(result, spec)
        log_resp, _ = e_step(data, self.params_)
        return log_resp.argmax(axis=1)

    def _fit_spec(self, X: np.ndarray, spec: MixtureSpec) -> GaussianMixture:
        """Fit validated data under a prepared spec (used by the Bayesian estimator's start)."""
        result = fit_em(X, spec, self._options(), random_state=self.random_state)
        self._store(result, spec)
        self.n_features_in_ = X.shape[1]
        return self

    def _store(self, result: EMResult, spec: MixtureSpec) -> None:
        self.spec_ = spec
        self.prior_ = spec.prior
        self._set_params(result.params)
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bound_trace_ = result.trace
        self.n_reseeds_ = result.n_reseeds
        self.degenerate_ = result.degenerate
        self.optima_ = result.optima or ((result.params, result.lower_bound),)

    def _set_params(self, params: MixtureParams) -> None:
        self.params_ = params
        self.weights_ = np.array(params.weights)
        self.means_ = np.array(params.means)
        self.covariances_ = np.array(params.covariances)
        self.precisions_cholesky_ = np.array(params.precisions_cholesky)
        self.precisions_ = np.array(params.precisions())

    def _validate_predict_data(self, X) -> np.ndarray:
        check_is_fitted(self)
        data = check_data(X, min_samples=1, check_constant=False)
        validate_data(self, X, dtype=np.float64, reset=False)
        return data

    def _per_sample(self, X, fn):
        """Apply ``fn(data)`` to validated data; blockwise (lazily) for Dask arrays."""
        if is_dask_array(X):
            check_is_fitted(self)
            if X.ndim != 2 or X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has shape {X.shape}, but GaussianMixture is expecting "
                    f"{self.n_features_in_} features as input"
                )
            sample = fn(np.zeros((1, self.n_features_in_)))
            rows = X.rechunk({1: -1})
            if sample.ndim == 1:
                return rows.map_blocks(
                    lambda block: fn(_finite(block)), drop_axis=1, dtype=sample.dtype
                )
            return rows.map_blocks(
                lambda block: fn(_finite(block)),
                chunks=(rows.chunks[0], (sample.shape[1],)),
                dtype=sample.dtype,
            )
        return fn(self._validate_predict_data(X))

    def score_samples(self, X) -> np.ndarray:
        """Log density ``log p(x_n)`` of every sample, shape (n_samples,).

        Always finite: a sample so far from every component that its log-density
        underflows gets :data:`bayesgmm.em.steps.LOG_DENSITY_FLOOR` (``-1e300``).
        """
        return self._per_sample(X, lambda data: e_step(data, self.params_)[1])

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per sample."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities ``gamma_nk``, shape (n_samples, n_components).

        Computed in log space; a sample whose log-densities all underflow belongs wholly to
        the nearest component in Mahalanobis distance.
        """
        return self._per_sample(X, lambda data: np.exp(e_step(data, self.params_)[0]))

    def predict(self, X) -> np.ndarray:
        """Most probable component of every sample, shape (n_samples,)."""
        return self._per_sample(X, lambda data: e_step(data, self.params_)[0].argmax(axis=1))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component labels.
        """
        check_is_fitted(self)
        n_samples = check_positive_int(n_samples, "n_samples")
        params = self.params_
        return sample_mixture(
            params.weights, params.means, params.full_covariances(), n_samples, self.random_state
        )

    def _n_parameters(self) -> int:
        return self.spec_.n_parameters

    def bic(self, X) -> float:
        """Bayesian information criterion ``-2 log L + p log N`` (lower is better)."""
        data = self._validate_predict_data(X)
        return float(
            -2 * self.score(data) * data.shape[0] + self._n_parameters() * np.log(data.shape[0])
        )

    def aic(self, X) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better)."""
        data = self._validate_predict_data(X)
        return float(-2 * self.score(data) * data.shape[0] + 2 * self._n_parameters())

    def icl(self, X) -> float:
        """Integrated completed likelihood criterion, BIC plus twice the assignment entropy.

        ``ICL = BIC - 2 sum_n sum_k gamma_nk log gamma_nk`` (Biernacki et al. 2000, on
        the BIC scale: lower is better). It penalises components that overlap.
        """
        data = self._validate_predict_data(X)
        log_resp = e_step(data, self.params_)[0]
        entropy = -np.sum(np.exp(log_resp) * np.where(np.isfinite(log_resp), log_resp, 0.0))
        return float(self.bic(data) + 2.0 * entropy)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


def _finite(block: np.ndarray) -> np.ndarray:
    return check_data(block, min_samples=0, check_constant=False)


__all__ = ["GaussianMixture"]
