"""A uniform background ("noise") component for outliers, as mclust's ``Vinv``.

The model adds to the K Gaussian components one component of constant density ``1 / V``
over a region of hypervolume ``V`` (Banfield & Raftery 1993; Fraley & Raftery 2002):

    p(x) = sum_k w_k N(x | mu_k, Sigma_k) + w_0 / V,      w_0 + sum_k w_k = 1.

Conventions used everywhere in the package:

* ``w_0`` is the **noise weight** (``noise_weight_`` of the estimators, ``noise_weight`` in
  a posterior). The Gaussian weights ``w_k`` of the estimators' ``weights_`` and of a
  posterior's ``weights`` are absolute, so ``weights_.sum() + noise_weight_ == 1``.
  A :class:`~bayesgmm.core.params.MixtureParams` holds the Gaussian part as a mixture of its own,
  with the **conditional** weights ``w_k / (1 - w_0)`` (they sum to one).
* The default region is the data's bounding box: ``V = prod_j (max_j - min_j)``, the
  first of mclust's ``hypvol`` volumes (mclust also tries the box of the principal
  components and keeps the smaller). A user-given ``noise_volume`` replaces it.
* The prior on ``(w_1, ..., w_K, w_0)`` is a Dirichlet with one entry more than the
  Gaussian weights' (:func:`noise_concentration`).
* Working (standardised) scale: the density of ``x_z = (x - location) / scale`` is
  ``prod(scale) / V``, so the working-scale volume is ``V / prod(scale)``
  (:meth:`NoiseComponent.working_log_density`).

Everything here imports NumPy only.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from bayesgmm.core.validation import plain

#: Noise weight that EM starts from when no ``noise_init`` is given.
NOISE_WEIGHT_START = 0.05


def check_noise_volume(volume) -> float | None:
    """``None``, or ``volume`` as a positive finite float; else ``ValueError`` naming it."""
    if volume is None:
        return None
    if (
        isinstance(volume, bool | np.bool_)
        or not isinstance(volume, numbers.Real)
        or not np.isfinite(volume)
        or not volume > 0
    ):
        raise ValueError(
            f"noise_volume must be None (the data's bounding box) or a positive finite "
            f"number (the hypervolume of the uniform noise component), got {plain(volume)}"
        )
    return float(volume)


def bounding_box(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value of every feature, each of shape (n_features,)."""
    X = np.asarray(X, dtype=np.float64)
    return X.min(axis=0), X.max(axis=0)


