"""The hand-written NUTS target of the full structure against PyMC's and PyTensor's own."""

from __future__ import annotations

import numpy as np
import pytest
from pytensor.compile.mode import Mode

from bayesgmm.bayes import compiled, posterior_kernel
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.bayes.model import build_model
from bayesgmm.bayes.posterior_kernel import PosteriorKernel, eligible, full_niw_logp_dlogp
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec

#: PyMC's reference functions: PyTensor's rewrites, run by the Python linker (no compiling;
#: the ``FAST_COMPILE`` rewrites did not finish on these models in minutes)
MODE_REF = Mode(linker="py", optimizer="fast_run")
SETTINGS = dict(draws=40, tune=40, chains=2, progressbar=False, em_n_init=1)


def _data(n_rows: int, d: int, seed: int) -> np.ndarray:
    """Correlated data on unequal scales, off the origin."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) + 2.0 * np.eye(d)
    return rng.normal(size=(n_rows, d)) @ mixing * rng.uniform(0.5, 20.0, d) + rng.normal(0, 5, d)


def _prior(K: int, d: int, seed: int) -> MixturePrior:
    """A proper prior unlike the default one (unequal concentrations, a correlated scale)."""
    rng = np.random.default_rng(seed)
    root = rng.normal(size=(d, d)) + d * np.eye(d)
    return MixturePrior(
        weight_concentration=rng.uniform(0.5, 3.0, K),
        mean_prior=rng.normal(0.0, 3.0, d),
        mean_precision=float(rng.uniform(0.05, 2.0)),
        degrees_of_freedom=float(d + rng.uniform(0.5, 5.0)),
        covariance_prior=root @ root.T,
        covariance_type="full",
    )


def _points(n_dim: int, seed: int) -> list[np.ndarray]:
    """Unconstrained points near the origin and far in the tails."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, s, n_dim) for s in (0.1, 0.5, 1.0, 2.0, 4.0)]


def _pymc_reference(model):
    """PyMC's own log density and gradient (Jacobians included), and the length of ``x``."""
    logp = model.compile_logp(mode=MODE_REF)
    dlogp = model.compile_dlogp(mode=MODE_REF)
    start = model.initial_point()
    names = [v.name for v in model.value_vars]
    shapes = [np.shape(start[name]) for name in names]
    ends = np.cumsum([0, *(int(np.prod(s)) for s in shapes)])

    def call(x):
        point = {
            name: x[a:b].reshape(shape)
            for name, a, b, shape in zip(names, ends[:-1], ends[1:], shapes, strict=True)
        }
        return float(logp(point)), np.asarray(dlogp(point))

    return call, int(ends[-1])


def _assert_agree(expected, found):
    np.testing.assert_allclose(found[0], expected[0], rtol=1e-10, atol=0.0)
    scale = np.maximum(np.abs(expected[1]), 1.0)
    np.testing.assert_array_less(np.abs(found[1] - expected[1]) / scale, 1e-8)


@pytest.mark.parametrize("n_features", [2, 3])
@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_kernel_equals_pymcs_log_density_and_gradient(n_components, n_features):
    """Value to 1e-10 and gradient to 1e-8 (relative) of PyMC's own unconstrained logp."""
    X = _data(30, n_features, seed=n_components)
    spec = MixtureSpec.from_data(X, n_components, "full", _prior(n_components, n_features, 3))
    model = build_model(X, spec)
    key = compiled.StructureKey.of(spec)
    assert eligible(key, model, X)
    (reference, n_dim), kernel = _pymc_reference(model), PosteriorKernel(model)
    for seed in (0, 1):
        for x in _points(n_dim, seed):
            value, grad = kernel(x)
            assert np.isfinite(value) and grad.shape == (n_dim,)
            _assert_agree(reference(x), (value, grad))


def test_kernel_on_many_rows_equals_pymc():
    """Enough rows that the kernel takes the log of its product of row sums several times."""
    X = _data(2000, 2, seed=8)
    spec = MixtureSpec.from_data(X, 3, "full", "default")
    model = build_model(X, spec)
    (reference, n_dim), kernel = _pymc_reference(model), PosteriorKernel(model)
    for x in _points(n_dim, 9)[:3]:
        _assert_agree(reference(x), kernel(x))


def test_kernel_runs_without_fast_math_and_gil_from_threads(faithful):
    """Reproducible (no fast-math), GIL-free, and the same answer from concurrent threads."""
    from concurrent.futures import ThreadPoolExecutor

    options = full_niw_logp_dlogp.targetoptions
    assert options["nogil"] and not options.get("fastmath")
    spec = MixtureSpec.from_data(faithful, 2, "full", "default")
    kernel = PosteriorKernel(build_model(faithful, spec))
    points = _points(11, 15) * 8
    alone = [kernel(x) for x in points]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(kernel, points))
    for (a, ga), (b, gb) in zip(alone, together, strict=True):
        assert a == b and np.array_equal(ga, gb)


