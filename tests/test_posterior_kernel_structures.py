"""The structures' hand-written NUTS targets (bayes/kernels/) against PyMC's and PyTensor's own."""

from __future__ import annotations

import numpy as np
import pytest
from pytensor.compile.mode import Mode

from bayesgmm.bayes import compiled, kernels, posterior_kernel
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.bayes.kernels import KernelFunctions, kernel_target
from bayesgmm.bayes.model import build_model
from bayesgmm.core.covariance import Diag
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.spec import MixtureSpec

#: PyMC's reference functions: PyTensor's rewrites, run by the Python linker (no compiling)
MODE_REF = Mode(linker="py", optimizer="fast_run")
STRUCTURES = ["full", "tied", "diag", "spherical"]


def _data(n_rows: int, d: int, seed: int) -> np.ndarray:
    """Correlated data on unequal scales, off the origin."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) + 2.0 * np.eye(d)
    return rng.normal(size=(n_rows, d)) @ mixing * rng.uniform(0.5, 20.0, d) + rng.normal(0, 5, d)


def _prior(covariance_type: str, K: int, d: int, seed: int) -> MixturePrior:
    """A proper prior unlike the default one, with the structure's covariance prior shape."""
    rng = np.random.default_rng(seed)
    root = rng.normal(size=(d, d)) + d * np.eye(d)
    scale = {
        "full": root @ root.T,
        "tied": root @ root.T,
        "diag": rng.uniform(0.2, 3.0, d),
        "spherical": float(rng.uniform(0.2, 3.0)),
    }[covariance_type]
    return MixturePrior(
        weight_concentration=rng.uniform(0.5, 3.0, K),
        mean_prior=rng.normal(0.0, 3.0, d),
        mean_precision=float(rng.uniform(0.05, 2.0)),
        degrees_of_freedom=float(d + rng.uniform(0.5, 5.0)),
        covariance_prior=scale,
        covariance_type=covariance_type,
    )


def _points(n_dim: int, seed: int) -> list[np.ndarray]:
    """Unconstrained points near the origin and far in the tails."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, s, n_dim) for s in (0.1, 0.5, 1.0, 2.0, 4.0)]


def _reference(model):
    """PyMC's own log density, gradient and traced values at ``x`` (Python linker)."""
    logp = model.compile_logp(mode=MODE_REF)
    dlogp = model.compile_dlogp(mode=MODE_REF)
    traced = model.replace_rvs_by_values([*model.free_RVs, *model.deterministics])
    values = model.compile_fn(
        traced, inputs=model.value_vars, mode=MODE_REF, point_fn=True, on_unused_input="ignore"
    )
    start = model.initial_point()
    names = [v.name for v in model.value_vars]
    shapes = [np.shape(start[name]) for name in names]
    ends = np.cumsum([0, *(int(np.prod(s)) for s in shapes)])

    def point(x):
        return {
            name: x[a:b].reshape(shape)
            for name, a, b, shape in zip(names, ends[:-1], ends[1:], shapes, strict=True)
        }

    def call(x):
        return float(logp(point(x))), np.asarray(dlogp(point(x))), values(point(x))

    return call, int(ends[-1])


def _assert_agree(expected, found):
    np.testing.assert_allclose(found[0], expected[0], rtol=1e-10, atol=0.0)
    scale = np.maximum(np.abs(expected[1]), 1.0)
    np.testing.assert_array_less(np.abs(found[1] - expected[1]) / scale, 1e-8)


def _target(X, spec, **kwargs):
    model = build_model(X, spec, **kwargs)
    return model, kernel_target(compiled.StructureKey.of(spec), model, X)


