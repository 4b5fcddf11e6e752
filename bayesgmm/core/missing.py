"""Missing entries (NaN): the option, the missingness patterns and nan-aware moments.

Missing values are handled inside the model under *missing at random* (MAR: whether an
entry is missing may depend on the observed entries, not on the missing value itself).
They are opt-in, ``missing="marginalize"`` on :class:`~bayesgmm.GaussianMixture` and
:class:`~bayesgmm.BayesianGaussianMixture`; the default ``missing="error"`` refuses NaN.
Under ``"marginalize"`` a row's likelihood is the mixture of the *marginal* Gaussians of
its observed coordinates,
``p(x_o) = sum_k w_k N(x_o | mu_k[o], Sigma_k[o, o])``, which is what EM
(:mod:`bayesgmm.em.missing`, Ghahramani & Jordan 1994) maximises and what the PyMC model
(:func:`bayesgmm.bayes.model.build_model`) writes, one vectorised term per missingness pattern.

This module holds what both paths share and imports NumPy only: the option's values,
:class:`MissingPatterns` (rows grouped by which features they observe), the checks on
the data (no row entirely missing; no training column entirely missing) and nan-aware moments.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

#: Values of the ``missing`` setting of the estimators.
MISSING_OPTIONS: tuple[str, ...] = ("error", "marginalize")

#: What the error for NaN tells the user to do.
MISSING_REMEDY = (
    'drop or impute those rows first, or fit with missing="marginalize" (--missing '
    "marginalize on the command line) to marginalise missing entries (NaN) inside the model "
    "(missing at random)"
)


def check_missing_option(value) -> str:
    """Return ``value`` if it is one of :data:`MISSING_OPTIONS`, else raise ``ValueError``."""
    if not (isinstance(value, str) and value in MISSING_OPTIONS):
        raise ValueError(
            f"Invalid value for 'missing': {value!r}; choose one of {list(MISSING_OPTIONS)} "
            '("marginalize" marginalises NaN entries inside the model)'
        )
    return value


def check_missing_rows(X: np.ndarray, name: str = "X") -> None:
    """Raise ``ValueError`` naming the rows of ``X`` that have every entry missing (NaN).

    Such a row carries no information about the mixture (nor a component to predict).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        May contain NaN.
    name : str
        How the data are called in messages.
    """
    empty_rows = np.flatnonzero(np.isnan(X).all(axis=1)) if X.shape[1] else np.array([], int)
    if empty_rows.size:
        shown = empty_rows[:10].tolist()
        more = f" (and {empty_rows.size - 10} more)" if empty_rows.size > 10 else ""
        raise ValueError(
            f"{name} has {empty_rows.size} row(s) with every entry missing (NaN), at row "
            f"indices {shown}{more}: such rows carry no information; drop them"
        )


def check_missing_columns(X: np.ndarray, name: str = "X", names=None) -> None:
    """Raise ``ValueError`` if a column of the training data ``X`` is entirely missing.

    Nothing can be estimated for such a column (no mean, no variance). Data to predict
    may have one: its rows are scored on their other coordinates.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        May contain NaN.
    name : str
        How the data are called in messages.
    names : sequence of str, optional
        Column names, for the message.
    """
    empty_cols = np.flatnonzero(np.isnan(X).all(axis=0)) if X.shape[0] else np.array([], int)
    if empty_cols.size:
        cols = [f"{j} ({names[j]!r})" if names is not None else str(j) for j in empty_cols[:10]]
        raise ValueError(
            f"{name} has column(s) {', '.join(cols)} with every entry missing (NaN): nothing "
            "can be estimated for them; drop those columns"
        )


@dataclass(frozen=True)
class MissingPatterns:
    """Rows of a data set grouped by which features they observe.

    Attributes
    ----------
    observed : ndarray of bool, shape (n_patterns, n_features)
        ``observed[p, j]``: whether the rows of pattern ``p`` observe feature ``j``.
    rows : tuple of (ndarray of int or slice)
        ``rows[p]``: the row indices of pattern ``p``, increasing (a slice once the rows
        are sorted by pattern, :meth:`sorted_by_pattern`).
    n_samples : int
    """

    observed: np.ndarray
    rows: tuple[np.ndarray | slice, ...]
    n_samples: int

    @classmethod
    def from_data(cls, X: np.ndarray) -> MissingPatterns:
        """The patterns of ``X`` (n_samples, n_features), NaN marking a missing entry."""
        observed = ~np.isnan(np.asarray(X, dtype=np.float64))
        patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
        inverse = np.ravel(inverse)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=patterns.shape[0]))[:-1]
        return cls(patterns, tuple(np.split(order, bounds)), observed.shape[0])

    def sorted_by_pattern(self) -> tuple[np.ndarray, MissingPatterns]:
        """The row order that makes every pattern contiguous, and the patterns in it.

        Returns
        -------
        order : ndarray of shape (n_samples,)
            ``X[order]`` has the rows of each pattern next to each other.
        patterns : MissingPatterns
            The patterns of ``X[order]``, with slices as rows (views, not copies).
        """
        order = np.concatenate([np.arange(self.n_samples)[rows] for rows in self.rows])
        sizes = [np.arange(self.n_samples)[rows].size for rows in self.rows]
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        slices = tuple(slice(int(a), int(b)) for a, b in pairwise(bounds))
        return order, MissingPatterns(self.observed, slices, self.n_samples)

    @property
    def n_patterns(self) -> int:
        """Number of distinct patterns."""
        return self.observed.shape[0]

    def __iter__(self):
        """Pairs ``(rows, observed)``: row indices and the boolean mask of observed features."""
        return zip(self.rows, self.observed, strict=True)

    def row_mask(self) -> np.ndarray:
        """Observed-entry mask of every row, shape (n_samples, n_features)."""
        mask = np.empty((self.n_samples, self.observed.shape[1]), dtype=bool)
        for rows, observed in self:
            mask[rows] = observed
        return mask


def has_missing(X) -> bool:
    """Whether the in-memory array ``X`` has a NaN entry."""
    return bool(np.isnan(np.asarray(X)).any())


def mean_imputed(X: np.ndarray) -> np.ndarray:
    """``X`` with every NaN replaced by the mean of its column's observed entries."""
    X = np.array(X, dtype=np.float64)
    missing = np.isnan(X)
    if missing.any():
        X[missing] = np.broadcast_to(np.nanmean(X, axis=0), X.shape)[missing]
    return X


def nan_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of data with missing entries.

    Means and variances are those of each column's observed entries (variance with
    ``n_j - 1``); correlations are those of the mean-imputed data, which are shrunk
    towards zero but make the matrix positive semi-definite (pairwise-complete
    covariances need not be). This only scales the default prior and the
    standardisation; the fitted model does not depend on it otherwise.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Every column with at least two observed entries.
    """
    X = np.asarray(X, dtype=np.float64)
    mean = np.nanmean(X, axis=0)
    sd = np.sqrt(np.nanvar(X, axis=0, ddof=1))
    filled = mean_imputed(X)
    if X.shape[1] == 1:
        return mean, np.atleast_2d(sd**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.atleast_2d(np.corrcoef(filled, rowvar=False))
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    return mean, corr * np.outer(sd, sd)


__all__ = [
    "MISSING_OPTIONS",
    "MISSING_REMEDY",
    "MissingPatterns",
    "check_missing_columns",
    "check_missing_option",
    "check_missing_rows",
    "has_missing",
    "mean_imputed",
    "nan_moments",
]
