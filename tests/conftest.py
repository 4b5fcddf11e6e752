"""Shared fixtures: bundled data sets and seeded synthetic mixtures."""

import numpy as np
import pytest

from bayesgmm import datasets


@pytest.fixture(scope="session")
def faithful() -> np.ndarray:
    return datasets.load_faithful()


@pytest.fixture(scope="session")
def galaxies() -> np.ndarray:
    return datasets.load_galaxies()


@pytest.fixture(scope="session")
def three_blobs() -> tuple[np.ndarray, np.ndarray]:
    X, labels, _ = datasets.make_mixture(300, 3, 2, separation=5.0, random_state=7)
    return X, labels
