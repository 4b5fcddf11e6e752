"""``BayesianGaussianMixture``: the full posterior of a Gaussian mixture, by NUTS or VI.

The estimator validates its settings (:mod:`bayesgmm.bayes.options`) and the data, runs
:func:`bayesgmm.bayes.fitting.fit_posterior`, and sets its fitted attributes once from the
:class:`~bayesgmm.bayes.fitting.FitRecord` it returns. A fit has three steps:

1. **Start** (:mod:`bayesgmm.bayes.start`). MAP-EM (:func:`bayesgmm.em.estimator.fit_map`)
   under the same prior gives ``map_``; in one dimension it is sorted by mean to match
   the ordered means of the model. Every chain starts at this point plus a small seeded
   uniform jitter in the unconstrained space (``jitter``, default 0.1), so no chain
   starts in a hopeless region. With ``sampler="nutpie"`` (the default) each chain is
   one nutpie run from its jittered start; with ``sampler="pymc"`` the jittered points
   are passed per chain as ``initvals`` (``init="adapt_diag"``: no further jitter).
2. **Inference** (:mod:`bayesgmm.bayes.sampling`). NUTS, by default nutpie on the
   structure's compiled log-density, compiled once per (K, covariance structure, d, prior
   family) and process and reused for every later fit of that structure
   (:mod:`bayesgmm.bayes.compiled`, which gives the measurements behind the choice); a
   run whose R-hat or ESS misses its threshold after ``draws`` goes on to 2x and 4x
   ``draws`` (``max_draws``); ``sampler="pymc"`` is PyMC's own NUTS on a model compiled
   per fit. ADVI / full-rank ADVI (optionally minibatched), or just the MAP.
3. **Post-processing** (:mod:`bayesgmm.bayes.postprocess`). For ``d > 1`` every draw is
   relabelled to the MAP labelling (:mod:`bayesgmm.posterior.relabel`); then
   ``log_likelihood`` (one term per observation, the user's scale) and
   ``posterior_predictive`` (one replicate data set per draw) are computed in NumPy, so
   nothing is compiled after sampling.

Method ``"map"`` stores the MAP estimate as a single-draw posterior (1 chain x 1 draw)
with its log-likelihood, so every posterior method also works for it; it has no
``sample_stats`` and :meth:`BayesianGaussianMixture.diagnose` refuses it. VI draws are
independent and stored as one chain; they are importance-resampled draws of a defensive
proposal adapted from q when that correction's PSIS k-hat is < 0.7 (``bayesgmm.bayes.vi``).
The query methods are pure functions of the draws (:mod:`bayesgmm.bayes.queries`); those
that take new points (responsibilities, predictions, densities, imputations, draws) are the
:class:`~bayesgmm.bayes.predictions.PosteriorPredictions` mixin's.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import validate_data

from bayesgmm.bayes import queries
from bayesgmm.bayes.fitting import (
    OPTIONAL_ATTRIBUTES,
    FitRecord,
    fit_posterior,
    fitted_attributes,
)
from bayesgmm.bayes.model import CovariancePriorFamily
from bayesgmm.bayes.options import PARAMETER_CONSTRAINTS, START_JITTER, TARGET_ACCEPT, Settings
from bayesgmm.bayes.predictions import PosteriorPredictions
from bayesgmm.bayes.start import is_plain, jitter_points, transformed_point
from bayesgmm.bayes.state import DIAGNOSTICS_CACHE, SavedState
from bayesgmm.core.covariance import CovarianceType
from bayesgmm.core.exceptions import UnreliablePosteriorWarning
from bayesgmm.core.methods import MCMC_METHODS, METHODS, SAMPLERS, TUNE, Method, Sampler
from bayesgmm.core.missing import check_missing_columns
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.validation import (
    RandomState,
    check_data,
    check_random_state,
)
from bayesgmm.posterior.relabel import RelabelingRecord


class BayesianGaussianMixture(PosteriorPredictions, SavedState, DensityMixin, BaseEstimator):
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
    covariance_type : {"full", "tied", "diag", "spherical"} or an mclust name, default="full"
        mclust's names of the four (VVV, EEE, VVI, VII) and its ten other models (EII, EEI,
        VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV: :mod:`bayesgmm.bayes.eigen_structures`,
        the PyTensor graph, no hand-written kernel) are accepted.
    prior : "default", "hierarchical", None or MixturePrior, default="default"
        ``"default"``: the MAP-EM prior :meth:`MixturePrior.default`. ``"hierarchical"``
        (``covariance_type="full"``, no noise): the covariance-scale prior of Malsiner-Walli,
        Frühwirth-Schnatter & Grün (2016), whose Inverse-Wishart scale is learned
        (:class:`~bayesgmm.core.priors.HierarchicalPrior`; MAP-EM by ECM, NUTS on the
        PyTensor graph with ``covariance_scale_z`` a variable, Gibbs with its Wishart
        conditional). ``None``: flat priors, only for ``method="map"`` (the MLE); NUTS and
        VI need a proper prior.
    covariance_prior_family : {"niw", "lkj"}, default="niw"
        See :func:`bayesgmm.bayes.model.build_model`.
    method : {"nuts", "gibbs", "auto", "advi", "fullrank_advi", "map"}, default="nuts"
        NUTS, the conjugate Gibbs sampler (exact like NUTS; ``covariance_type="full"``,
        complete unweighted data without noise: :mod:`bayesgmm.bayes.gibbs`), mean-field or
        full-rank ADVI, or only the MAP (stored as one draw). ``"auto"``
        (:mod:`bayesgmm.bayes.auto`): Gibbs where it applies and has at least two features
        (measured 1.8x NUTS's bulk ESS per second at d=2, 3.5x at d=4, and minutes against
        tens of minutes at d=30), NUTS otherwise (other covariance structures or priors,
        missing entries, weights, noise, ``sampler="pymc"``, one feature); ``method_`` is
        the method that ran and :attr:`method_choice_` says why.
    draws : int, default=1000
        Draws per chain (NUTS, Gibbs: kept sweeps after ``tune`` discarded ones);
        independent draws stored as one chain (VI).
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
        :data:`~bayesgmm.bayes.start.START_LOG_DENSITY_GAP` (5) nats of the best, at most
        one per chain, taken in turn by the chains (chain ``c`` starts at optimum
        ``c mod m``); with one such optimum every chain starts at the MAP.
        ``sampler="nutpie"`` starts every chain at the MAP. A sequence gives one start
        per chain (``sampler="pymc"`` only). ``chain_starts_`` records which start each
        chain came from.
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
        (fewer above 1000 rows: :func:`bayesgmm.bayes.sampling.psis_draws`) from a
        defensive proposal adapted to the posterior (q and q widened 2x, then moment-matched:
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
        (LOO needs them); ``"auto"``: when they hold at most
        :data:`~bayesgmm.bayes.options.MAX_POINTWISE_VALUES` (2e7) values, so a million-row
        minibatch fit does not allocate gigabytes.
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
        The method of the last fit (with ``method="auto"``: ``"gibbs"`` or ``"nuts"``, the
        one that ran).
    sample_weight_ : ndarray of shape (n_rows,) or None
        The frequency weights of the rows fitted (those of positive weight).
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: CovarianceType = "full",
        prior: MixturePrior | Literal["default", "hierarchical"] | None = "default",
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
        from bayesgmm.bayes.graph import reproducible_compilation

        with reproducible_compilation():
            settings = Settings.checked(self.get_params(deep=False), type(self).__name__)
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
            record = fit_posterior(data, sample_weight, settings)
        self.__dict__.pop(DIAGNOSTICS_CACHE, None)
        self._set_fitted(record)
        self._warn_if_unreliable()
        return self

    def _warn_if_unreliable(self) -> None:
        """One :class:`~bayesgmm.core.exceptions.UnreliablePosteriorWarning`, with the
        verdict, when the fit fails its checks (:meth:`diagnose`; not for ``"map"``, nor for
        runs too short to diagnose)."""
        if self.method_ == "map":
            return
        try:
            diagnostics = self.diagnose()
        except ValueError:  # too few chains or draws to diagnose
            return
        if not diagnostics.ok:
            warnings.warn(
                f"{type(self).__name__}(n_components={self.n_components}, covariance_type="
                f"{self.covariance_type!r}, method={self.method_!r}): {diagnostics.verdict}",
                UnreliablePosteriorWarning,
                stacklevel=3,
            )

    def _set_fitted(self, record: FitRecord) -> None:
        """Set every fitted attribute from one fit's record (and drop a refit's stale ones)."""
        fitted = fitted_attributes(record)
        for name in OPTIONAL_ATTRIBUTES:
            if name not in fitted:
                self.__dict__.pop(name, None)
        self.__dict__.update(fitted)

    def _check_fitted(self) -> None:
        if not hasattr(self, "idata_"):
            raise NotFittedError(
                "This BayesianGaussianMixture instance is not fitted yet: call fit(X) first"
            )

    @property
    def _has_noise(self) -> bool:
        spec = getattr(self, "spec_", None)
        return spec is not None and spec.noise is not None

    @property
    def plain_model(self) -> bool:
        """Whether the fitted model is the cached compiled one: no noise component, frequency
        weights or missing entries (then ``compare`` computes LOO on the compiled target)."""
        self._check_fitted()
        return is_plain(self._X, self.sample_weight_, self.spec_)

    @property
    def method_choice_(self) -> str | None:
        """What ``method="auto"`` chose and why (``None`` when another method was asked
        for); kept in the posterior's attributes, so saved models keep it too."""
        self._check_fitted()
        return self.idata_["posterior"].attrs.get("method_choice")

    @property
    def _noise(self):
        """The model's noise component, or ``None``."""
        return self.spec_.noise if self._has_noise else None

    def _posterior(self) -> xr.Dataset:
        self._check_fitted()
        return self.idata_["posterior"].to_dataset()

    def _data(self, X) -> np.ndarray:
        """``X`` checked against the fitted data (``None``: the training data)."""
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
            ``attrs["method"]``: the method that ran (and ``attrs["method_choice"]`` with
            ``method="auto"``).
        """
        self._check_fitted()
        if feature_names is None:
            feature_names = getattr(self, "feature_names_in_", None)
        table = queries.summary(
            self.idata_,
            self.map_,
            self.method_,
            ci_prob,
            feature_names,
            getattr(self, "map_noise_weight_", None),
        )
        table.attrs["method"] = self.method_
        if self.method_choice_ is not None:
            table.attrs["method_choice"] = self.method_choice_
        return table

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
        if self.method_ not in MCMC_METHODS:
            raise ValueError(
                f"diagnose() needs posterior draws, but the model was fitted with "
                f"method={self.method_!r}: refit with method='nuts' or 'gibbs' (or a VI method)"
            )
        # computed once per fit (fit's warning asks first; the CLI and compare again)
        cached = self.__dict__.get(DIAGNOSTICS_CACHE)
        if cached is not None and cached[0] == self.draws:
            return cached[1]
        diagnostics = queries.nuts_diagnostics(
            self.idata_,
            self._X,
            self._noise,
            relabeling=self.relabeling_,
            chain_weights=self.chain_weights_,
            chain_starts=self.chain_starts_,
            draws_asked=self.draws,
        )
        if self.method_choice_ is not None:
            diagnostics = dataclasses.replace(diagnostics, method_choice=self.method_choice_)
        self.__dict__[DIAGNOSTICS_CACHE] = (self.draws, diagnostics)
        return diagnostics

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
        return queries.log_posterior_density(
            self.idata_, self._X, self.sample_weight_, self.spec_, self.map_
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "marginalize"
        return tags


__all__ = [
    "METHODS",
    "PARAMETER_CONSTRAINTS",
    "SAMPLERS",
    "BayesianGaussianMixture",
    "RelabelingRecord",
    "jitter_points",
    "transformed_point",
]
