"""Small real data sets shipped with the package, and seeded synthetic mixtures
(:func:`make_mixture`; :func:`make_decomposed_mixture`, whose covariances follow one of
mclust's models).

=====================  ========  ==========================================================
loader                 shape     source
=====================  ========  ==========================================================
``load_faithful``      272 x 2   Old Faithful geyser, eruption duration (min) and waiting
                                 time (min). Azzalini & Bowman (1990), *A look at some data
                                 on the Old Faithful geyser*, Applied Statistics 39, 357-365;
                                 as distributed in R's ``datasets::faithful``.
``load_galaxies``      82 x 1    Velocities (1000 km/s) of galaxies in the Corona Borealis
                                 region. Roeder (1990), JASA 85, 617-624; the version used by
                                 Richardson & Green (1997), JRSS-B 59, 731-792.
``load_enzyme``        245 x 1   Enzymatic activity in the blood of 245 individuals. Bechtel
                                 et al. (1993); used by Richardson & Green (1997).
``load_acidity``       155 x 1   Log acid-neutralising capacity of 155 Wisconsin lakes.
                                 Crawford et al. (1992); used by Richardson & Green (1997).
``load_low_dim_gauss_mix``  1000 x 1   Simulated two-component mixture, posteriordb data set
                                 ``low_dim_gauss_mix`` (Magnusson et al., posteriordb).
=====================  ========  ==========================================================

Licence: the geyser, galaxy, enzyme and acidity data are published scientific
measurements redistributed with R and in the literature cited above for research and
teaching; posteriordb is released under the MIT / CC-BY-4.0 licences. Cite the sources
above when you publish results based on them.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from bayesgmm.core.params import MixtureParams
from bayesgmm.core.validation import check_positive_int
from bayesgmm.datasets.decomposed import decomposed_covariances, make_decomposed_mixture
from bayesgmm.posterior.draws import sample_mixture

_FILES = {
    "faithful": "faithful.csv",
    "galaxies": "galaxies.csv",
    "enzyme": "enzyme.csv",
    "acidity": "acidity.csv",
    "low_dim_gauss_mix": "low_dim_gauss_mix.csv",
}


def _load(name: str, as_frame: bool) -> np.ndarray | pd.DataFrame:
    with resources.files(__package__).joinpath("data", _FILES[name]).open("r") as handle:
        frame = pd.read_csv(handle)
    return frame if as_frame else frame.to_numpy(dtype=np.float64)


def load_faithful(*, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
    """Old Faithful eruptions and waiting times.

    Returns
    -------
    ndarray of shape (272, 2), or a DataFrame with columns ``eruptions``, ``waiting``.
    """
    return _load("faithful", as_frame)


def load_galaxies(*, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
    """Galaxy velocities in 1000 km/s (Roeder 1990).

    Returns
    -------
    ndarray of shape (82, 1), or a DataFrame with column ``velocity_1000kms``.
    """
    return _load("galaxies", as_frame)


def load_enzyme(*, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
    """Enzymatic activity (Bechtel et al. 1993). ndarray of shape (245, 1) or a DataFrame."""
    return _load("enzyme", as_frame)


def load_acidity(*, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
    """Log acid-neutralising capacity of lakes (Crawford et al. 1992), shape (155, 1)."""
    return _load("acidity", as_frame)


def load_low_dim_gauss_mix(*, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
    """posteriordb's simulated two-component 1-D mixture, shape (1000, 1)."""
    return _load("low_dim_gauss_mix", as_frame)


def make_mixture(
    n_samples: int = 500,
    n_components: int = 3,
    n_features: int = 2,
    *,
    separation: float = 4.0,
    weights: np.ndarray | None = None,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, MixtureParams]:
    """Draw a synthetic data set from a random Gaussian mixture.

    Component means are placed ``separation`` standard deviations apart along random
    directions; covariances are random, with eigenvalues between 0.5 and 1.5.

    Parameters
    ----------
    n_samples, n_components, n_features : int
    separation : float
        Distance between consecutive component means, in units of component sd.
    weights : ndarray of shape (n_components,), optional
        Mixing weights (default equal).
    random_state : int, Generator or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    params : MixtureParams
        The true mixture (components ordered by their first mean coordinate).
    """

    n_samples = check_positive_int(n_samples, "n_samples")
    n_components = check_positive_int(n_components, "n_components")
    n_features = check_positive_int(n_features, "n_features")
    rng = np.random.default_rng(random_state)
    directions = rng.standard_normal((n_components, n_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = np.cumsum(separation * directions, axis=0)
    means[:, 0] = separation * np.arange(n_components)
    rotations = np.linalg.qr(rng.standard_normal((n_components, n_features, n_features)))[0]
    eigen = rng.uniform(0.5, 1.5, size=(n_components, n_features))
    covariances = np.einsum("kij,kj,klj->kil", rotations, eigen, rotations)
    if weights is None:
        weights = np.full(n_components, 1.0 / n_components)
    params = MixtureParams(np.asarray(weights, dtype=np.float64), means, covariances, "full")
    X, labels = sample_mixture(
        params.weights, params.means, params.full_covariances(), n_samples, rng
    )
    return X, labels, params


__all__ = [
    "decomposed_covariances",
    "load_acidity",
    "load_enzyme",
    "load_faithful",
    "load_galaxies",
    "load_low_dim_gauss_mix",
    "make_decomposed_mixture",
    "make_mixture",
]
