"""The fitted posterior's answers about points: responsibilities, predictions, densities.

:class:`PosteriorPredictions` is the part of
:class:`~bayesgmm.bayes.estimator.BayesianGaussianMixture` that answers questions about the
training data or new points from the posterior draws: every method validates the points
(``_data``), takes the posterior (``_posterior``, with the noise component ``_noise``) and
calls a pure function of :mod:`bayesgmm.bayes.queries`. The estimator provides those three
members, ``_check_fitted``, ``random_state`` and ``missing``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm.bayes import queries
from bayesgmm.core.validation import RandomState, check_positive_int
from bayesgmm.posterior.partitions import Loss, PartitionSummary


class PosteriorPredictions:
    """Mixin: the posterior's responsibilities, predictions and densities at any points."""

    def responsibilities(self, X=None) -> xr.DataArray:
        """Posterior draws of ``gamma_nk = p(z_n = k | x_n, theta)``.

        With a noise component the Gaussians' probabilities among all K + 1 components
        (each row sums to one minus the noise probability, :meth:`noise_probability`).

        Returns
        -------
        DataArray of dims (chain, draw, obs, component)
        """
        X = self._data(X)
        return queries.responsibilities(self._posterior(), X, self._noise)

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
        X = self._data(X)
        return queries.noise_probability(self._posterior(), X, self._noise, ci_prob)

    def assignment_probabilities(self, X=None, ci_prob: float = 0.89) -> pd.DataFrame:
        """Posterior mean and equal-tailed interval of each assignment probability.

        Returns
        -------
        DataFrame indexed by (obs, component) with columns ``mean``, ``lower``, ``upper``
        """
        return queries.assignment_probabilities(self.responsibilities(X), ci_prob)

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
        return queries.partitions(
            self._posterior(),
            X,
            self._noise,  # with noise, one more cluster
            loss=loss,
            ci_prob=ci_prob,
            max_points=max_points,
            max_draws=max_draws,
            random_state=self.random_state if random_state is None else random_state,
        )

    def component_counts(self) -> xr.DataArray:
        """Posterior of ``N_k = sum_n gamma_nk`` on the training data (empty components).

        Returns
        -------
        DataArray of dims (chain, draw, component)
        """
        X = self._data(None)
        return queries.component_counts(self._posterior(), X, self._noise).rename(
            "component_counts"
        )

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
        return queries.predictive_density(self._posterior(), grid, self._noise, ci_prob)

    def predict_proba(self, X) -> np.ndarray:
        """Posterior mean of the responsibilities, shape (n_samples, n_components).

        With a noise component each row sums to one minus the noise probability.
        """
        return self.responsibilities(X).mean(("chain", "draw")).values

    def predict(self, X) -> np.ndarray:
        """Most probable component of each sample, shape (n_samples,).

        With a noise component, ``-1`` where the noise is the most probable (posterior mean).
        """
        X = self._data(X)
        return queries.predict(self._posterior(), X, self._noise)

    def score_samples(self, X) -> np.ndarray:
        """Log posterior predictive density ``log mean_s p(x_n | theta_s)``, shape (n_samples,).

        Includes the noise component's density, if any.
        """
        X = self._data(X)
        return queries.score_samples(self._posterior(), X, self._noise)

    def score(self, X, y=None) -> float:
        """Mean log posterior predictive density per sample."""
        return float(self.score_samples(X).mean())

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
        return queries.impute(
            self._posterior(),
            X,
            n_draws,
            self.random_state if random_state is None else random_state,
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
        return queries.sample(self._posterior(), self._noise, n_samples, random_state)

    def assignment_summary(
        self,
        X=None,
        *,
        ci_prob: float = 0.89,
        max_draws: int | None = None,
        random_state: RandomState = None,
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
        random_state : int, Generator or None
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
        return queries.assignment_summary(
            self._posterior(),
            X,
            self._noise,
            ci_prob=ci_prob,
            max_draws=max_draws,
            random_state=self.random_state if random_state is None else random_state,
        )


__all__ = ["PosteriorPredictions"]
