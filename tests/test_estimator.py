"""scikit-learn conformity of BayesianGaussianMixture, and a light ``import bayesgmm``.

``BayesianGaussianMixture(method="map")`` runs scikit-learn's estimator checks (the MAP
path builds the PyMC model but draws nothing, so the checks take seconds). Importing the
package and fitting by EM must not load PyMC, PyTensor or ArviZ: that is checked in a fresh
interpreter, because this test session has long imported them.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm.bayes.estimator import BayesianGaussianMixture

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pymc", "pytensor", "arviz")
#: The session's compilation caches reach the clean interpreter: with ``NUMBA_CACHE_DIR`` set
#: (as for a timed run with empty caches) it would otherwise compile the EM kernels again
#: into ``__pycache__`` (108 s of a 120 s timeout on the shared machine at load 8); and with
#: them the optimisation level of the code in them (``NUMBA_OPT``, ``tests/conftest.py``).
CACHES = {
    k: os.environ[k] for k in ("NUMBA_CACHE_DIR", "PYTENSOR_FLAGS", "NUMBA_OPT") if k in os.environ
}

#: Estimator checks that fail by design, with the reason.
EXPECTED_FAILED_CHECKS = {
    "check_fit1d": "a 1-D X is accepted on purpose as one feature (univariate mixtures)",
    "check_sample_weight_equivalence_on_dense_data": "its data have 30 features and fewer "
    "rows: the data-scaled default prior is improper there, and fit says so (the weighted "
    "model equals the replicated rows' in tests/test_weights.py)",
}


def _map_estimator() -> BayesianGaussianMixture:
    return BayesianGaussianMixture(method="map", pointwise=False, random_state=0, progressbar=False)


@parametrize_with_checks(
    [_map_estimator()], expected_failed_checks=lambda _: EXPECTED_FAILED_CHECKS
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "", "MPLBACKEND": "Agg", **CACHES},
        timeout=120,
        check=False,
    )


def test_import_and_em_fit_load_no_pymc_pytensor_or_arviz():
    result = _run(
        """
        import sys

        import numpy as np

        import bayesgmm

        X = np.random.default_rng(0).normal(size=(200, 2))
        model = bayesgmm.GaussianMixture(2, random_state=0).fit(X)
        assert model.converged_
        print(" ".join(sorted(sys.modules)))
        """
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "bayesgmm.em.estimator" in loaded  # the probe ran
    heavy = [name for name in loaded if name.split(".")[0].startswith(HEAVY)]
    assert not heavy, heavy


def test_bayesian_estimator_is_a_lazy_package_attribute():
    result = _run(
        """
        import sys

        import bayesgmm

        assert "BayesianGaussianMixture" in bayesgmm.__all__
        assert "BayesianGaussianMixture" in dir(bayesgmm)
        assert "pymc" not in sys.modules
        from bayesgmm import BayesianGaussianMixture
        from bayesgmm.bayes.estimator import BayesianGaussianMixture as defined
        assert BayesianGaussianMixture is defined and "pymc" in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(AttributeError, match="no attribute 'Nonsense'"):
        import bayesgmm

        bayesgmm.Nonsense  # noqa: B018


def test_command_line_help_loads_nothing_heavier_than_numpy():
    result = _run(
        """
        import sys

        from bayesgmm.cli import build_parser

        build_parser().format_help()
        print(" ".join(sorted(sys.modules)))
        """
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "bayesgmm.cli" in loaded
    # NumPy comes with the covariance registry, which names the --covariance choices
    heavy = [n for n in loaded if n.split(".")[0] in ("scipy", "pandas", "sklearn", *HEAVY)]
    assert not heavy, heavy