def test_kernel_gradient_is_that_of_its_value():
    """Central differences of the kernel's own value (independent of PyMC)."""
    X = _data(25, 3, seed=5)
    spec = MixtureSpec.from_data(X, 3, "full", _prior(3, 3, 6))
    kernel = PosteriorKernel(build_model(X, spec))
    x = np.random.default_rng(7).normal(0.0, 0.4, 2 + 3 * 6 + 3 * 3)
    _, grad = kernel(x)
    step = 1e-6
    numeric = [
        (kernel(x + step * e)[0] - kernel(x - step * e)[0]) / (2 * step) for e in np.eye(x.size)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-5)


def test_kernel_one_component_one_row_closed_form():
    """K=1, one observation at the prior mean, at the origin of the unconstrained space.

    There ``Sigma = I``, ``mu = 0``: the density is the Inverse-Wishart, the means prior
    and the likelihood at the identity, written out with scipy.
    """
    from scipy import stats

    psi = np.array([[2.0, 0.3], [0.3, 1.0]])
    args = (
        np.zeros((1, 2)),  # one row at the origin (scale 1: no standardisation)
        np.zeros(2),
        np.ones(2),
        np.ones(1),
        np.zeros(2),
        0.5,
        5.0,
        np.linalg.cholesky(psi),
    )
    constant = posterior_kernel.prior_constant(args[3], args[5], args[6], args[7])
    value, _ = full_niw_logp_dlogp(np.zeros(5), *args, constant)
    expected = (
        stats.invwishart(df=5.0, scale=psi).logpdf(np.eye(2))
        + stats.multivariate_normal(np.zeros(2), np.eye(2) / 0.5).logpdf(np.zeros(2))
        + stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(np.zeros(2))
        + 2 * np.log(2.0)  # the Cholesky transform's Jacobian at y = 0
    )
    np.testing.assert_allclose(value, expected, rtol=1e-12)


@pytest.mark.slow
def test_compiled_structure_uses_the_kernel_and_follows_set_data(faithful):
    """The compiled target is the kernel, equal to the PyTensor graph before and after set_data."""
    spec = MixtureSpec.from_data(faithful, 2, "full", "default")
    target = compiled.compiled_mixture(faithful, spec)
    target.set_data(faithful, spec)
    assert target.uses_kernel and isinstance(target._logp_dlogp, PosteriorKernel)
    graph = target._graph_logp_dlogp
    for x in _points(target.n_dim, 11):
        _assert_agree(graph(x), target.logp_dlogp(x))
    # another data set (other size and scales) and another prior
    other = _data(57, 2, seed=12)
    other_spec = MixtureSpec.from_data(other, 2, "full", _prior(2, 2, 13))
    before = target.logp_dlogp(np.zeros(target.n_dim))[0]
    target.set_data(other, other_spec)
    after = target.logp_dlogp(np.zeros(target.n_dim))[0]
    assert after != before
    for x in _points(target.n_dim, 14):
        _assert_agree(graph(x), target.logp_dlogp(x))
    target.set_data(faithful, spec)
    assert target.logp_dlogp(np.zeros(target.n_dim))[0] == before


@pytest.mark.slow
def test_fit_samples_with_the_kernel_and_is_reproducible(faithful):
    fits = [
        BayesianGaussianMixture(2, covariance_type="full", random_state=3, **SETTINGS).fit(faithful)
        for _ in range(2)
    ]
    target = compiled.compiled_mixture(faithful, fits[0].spec_)
    assert target.uses_kernel
    first, second = (fit.idata_["posterior"] for fit in fits)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(first[name].values, second[name].values)
    # the posterior is that of the data: the two geyser clusters (short and long eruptions)
    means = np.sort(first["means"].mean(("chain", "draw")).values[:, 0])
    np.testing.assert_allclose(means, [2.04, 4.29], atol=0.15)


@pytest.mark.parametrize(
    "case",
    ["tied", "diag", "spherical", "noise", "lkj", "ordered", "weights", "missing"],
)
def test_other_structures_keep_the_pytensor_graph(case, faithful):
    X, K, covariance_type, family, kwargs, noise = faithful, 2, "full", "niw", {}, False
    if case in ("tied", "diag", "spherical"):
        covariance_type = case
    elif case == "noise":
        noise = True
    elif case == "lkj":
        family = "lkj"
    elif case == "ordered":
        kwargs = {"order_basis": np.eye(2)}
    elif case == "weights":
        kwargs = {"sample_weight": np.ones(len(X))}
    else:
        X = X.copy()
        X[0, 1] = np.nan
    spec = MixtureSpec.from_data(X, K, covariance_type, "default", noise=noise)
    model = build_model(X, spec, covariance_prior_family=family, **kwargs)
    key = compiled.StructureKey.of(spec, family, ordered_projection="order_basis" in kwargs)
    assert not eligible(key, model, X)


def test_switch_turns_the_kernel_off(faithful, monkeypatch):
    spec = MixtureSpec.from_data(faithful, 2, "full", "default")
    model = build_model(faithful, spec)
    key = compiled.StructureKey.of(spec)
    assert eligible(key, model, faithful)
    monkeypatch.setattr(posterior_kernel, "ENABLED", False)
    assert not eligible(key, model, faithful)
