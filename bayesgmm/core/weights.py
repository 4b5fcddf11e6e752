"""Observation weights: validation and weighted moments.

Weights are **frequency weights**: a row of weight ``w_n`` counts as ``w_n`` copies of
itself. Every fitting path multiplies row ``n``'s log-likelihood term by ``w_n``, so an
integer weight gives exactly the fit of the data with the row repeated ``w_n`` times, a
zero weight the fit without the row, and the total ``W = sum_n w_n`` plays the role of the
number of samples (``alpha_k = N_k / W``, ``lower_bound_`` per unit of weight, BIC's
``log W``). A prior enters once, whatever the weights; the posterior therefore narrows
as if ``W`` rows had been observed. Weights that only express relative importance
(survey or importance weights) should be rescaled to sum to the effective sample size
before they are used here.
"""

from __future__ import annotations

import numpy as np

from bayesgmm.core.validation import plain


def one_per_row(weights, n_samples: int):
    """``weights`` (NumPy or Dask) as shape (n_samples,); a column (n, 1) is flattened.

    Raises
    ------
    ValueError
        Any other shape, naming ``sample_weight``.
    """
    if weights.ndim == 2 and weights.shape[1] == 1:
        weights = weights[:, 0]
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per row of X; got "
            f"shape {weights.shape}"
        )
    return weights


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """Validate frequency weights, one per row of the data.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
    n_samples : int
        Rows of the data.

    Returns
    -------
    ndarray of shape (n_samples,) or None
        float64 copy of the weights; ``None`` when none are given.

    Raises
    ------
    ValueError
        Wrong shape, non-numeric, NaN or infinite, negative, or all-zero weights.
    """
    if sample_weight is None:
        return None
    try:
        weights = np.array(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "sample_weight must be numeric, one non-negative weight per row; got "
            f"{plain(sample_weight)}"
        ) from None
    weights = one_per_row(weights, n_samples)
    bad = np.flatnonzero(~np.isfinite(weights))
    if bad.size:
        raise ValueError(
            f"sample_weight contains NaN or infinity at row(s) {bad[:10].tolist()}: give a "
            "finite weight to every row (0 drops a row)"
        )
    negative = np.flatnonzero(weights < 0)
    if negative.size:
        raise ValueError(
            f"sample_weight must be non-negative; row(s) {negative[:10].tolist()} have "
            f"negative weights (smallest {plain(float(weights.min()))})"
        )
    with np.errstate(over="ignore"):
        total = weights.sum()
    if not np.isfinite(total):
        raise ValueError(
            f"sample_weight sums to {total}, beyond float64 (largest weight "
            f"{plain(float(weights.max()))}): divide every weight by a common factor (as "
            "frequency weights their total is the sample size)"
        )
    if not total > 0:
        raise ValueError(
            "sample_weight is zero for every row: at least one row needs a positive weight"
        )
    return weights


def relative_weights(sample_weight: np.ndarray | None) -> np.ndarray | None:
    """Weights whose mean is below 1 scaled to mean 1; others as they are.

    A maximum-likelihood fit depends on the weights' ratios only, but EM counts rows in
    absolute terms (a component with a total weight below a small threshold is taken for
    empty and re-seeded; moments of a total weight below 1 are not defined). Scaling tiny
    weights up leaves the maximum-likelihood estimate unchanged and makes
    ``sample_weight=np.full(n, 1e-6)`` give the unweighted fit. Not for MAP fits, where
    the total weight is the sample size the prior is weighed against.

    Parameters
    ----------
    sample_weight : ndarray of shape (n_samples,) or None
        Positive weights (rows of weight 0 already dropped).
    """
    if sample_weight is None or sample_weight.size == 0:
        return sample_weight
    mean = float(sample_weight.mean())
    return sample_weight / mean if mean < 1.0 else sample_weight


def weight_total(sample_weight: np.ndarray | None, n_samples: int) -> float:
    """``W = sum_n w_n``, or ``n_samples`` without weights."""
    return float(n_samples) if sample_weight is None else float(np.sum(sample_weight))


def positive_rows(
    X: np.ndarray, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``X`` and the weights without the rows of weight zero (they change no fit)."""
    if sample_weight is None or np.all(sample_weight > 0):
        return X, sample_weight
    keep = sample_weight > 0
    return X[keep], sample_weight[keep]


def weighted_moments(
    X: np.ndarray, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of the data with rows repeated ``w_n`` times.

    ``mean = sum_n w_n x_n / W`` and ``cov = sum_n w_n (x_n - mean)(x_n - mean)^T / (W - 1)``
    (the identity when ``W <= 1``), which for integer weights are
    :func:`bayesgmm.core.priors.sample_moments` of the replicated rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    """
    from bayesgmm.core.priors import sample_moments

    if sample_weight is None:
        return sample_moments(X)
    X = np.asarray(X, dtype=np.float64)
    total = float(sample_weight.sum())
    mean = sample_weight @ X / total
    if total <= 1.0:
        return mean, np.eye(X.shape[1])
    centred = X - mean
    cov = (centred * sample_weight[:, None]).T @ centred / (total - 1.0)
    return mean, np.atleast_2d(cov)


def has_unequal(sample_weight: np.ndarray | None) -> bool:
    """Whether the weights differ between rows (equal weights change no clustering)."""
    return sample_weight is not None and bool(np.ptp(sample_weight) > 0)


__all__ = [
    "check_sample_weight",
    "has_unequal",
    "one_per_row",
    "positive_rows",
    "relative_weights",
    "weight_total",
    "weighted_moments",
]
