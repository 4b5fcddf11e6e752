"""Bundled data sets and the synthetic generator."""

import numpy as np
import pytest

from bayesgmm import datasets


@pytest.mark.parametrize(
    ("loader", "shape", "first_column"),
    [
        (datasets.load_faithful, (272, 2), "eruptions"),
        (datasets.load_galaxies, (82, 1), "velocity_1000kms"),
        (datasets.load_enzyme, (245, 1), "enzyme"),
        (datasets.load_acidity, (155, 1), "log_anc50"),
        (datasets.load_low_dim_gauss_mix, (1000, 1), "y"),
    ],
)
def test_bundled_data_load(loader, shape, first_column):
    X = loader()
    assert X.shape == shape and X.dtype == np.float64 and np.isfinite(X).all()
    frame = loader(as_frame=True)
    assert frame.columns[0] == first_column


def test_known_values_of_the_classics():
    faithful = datasets.load_faithful()
    # R: mean(faithful$eruptions) = 3.487783, mean(faithful$waiting) = 70.89706
    np.testing.assert_allclose(faithful.mean(axis=0), [3.487783, 70.89706], rtol=1e-6)
    galaxies = datasets.load_galaxies()
    # Roeder (1990): 82 velocities between 9.172 and 34.279 (1000 km/s), mean 20.83
    assert galaxies.min() == pytest.approx(9.172) and galaxies.max() == pytest.approx(34.279)
    assert galaxies.mean() == pytest.approx(20.83, abs=0.01)


def test_make_mixture_is_seeded_and_follows_its_parameters():
    X1, y1, params = datasets.make_mixture(4000, 3, 2, random_state=3)
    X2, _, _ = datasets.make_mixture(4000, 3, 2, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    for k in range(3):
        np.testing.assert_allclose(X1[y1 == k].mean(axis=0), params.means[k], atol=0.1)
    np.testing.assert_allclose(np.bincount(y1) / 4000, params.weights, atol=0.03)


@pytest.mark.parametrize("model", ["EII", "VVI", "EEE", "VEV", "EVE", "EEV"])
def test_decomposed_mixture_follows_the_models_letters(model):
    X, means, covs = datasets.make_decomposed_mixture(model, 50, 3, random_state=4)
    assert X.shape == (100, 3) and means.shape == (2, 3) and covs.shape == (2, 3, 3)
    values = np.linalg.eigvalsh(covs)
    volumes = np.prod(values, axis=1) ** (1 / 3)
    shapes = values / volumes[:, None]
    assert np.allclose(volumes[0], volumes[1]) == (model[0] == "E")
    assert np.allclose(shapes[0], shapes[1]) == (model[1] in "EI")
    diagonal = np.allclose(covs, np.eye(3) * np.diagonal(covs, axis1=1, axis2=2)[:, None, :])
    assert diagonal == (model[2] == "I")
    if model[2] == "E":  # one orientation: the covariances commute
        assert np.allclose(covs[0] @ covs[1], covs[1] @ covs[0])
    if model[1] == "I":
        assert np.allclose(shapes, 1.0)


def test_decomposed_mixture_names_a_bad_model():
    with pytest.raises(ValueError, match="mclust"):
        datasets.make_decomposed_mixture("XYZ", 10, 2)
