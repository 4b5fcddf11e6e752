"""``GaussianMixture``: the EM / MAP estimator with scikit-learn conventions.

The estimator only orchestrates: validation, the prior, and the pure functions of
:mod:`bayesgmm.em`. With ``prior=None`` it is maximum likelihood and, from the same
starting parameters and with ``reg_covar=0``, reproduces
:class:`sklearn.mixture.GaussianMixture` (our ``reg_covar`` is relative to each feature's
variance, scikit-learn's absolute); with ``prior="default"`` (or a
:class:`~bayesgmm.core.priors.MixturePrior`) every M-step is the conjugate MAP update and the
fit can no longer collapse onto a singular covariance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from bayesgmm.core.covariance import get_structure
from bayesgmm.core.missing import check_missing_columns, check_missing_option, has_missing
from bayesgmm.core.noise import check_noise_volume
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.core.validation import (
    RandomState,
    check_data,
    check_feature_combination,
    check_positive_int,
)
from bayesgmm.core.weights import check_sample_weight, positive_rows, weight_total, weighted_moments
from bayesgmm.em.chunked import (
    as_dask_array,
    is_chunked_store,
    is_dask_array,
)
from bayesgmm.em.estimate import (
    _labels,
    akaike_information_criterion,
    assignment_entropy,
    bayesian_information_criterion,
    bootstrap_fitted,
    chunked_em_result,
    data_digest,
    em_result,
    estimator_state,
    impute_conditional_mean,
    map_row_blocks,
    mixture_e_step,
    restore_state,
    sample_fitted,
)
from bayesgmm.em.fit import EMResult
from bayesgmm.em.options import EMOptions

if TYPE_CHECKING:
    from bayesgmm.em.bootstrap import BootstrapResult


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM (maximum likelihood) or MAP-EM.

    Parameters
    ----------
    n_components : int, default=1
        Number of components K.
    covariance_type : str, default="full"
        ``"full"``, ``"tied"``, ``"diag"``, ``"spherical"`` (as in scikit-learn; mclust's
        ``VVV``, ``EEE``, ``VVI``, ``VII``, accepted as aliases), or one of mclust's ten other
        models ``EII``, ``EEI``, ``VEI``, ``EVI``, ``VEE``, ``EVE``, ``VVE``, ``EEV``, ``VEV``,
        ``EVV`` (:mod:`bayesgmm.core.covariance.eigen`; full (K, d, d) covariance matrices).
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
    n_init : int or "auto", default="auto"
        Number of starts; the best objective among the non-degenerate fits is kept (a
        start that ends with a component on repeated values is replaced by another).
        ``"auto"``: on small data (``N K d`` up to 5 000) 60 starts, then split-and-merge
        moves (merge two components, split a third) from the three best distinct fits, run
        to convergence until none improves them (:func:`bayesgmm.em.split_merge.split_merge`); on
        larger data 20 starts, fewer above 100,000 rows (2,000,000 rows in all, at least 2;
        :func:`bayesgmm.em.starts.auto_starts_for`). On the bundled data sets this reaches the best
        non-degenerate optimum of 50 tight restarts for every K = 1..6 and structure
        (``reports/benchmarks.md``, "EM defaults").
    init_params : {"hierarchical", "kmeans", "k-means++", "random", "random_from_data"}, \
default="hierarchical"
        ``"hierarchical"`` is mclust's start (agglomeration on scaled principal components);
        the second and later starts then take random rows, ``"k-means++"`` and random
        responsibilities in turn.
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
    random_state : int, numpy Generator, SeedSequence or None, default=None
        Seed of the initialisation and of :meth:`sample`: the same int gives the same fit;
        a Generator is consumed (the same generator state gives the same fit); ``None``
        draws fresh entropy.
    noise : bool, default=False
        Add a uniform background component for outliers (mclust's ``Vinv``; see
        :mod:`bayesgmm.core.noise`): density ``1 / noise_volume`` everywhere, with its own weight
        ``noise_weight_``. In-memory data only.
    noise_volume : float, optional
        Hypervolume ``V`` of the noise component in the data's units; default the data's
        bounding box ``prod_j (max x_j - min x_j)``.
    noise_init : array-like of shape (n_samples,), optional
        Initial noise probabilities (bools or numbers in [0, 1]) of the rows given to
        :meth:`fit`: the starts use the other rows and the noise weight starts at their
        mean. Default: the usual starts on all rows and a noise weight of 0.05.
    missing : {"error", "marginalize"}, default="error"
        What to do with missing entries (NaN). ``"error"`` refuses them. ``"marginalize"``
        treats them as missing at random: EM maximises the observed-data likelihood
        (Ghahramani & Jordan 1994, :mod:`bayesgmm.em.missing`): the E-step uses the
        marginal Gaussian of each row's observed coordinates, the M-step the conditional
        expectations of the missing ones; every start is initialised on the mean-imputed
        data. ``lower_bound_``, :meth:`score` and :meth:`score_samples` are then
        observed-data log-likelihoods, and :meth:`predict`, :meth:`predict_proba`,
        :meth:`score_samples` and :meth:`impute` accept rows with NaN. A row or a column
        with every entry missing is an error, and so is infinity. Data without NaN give
        exactly the fit of ``"error"``. Not available for Dask / chunked input.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        With a noise component, the Gaussians' absolute weights:
        ``weights_.sum() + noise_weight_ == 1``.
    noise_weight_ : float
        Weight of the noise component (only with ``noise=True``).
    noise_volume_ : float
        Its hypervolume ``V`` in the data's units (only with ``noise=True``).
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        Shape (K, d, d), (d, d), (K, d) or (K,) for full, tied, diag, spherical.
    precisions_ : ndarray
        Inverses of ``covariances_``, same layout.
    precisions_cholesky_ : ndarray
        Cholesky factors of ``precisions_``, same layout.
    params_ : MixtureParams
        The fitted parameters as one record; with a noise component, the Gaussians with
        their conditional weights ``weights_ / (1 - noise_weight_)``.
    prior_ : MixturePrior or None
        The prior actually used.
    spec_ : MixtureSpec
        The model fitted: K, covariance structure, prior (:class:`bayesgmm.core.spec.MixtureSpec`).
    converged_ : bool
        Never true with non-finite parameters: a fit that produces them raises
        :class:`~bayesgmm.core.exceptions.NumericalError`.
    n_iter_ : int
    lower_bound_ : float
        Per-sample objective (log-likelihood, plus ``log p(theta) / N`` for MAP) of the best fit;
        with ``sample_weight``, ``(sum_n w_n log p(x_n) + log p(theta)) / W``, ``W = sum_n w_n``.
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
        n_init: int | str = "auto",
        init_params: str = "hierarchical",
        stopping: str = "aitken",
        weights_init: np.ndarray | None = None,
        means_init: np.ndarray | None = None,
        precisions_init: np.ndarray | None = None,
        random_state: RandomState = None,
        noise: bool = False,
        noise_volume: float | None = None,
        noise_init=None,
        missing: str = "error",
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
        self.noise = noise
        self.noise_volume = noise_volume
        self.noise_init = noise_init
        self.missing = missing

    def _options(self) -> EMOptions:
        """The EM settings as one validated record (raises naming a bad setting)."""
        check_positive_int(self.n_components, "n_components")
        get_structure(self.covariance_type)
        if not isinstance(self.noise, bool | np.bool_):
            raise ValueError(f"noise must be True or False, got {self.noise!r}")
        check_noise_volume(self.noise_volume)
        check_missing_option(self.missing)
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

    def fit(self, X, y=None, sample_weight=None) -> GaussianMixture:
        """Estimate the parameters by EM; see :meth:`fit_predict`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (:mod:`bayesgmm.core.weights`): row ``n`` counts as ``w_n``
            copies, so integer weights give the fit of the replicated rows and zero weights
            the fit without those rows. A Dask array of weights for Dask ``X``.

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
            self._fit_chunked(X, sample_weight)
        else:
            self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def _fit_chunked(self, X, sample_weight=None) -> None:
        if self.missing != "error":
            raise ValueError(
                f"missing={self.missing!r} is not supported for Dask or chunked input (EM with "
                "missing entries runs in memory): pass a NumPy array, or drop or impute the "
                "rows with NaN"
            )
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        options = self._options()
        if self.noise:
            raise ValueError(
                "noise=True is not supported for Dask / chunked (out-of-core) data: fit an "
                "in-memory array (e.g. X.compute(), or a subsample) or set noise=False"
            )
        result, spec = chunked_em_result(
            X,
            self.n_components,
            self.covariance_type,
            self.prior,
            options,
            random_state=self.random_state,
            sample_weight=sample_weight,
        )
        self._store(result, spec)
        self._fit_digest = None  # out-of-core data: not fingerprinted
        self.n_features_in_ = X.shape[1]

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit, then label every sample with its most probable component.

        ``fit(X).predict(X)`` gives the same labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (see :meth:`fit`); every row is labelled, whatever its weight.
            ``lower_bound_`` is then per unit of weight.

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
            allow_nan=self._allow_nan(),
        )
        validate_data(self, X, dtype=[np.float64, np.float32], ensure_all_finite=self._finite())
        check_missing_columns(data, names=getattr(self, "feature_names_in_", None))
        weights = check_sample_weight(sample_weight, data.shape[0])
        check_feature_combination(  # before the noise volume, which NaN would spoil
            noise=bool(self.noise), weighted=weights is not None, missing=has_missing(data)
        )
        moments = None
        if weights is not None:
            n_positive = int(np.count_nonzero(weights))
            if self.n_components > n_positive:
                raise ValueError(
                    f"n_components={self.n_components} must be <= the number of rows with a "
                    f"positive sample_weight ({n_positive})"
                )
            moments = weighted_moments(*positive_rows(data, weights))
        spec = MixtureSpec.from_data(
            data,
            self.n_components,
            self.covariance_type,
            self.prior,
            standardize=False,
            moments=moments,
            noise=bool(self.noise),
            noise_volume=self.noise_volume,
        )
        result = em_result(
            data,
            spec,
            options,
            random_state=self.random_state,
            noise_init=self.noise_init,
            sample_weight=weights,
        )
        self._store(result, spec)
        self._fit_digest = data_digest(data, weights)  # bootstrap checks it gets the same data
        return _labels(self._e_step(data)[0], spec.noise is not None)

    def _allow_nan(self) -> bool:
        return check_missing_option(self.missing) == "marginalize"

    def _finite(self) -> bool | str:
        """scikit-learn's ``ensure_all_finite`` for this estimator's ``missing`` setting."""
        return "allow-nan" if self._allow_nan() else True

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
        if spec.noise is not None:
            self.noise_weight_ = float(result.noise_weight)
            self.noise_volume_ = spec.noise.volume
            self.weights_ = (1.0 - self.noise_weight_) * self.params_.weights
        else:
            for name in ("noise_weight_", "noise_volume_"):
                self.__dict__.pop(name, None)
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
        data = check_data(X, min_samples=1, check_constant=False, allow_nan=self._allow_nan())
        validate_data(self, X, dtype=np.float64, reset=False, ensure_all_finite=self._finite())
        return data

    def _per_sample(self, X, fn):
        """Apply ``fn(data)`` to validated data; blockwise (lazily) for Dask arrays."""
        if is_dask_array(X):
            check_is_fitted(self)
            return map_row_blocks(X, fn, self.n_features_in_, self._allow_nan())
        return fn(self._validate_predict_data(X))

    @property
    def _has_noise(self) -> bool:
        return getattr(self, "spec_", None) is not None and self.spec_.noise is not None

    def _e_step(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-responsibilities (the noise's last, if any) and log-likelihood per row;
        marginal ones (over the observed coordinates) for rows with NaN."""
        if self._has_noise:
            return mixture_e_step(data, self.params_, self.spec_.noise, self.noise_weight_)
        return mixture_e_step(data, self.params_)

    def score_samples(self, X) -> np.ndarray:
        """Log density ``log p(x_n)`` of every sample, shape (n_samples,).

        Includes the noise component's ``noise_weight_ / noise_volume_`` if there is one.
        Always finite: a sample so far from every component that its log-density
        underflows gets :data:`bayesgmm.em.steps.LOG_DENSITY_FLOOR` (``-1e300``). With
        ``missing="marginalize"``, a row with NaN gets the log-density of its observed
        coordinates (the marginal mixture).
        """
        return self._per_sample(X, lambda data: self._e_step(data)[1])

    def score(self, X, y=None, sample_weight=None) -> float:
        """Mean log-likelihood per sample (per unit of weight with ``sample_weight``)."""
        log_lik = self.score_samples(X)
        if sample_weight is None:
            return float(np.mean(log_lik))
        weights = check_sample_weight(sample_weight, log_lik.shape[0])
        return float(weights @ log_lik / weights.sum())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities ``gamma_nk``, shape (n_samples, n_components).

        Computed in log space; a sample whose log-densities all underflow belongs wholly to
        the nearest component in Mahalanobis distance. With a noise component the columns
        are the Gaussians' probabilities among all K + 1 components: each row sums to
        ``1 - noise_proba(X)``.
        """
        k = self.n_components
        return self._per_sample(X, lambda data: np.exp(self._e_step(data)[0][:, :k]))

    def noise_proba(self, X) -> np.ndarray:
        """Probability that each sample belongs to the noise component, shape (n_samples,).

        Raises
        ------
        ValueError
            The model has no noise component (fit with ``noise=True``).
        """
        check_is_fitted(self)
        if not self._has_noise:
            raise ValueError("noise_proba needs a noise component: fit GaussianMixture(noise=True)")
        return self._per_sample(X, lambda data: np.exp(self._e_step(data)[0][:, -1]))

    def predict(self, X) -> np.ndarray:
        """Most probable component of every sample, shape (n_samples,).

        With a noise component, ``-1`` marks the samples whose most probable component is
        the noise (scikit-learn's DBSCAN convention for outliers).
        """
        noise = self._has_noise
        return self._per_sample(X, lambda data: _labels(self._e_step(data)[0], noise))

    def impute(self, X) -> np.ndarray:
        """Missing entries replaced by their conditional mean given the observed ones.

        ``E[x_m | x_o] = sum_k p(k | x_o) (mu_k[m] + Sigma_k[m, o] Sigma_k[o, o]^-1
        (x_o - mu_k[o]))`` under the fitted mixture (``missing="marginalize"``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing entry.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            ``X`` with its NaN entries filled; observed entries unchanged.
        """
        if check_missing_option(self.missing) != "marginalize":
            raise ValueError('impute() needs a model fitted with missing="marginalize"')
        return impute_conditional_mean(self._validate_predict_data(X), self.params_)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component labels; ``-1`` for draws from the noise component, which are uniform
            on the bounding box of the training data (scaled about its centre to
            ``noise_volume_`` when that was given).
        """
        check_is_fitted(self)
        n_samples = check_positive_int(n_samples, "n_samples")
        if not self._has_noise:
            return sample_fitted(self.params_, n_samples, self.random_state)
        return sample_fitted(
            self.params_, n_samples, self.random_state, self.spec_.noise, self.noise_weight_
        )

    def _n_parameters(self) -> int:
        return self.spec_.n_parameters

    def _weighted_log_likelihood(self, X, sample_weight) -> tuple[float, float]:
        """``(sum_n w_n log p(x_n), W)``; unit weights when ``sample_weight`` is None."""
        data = self._validate_predict_data(X)
        weights = check_sample_weight(sample_weight, data.shape[0])
        total = weight_total(weights, data.shape[0])
        return self.score(data, sample_weight=weights) * total, total

    def bic(self, X, sample_weight=None) -> float:
        """Bayesian information criterion ``-2 log L + p log N`` (lower is better).

        With frequency weights, ``log L = sum_n w_n log p(x_n)`` and ``N = sum_n w_n``
        (the BIC of the replicated rows).
        """
        log_lik, total = self._weighted_log_likelihood(X, sample_weight)
        return bayesian_information_criterion(log_lik, total, self._n_parameters())

    def aic(self, X, sample_weight=None) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better); weighted as
        :meth:`bic`."""
        log_lik, _ = self._weighted_log_likelihood(X, sample_weight)
        return akaike_information_criterion(log_lik, self._n_parameters())

    def icl(self, X) -> float:
        """Integrated completed likelihood criterion, BIC plus twice the assignment entropy.

        ``ICL = BIC - 2 sum_n sum_k gamma_nk log gamma_nk`` (Biernacki et al. 2000, on
        the BIC scale: lower is better). It penalises components that overlap.
        """
        data = self._validate_predict_data(X)
        log_resp = self._e_step(data)[0]
        return float(self.bic(data) + 2.0 * assignment_entropy(log_resp))

    def bootstrap(
        self,
        X,
        n_boot: int = 200,
        kind: str = "nonparametric",
        *,
        n_jobs: int | None = None,
        random_state: int | np.random.SeedSequence | np.random.Generator | None = None,
        ci_prob: float = 0.89,
        sample_weight=None,
    ) -> BootstrapResult:
        """Bootstrap standard errors and percentile intervals of the fitted parameters.

        Each replicate refits from this fit's solution (one EM run under the same
        ``prior_``) and is relabelled to it, so component ``k`` of every replicate is
        component ``k`` here; see :mod:`bayesgmm.em.bootstrap`. Fits ``X`` first if the
        estimator is not fitted yet.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data of the fit (in memory).
        n_boot : int, default=200
            Replicates.
        kind : {"nonparametric", "weighted", "parametric"}, default="nonparametric"
            Resampled rows (multinomial counts as frequency weights), the weighted
            likelihood bootstrap (Dirichlet weights), or data drawn from the fitted mixture.
        n_jobs : int or None
            Worker processes (joblib: ``None`` one, ``-1`` every core). Results do not
            depend on it.
        random_state : int, SeedSequence, Generator or None
            Seed of the replicates (each gets its own child seed).
        ci_prob : float, default=0.89
            Default probability of :meth:`BootstrapResult.intervals`.
        sample_weight : array-like of shape (n_samples,), optional
            The frequency weights of the fit.

        Returns
        -------
        BootstrapResult
            Stacked replicate parameters, ``standard_errors()``, ``intervals()``,
            ``to_frame()``.
        """
        return bootstrap_fitted(
            self,
            X,
            n_boot,
            kind,
            n_jobs=n_jobs,
            random_state=random_state,
            ci_prob=ci_prob,
            sample_weight=sample_weight,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags

    def save(self, path, *, overwrite: bool = False, input_scaling=None, metadata=None):
        """Save the fitted estimator to the folder ``path``; read it with :func:`bayesgmm.load`.

        One ``model.json`` (settings, fitted parameters, spec, optima; the format of
        :mod:`bayesgmm.core.persistence`), written atomically.

        Parameters
        ----------
        path : str or Path
            The folder; one bayesgmm wrote before is replaced whole.
        overwrite : bool, default=False
            Allow replacing a non-empty folder that bayesgmm did not write.
        input_scaling : Standardization, optional
            An affine map the data went through before ``fit``, kept for whoever predicts.
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

    def _get_state(self) -> tuple[dict, None]:
        """The fitted attributes for :mod:`bayesgmm.core.persistence` (no posterior)."""
        return estimator_state(self)

    def _set_state(self, state: dict, posterior=None) -> None:
        """Inverse of :meth:`_get_state` (raises ``ValueError`` on an inconsistent state)."""
        restore_state(self, state)


def fit_map(
    X: np.ndarray, spec: MixtureSpec, *, sample_weight: np.ndarray | None = None, **settings
) -> GaussianMixture:
    """A :class:`GaussianMixture` fitted to validated data under a prepared ``spec``.

    The estimator's number of components, covariance type, prior and noise setting are
    ``spec``'s; ``settings`` are its other constructor arguments (``n_init``, ``tol``,
    ``random_state``, ``noise_init``, ...). EM runs under ``spec`` itself (its
    standardisation and prior as given), as :func:`em_result`; the fitted attributes are
    those of :meth:`GaussianMixture.fit` but ``feature_names_in_``. The MAP start of
    :class:`bayesgmm.bayes.estimator.BayesianGaussianMixture` is this fit.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Checked data (:func:`bayesgmm.core.validation.check_data`).
    spec : MixtureSpec
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights.
    **settings
        Further :class:`GaussianMixture` settings.

    Returns
    -------
    GaussianMixture
    """
    estimator = GaussianMixture(
        spec.n_components,
        covariance_type=spec.covariance_type,
        prior=spec.prior,
        noise=spec.noise is not None,
        **settings,
    )
    result = em_result(
        X,
        spec,
        estimator._options(),
        random_state=estimator.random_state,
        noise_init=estimator.noise_init,
        sample_weight=sample_weight,
    )
    estimator._store(result, spec)
    estimator.n_features_in_ = X.shape[1]
    return estimator


__all__ = ["GaussianMixture", "em_result", "fit_map"]