@dataclass(frozen=True)
class NoiseComponent:
    """The uniform background component: its hypervolume and region on the user's scale.

    Build it with :meth:`from_data`.

    Attributes
    ----------
    volume : float
        Hypervolume ``V`` (the product of the box's sides unless given).
    lower, upper : ndarray of shape (n_features,)
        The data's bounding box. With a user-given volume it is only used by ``sample``,
        which draws noise points from this box scaled about its centre to volume ``V``.
    """

    volume: float
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def from_data(cls, X: np.ndarray, volume: float | None = None) -> NoiseComponent:
        """The noise component of data ``X`` (n_samples, n_features).

        Raises
        ------
        ValueError
            ``volume`` is not positive and finite, or (``volume=None``) a feature is
            constant or the box's volume under- or overflows: give ``noise_volume``.
        """
        volume = check_noise_volume(volume)
        lower, upper = bounding_box(X)
        if volume is None:
            sides = upper - lower
            with np.errstate(over="ignore", under="ignore", divide="ignore"):
                log_volume = float(np.sum(np.log(sides)))
            if not (np.all(sides > 0) and np.isfinite(log_volume)):
                raise ValueError(
                    "the data's bounding box has no usable volume (a constant feature, or a "
                    f"volume beyond float64: log-volume {log_volume}); give noise_volume"
                )
            volume = float(np.exp(log_volume))
            if not (np.isfinite(volume) and volume > 0):
                raise ValueError(
                    f"the data's bounding box volume exp({log_volume:.4g}) is beyond float64; "
                    "give noise_volume (or rescale the data)"
                )
        lower.setflags(write=False)
        upper.setflags(write=False)
        return cls(volume, lower, upper)

    @property
    def n_features(self) -> int:
        """Dimension of the region."""
        return self.lower.shape[0]

    @property
    def log_density(self) -> float:
        """``-log V``: the log-density of the noise component on the user's scale."""
        return -float(np.log(self.volume))

    def working_log_density(self, scale: np.ndarray) -> float:
        """Log-density of the noise on the scale ``x_z = (x - location) / scale``.

        ``-log V + sum(log scale)``: the volume shrinks by ``prod(scale)``.
        """
        return self.log_density + float(np.sum(np.log(scale)))

    def sample(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform draws from the region, shape (n_samples, n_features).

        The region is the bounding box scaled about its centre to volume ``V`` (the box
        itself when ``V`` is the box's volume): :func:`sample_region`.
        """
        return sample_region(self.lower, self.upper, np.log(self.volume), n_samples, rng)


def sample_region(
    lower: np.ndarray,
    upper: np.ndarray,
    log_volume: float,
    n_samples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Uniform draws from the box ``[lower, upper]`` scaled about its centre to ``log_volume``.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
    """
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    sides = np.where(upper > lower, upper - lower, 1.0)
    ratio = np.exp((float(log_volume) - np.sum(np.log(sides))) / lower.shape[0])
    half = 0.5 * sides * ratio
    centre = 0.5 * (upper + lower)
    return centre + rng.uniform(-1.0, 1.0, (n_samples, lower.shape[0])) * half


def noise_concentration(weight_concentration, n_components: int) -> np.ndarray:
    """Dirichlet concentration of ``(w_1, ..., w_K, w_0)``: shape (n_components + 1,).

    A scalar ``a0`` is used for every entry (a symmetric Dirichlet over K + 1 entries);
    an array of length K gets ``1`` appended for the noise entry; an array of length
    K + 1 is used as it is (its last entry is the noise's).
    """
    conc = np.asarray(weight_concentration, dtype=np.float64)
    if conc.ndim == 0:
        return np.full(n_components + 1, float(conc))
    if conc.shape == (n_components,):
        return np.append(conc, 1.0)
    if conc.shape == (n_components + 1,):
        return conc.copy()
    raise ValueError(
        f"weight_concentration has shape {conc.shape}: with a noise component give a scalar, "
        f"{n_components} values (the noise entry is then 1) or {n_components + 1} values "
        "(the last for the noise)"
    )


def check_noise_init(noise_init, n_samples: int) -> np.ndarray | None:
    """Initial noise probabilities, shape (n_samples,), from bools or numbers in [0, 1].

    Raises
    ------
    ValueError
        Wrong shape, values outside [0, 1] or not finite, or every point marked as noise.
    """
    if noise_init is None:
        return None
    values = np.asarray(noise_init)
    if values.shape != (n_samples,):
        raise ValueError(
            f"noise_init must have shape (n_samples,) = ({n_samples},): one bool or "
            f"probability per row of X, got shape {values.shape}"
        )
    try:
        values = values.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError("noise_init must hold bools or probabilities in [0, 1]") from None
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1):
        raise ValueError("noise_init must hold bools or probabilities in [0, 1]")
    if np.all(values >= 0.5):
        raise ValueError("noise_init marks every point as noise: leave some for the Gaussians")
    return values


def with_noise_column(
    log_joint: np.ndarray, noise_weight: np.ndarray | float, log_noise_density: float
) -> np.ndarray:
    """Append ``log w_0 + log(1 / V)`` to Gaussian log joint densities.

    Parameters
    ----------
    log_joint : ndarray of shape (..., n_samples, n_components)
        ``log w_k + log N(x_n | mu_k, Sigma_k)`` with absolute weights ``w_k``.
    noise_weight : float or ndarray of shape (...)
        ``w_0`` (one per draw for a stack of draws).
    log_noise_density : float
        ``-log V`` on the scale of ``log_joint``.

    Returns
    -------
    ndarray of shape (..., n_samples, n_components + 1)
        The last column is the noise component's.
    """
    with np.errstate(divide="ignore"):
        noise = np.log(np.asarray(noise_weight, dtype=np.float64)) + log_noise_density
    column = np.broadcast_to(np.asarray(noise)[..., None, None], (*log_joint.shape[:-1], 1))
    return np.concatenate([log_joint, column], axis=-1)


__all__ = [
    "NOISE_WEIGHT_START",
    "NoiseComponent",
    "bounding_box",
    "check_noise_init",
    "check_noise_volume",
    "noise_concentration",
    "sample_region",
    "with_noise_column",
]