@pytest.mark.parametrize("n_features", [1, 2, 3])
@pytest.mark.parametrize("n_components", [1, 2, 3])
@pytest.mark.parametrize("covariance_type", STRUCTURES)
def test_kernels_equal_pymcs_density_gradient_and_transforms(
    covariance_type, n_components, n_features
):
    """Value 1e-10, gradient 1e-8 (relative) of PyMC's unconstrained logp; expand and
    unconstrain equal PyMC's transforms and invert each other."""
    X = _data(30, n_features, seed=n_components)
    prior = _prior(covariance_type, n_components, n_features, 3)
    spec = MixtureSpec.from_data(X, n_components, covariance_type, prior)
    model, target = _target(X, spec)
    assert target is kernels.KERNEL_TARGETS[type(spec.structure)]
    kernel, functions = target.logp_dlogp(model), KernelFunctions(target, model)
    reference, n_dim = _reference(model)
    assert functions.n_dim == n_dim
    n_free = len(functions.free_names)
    for seed in (0, 1):
        for x in _points(n_dim, seed):
            value, grad = kernel(x)
            assert np.isfinite(value) and grad.shape == (n_dim,)
            expected = reference(x)
            _assert_agree(expected, (value, grad))
            traced = functions.expand(x)
            assert [np.shape(v) for v in traced] == functions.trace_shapes
            # the one numba call (expand_values) gives the NumPy maps' bits
            by_numpy = functions.values(x)
            for name, found in zip(functions.trace_names, traced, strict=True):
                np.testing.assert_array_equal(found, by_numpy[name])
            for found, wanted in zip(traced, expected[2], strict=True):
                np.testing.assert_allclose(found, wanted, rtol=1e-12, atol=1e-300)
            # (L L^T factorised again: far in the tails, Sigma is ill-conditioned)
            back = functions.unconstrain(*traced[:n_free])
            np.testing.assert_allclose(back, x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_kernel_gradient_is_that_of_its_value(covariance_type):
    """Central differences of the kernel's own value (independent of PyMC)."""
    X = _data(25, 3, seed=5)
    spec = MixtureSpec.from_data(X, 3, covariance_type, _prior(covariance_type, 3, 3, 6))
    model, target = _target(X, spec)
    kernel = target.logp_dlogp(model)
    x = np.random.default_rng(7).normal(0.0, 0.4, KernelFunctions(target, model).n_dim)
    _, grad = kernel(x)
    step = 1e-6
    numeric = [
        (kernel(x + step * e)[0] - kernel(x - step * e)[0]) / (2 * step) for e in np.eye(x.size)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_kernel_on_many_rows_equals_pymc(covariance_type):
    """Enough rows that the kernel takes the log of its product of row sums several times."""
    X = _data(2000, 2, seed=8)
    spec = MixtureSpec.from_data(X, 3, covariance_type, "default")
    model, target = _target(X, spec)
    kernel = target.logp_dlogp(model)
    reference, n_dim = _reference(model)
    for x in _points(n_dim, 9)[:3]:
        _assert_agree(reference(x), kernel(x))


@pytest.mark.parametrize("covariance_type", STRUCTURES)
def test_kernel_backed_build_compiles_no_pytensor_function(covariance_type, faithful, monkeypatch):
    from pytensor.compile.maker import FunctionMaker

    def refuse(*args, **kwargs):
        raise AssertionError("a PyTensor function was compiled")

    monkeypatch.setattr(FunctionMaker, "__init__", refuse)
    spec = MixtureSpec.from_data(faithful, 2, covariance_type, "default")
    key = compiled.StructureKey.of(spec)
    target = compiled.CompiledMixture.build(faithful, spec, key)
    assert target.uses_kernel and target._graph is None
    # (the model holds the data it was built from; pymc's set_data evaluates a dim length)
    x = np.random.default_rng(0).normal(0.0, 0.5, target.n_dim)
    logp, stored = target.evaluate(np.stack([x, -x]))
    assert np.isfinite(logp).all() and set(stored) == set(target.trace_names)
    point = {name: stored[name][0] for name in target.free_names}
    np.testing.assert_allclose(target.unconstrained(point), x, atol=1e-10)
    # the check can fail: a structure without a kernel compiles its graph
    lkj = compiled.StructureKey.of(spec, "lkj")
    if covariance_type in ("full", "tied"):
        with pytest.raises(AssertionError, match="PyTensor function was compiled"):
            compiled.CompiledMixture.build(faithful, spec, lkj)


@pytest.mark.parametrize("case", ["noise", "lkj", "ordered", "weights", "missing", "switched off"])
@pytest.mark.parametrize("covariance_type", STRUCTURES)
def test_other_models_keep_the_pytensor_graph(case, covariance_type, faithful, monkeypatch):
    X, family, kwargs, noise = faithful, "niw", {}, False
    if case == "noise":
        noise = True
    elif case == "lkj":
        if covariance_type not in ("full", "tied"):
            pytest.skip("LKJ needs correlations")
        family = "lkj"
    elif case == "ordered":
        kwargs = {"order_basis": np.eye(2)}
    elif case == "weights":
        kwargs = {"sample_weight": np.ones(len(X))}
    elif case == "missing":
        X = X.copy()
        X[0, 1] = np.nan
    spec = MixtureSpec.from_data(X, 2, covariance_type, "default", noise=noise)
    model = build_model(X, spec, covariance_prior_family=family, **kwargs)
    key = compiled.StructureKey.of(spec, family, ordered_projection="order_basis" in kwargs)
    if case == "switched off":
        assert kernels.eligible(key, model, X)
        monkeypatch.setattr(posterior_kernel, "ENABLED", False)
    assert not kernels.eligible(key, model, X)


def test_kernel_targets_are_looked_up_along_the_structure_class():
    class Wide(Diag):
        pass

    assert kernels.lookup_kernel_target(Wide()) is kernels.DIAG
    with pytest.raises(TypeError, match="CovarianceStructure class"):
        kernels.register_kernel_target(Diag(), kernels.DIAG)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["faithful", "galaxies"])
@pytest.mark.parametrize("covariance_type", STRUCTURES)
def test_kernel_functions_equal_the_compiled_graphs(covariance_type, dataset, request):
    """The NUTS target (kernel) against the compiled PyTensor function it replaces, before
    and after set_data; expand and unconstrain bit for bit (numba's exp and log)."""
    if dataset == "galaxies" and covariance_type != "full":
        pytest.skip("one dimension: one structure is enough (the same ordered means)")
    faithful = request.getfixturevalue(dataset)
    d = faithful.shape[1]
    spec = MixtureSpec.from_data(faithful, 2, covariance_type, "default")
    target = compiled.compiled_mixture(faithful, spec)
    target.set_data(faithful, spec)
    assert target.uses_kernel
    graph = target.graph
    assert (graph.trace_names, graph.trace_shapes) == (target.trace_names, target.trace_shapes)
    assert (graph.free_names, graph.slices) == (target.free_names, target.slices)
    # the former check at the build: the graph's initial point
    _assert_agree(graph.logp_dlogp(graph.x0), target.logp_dlogp(graph.x0))
    other = _data(57, d, seed=12)
    other_spec = MixtureSpec.from_data(other, 2, covariance_type, _prior(covariance_type, 2, d, 13))
    n_free = len(target.free_names)
    for data, data_spec in ((faithful, spec), (other, other_spec)):
        target.set_data(data, data_spec)
        for x in _points(target.n_dim, 11):
            _assert_agree(graph.logp_dlogp(x), target.logp_dlogp(x))
            found, expected = target._expand(x), graph.expand(x)
            for a, b in zip(found, expected, strict=True):
                np.testing.assert_array_equal(a, b)
            constrained = [np.asarray(v, dtype=np.float64) for v in expected[:n_free]]
            np.testing.assert_array_equal(
                target._unconstrain(*constrained), graph.unconstrain(*constrained)
            )
    target.set_data(faithful, spec)


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical", "full 1-d"])
def test_fit_with_the_kernel_agrees_with_the_graph(covariance_type, faithful, monkeypatch):
    """The same posterior (within Monte Carlo error) with the kernel and with the graph."""
    if covariance_type == "full 1-d":
        covariance_type, faithful = "full", faithful[:, :1]
    settings = dict(draws=400, tune=300, chains=2, progressbar=False, em_n_init=1)
    fits = {}
    try:
        for enabled in (True, False):
            compiled.clear_cache()
            monkeypatch.setattr(posterior_kernel, "ENABLED", enabled)
            fit = BayesianGaussianMixture(
                2, covariance_type=covariance_type, random_state=5, **settings
            )
            fits[enabled] = fit.fit(faithful)
            spec = fits[enabled].spec_
            assert compiled.compiled_mixture(faithful, spec).uses_kernel == enabled
    finally:
        compiled.clear_cache()
    kernel, graph = (fits[e].idata_["posterior"] for e in (True, False))
    for name in ("weights", "means", "covariances"):
        a, b = kernel[name].values, graph[name].values
        assert not np.array_equal(a, b)  # two samplers' draws
        sd = np.maximum(a.std(axis=(0, 1)), b.std(axis=(0, 1)))
        gap = np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1)))
        # Monte Carlo error of a mean of ~800 correlated draws is below 0.15 sd
        np.testing.assert_array_less(gap, 0.3 * sd + 1e-12)
