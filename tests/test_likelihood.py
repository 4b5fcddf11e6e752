"""The fused mixture log-likelihood Op: SciPy, the PyTensor graph, finite differences."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode, get_mode
from scipy import stats
from scipy.special import logsumexp

from bayesgmm.bayes import compiled
from bayesgmm.bayes.likelihood import (
    MixtureLogp,
    MixtureLogpAndGrad,
    MixtureLogpGrad,
    mixture_loglik,
    mixture_logp_grad_kernel,
    mixture_logp_kernel,
)
from bayesgmm.bayes.model import mixture_logp_graph
from bayesgmm.core.spec import MixtureSpec

STRUCTURES = ("full", "tied", "diag", "spherical")


def _inputs():
    return [
        pt.dmatrix("value"),
        pt.dvector("weights"),
        pt.dmatrix("means"),
        pt.dtensor3("chol"),
        pt.dvector("location"),
        pt.dvector("scale"),
    ]


@pytest.fixture(scope="module")
def functions():
    """Density and gradients (upstream ``g``) of the Op and of the graph written in PyTensor.

    The Op in PyTensor's Python backend (its ``perform``) and in numba (its numba dispatch,
    PyTensor 3's default backend: ``FAST_RUN`` is ``NUMBA``); the graph, the reference, in the
    Python backend (numba compiles its gradient for about 20 s).
    """
    inputs = _inputs()
    g = pt.dvector("g")
    fns = {}
    for name, mode, logp in (
        ("op", "FAST_COMPILE", mixture_loglik),
        ("op_numba", "NUMBA", mixture_loglik),
        ("graph", "FAST_COMPILE", mixture_logp_graph),
    ):
        out = logp(*inputs)
        grads = pt.grad((g * out).sum(), inputs[1:4])
        fns[name] = pytensor.function([*inputs, g], [out, *grads], mode=mode)
    return fns


def _case(structure: str, k: int, d: int, seed: int):
    """Random data and parameters; ``chol`` of the structure ((1, d, d) when tied)."""
    rng = np.random.default_rng(seed)
    n = 15
    value = rng.normal(2.0, 3.0, size=(n, d))
    weights = rng.dirichlet(np.full(k, 2.0))
    means = rng.normal(size=(k, d))
    n_chol = 1 if structure == "tied" else k
    if structure in ("full", "tied"):
        a = rng.normal(size=(n_chol, d, d))
        chol = np.linalg.cholesky(a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d))
    elif structure == "diag":
        chol = rng.uniform(0.3, 2.0, size=(k, d))[:, :, None] * np.eye(d)
    else:
        chol = rng.uniform(0.3, 2.0, size=(k, 1, 1)) * np.eye(d)
    location = rng.normal(size=d)
    scale = rng.uniform(0.5, 3.0, size=d)
    return value, weights, means, chol, location, scale


def _scipy(value, weights, means, chol, location, scale):
    x_z = (value - location) / scale
    chol = np.broadcast_to(chol, (len(weights), *chol.shape[1:]))
    comp = np.stack(
        [
            stats.multivariate_normal.logpdf(x_z, m, c @ c.T).reshape(len(value))
            for m, c in zip(means, chol, strict=True)
        ],
        axis=1,
    )
    return logsumexp(np.log(weights) + comp, axis=1) - np.log(scale).sum()


def _cases():
    return [
        (structure, k, d)
        for structure in STRUCTURES
        for k in (1, 2, 3)
        for d in (1, 2, 3)
        if not (structure == "spherical" and d == 1)
    ]


@pytest.mark.parametrize(("structure", "k", "d"), _cases())
def test_density_and_gradient_match_scipy_and_the_graph(functions, structure, k, d):
    args = _case(structure, k, d, seed=100 * k + d)
    g = np.random.default_rng(d).normal(size=len(args[0]))
    # the graph needs the shared factor broadcast; the Op reads the (1, d, d) one itself
    full = (*args[:3], np.broadcast_to(args[3], (k, d, d)).copy(), *args[4:])
    value, *grads = functions["graph"](*full, g)
    np.testing.assert_allclose(value, _scipy(*args), rtol=0, atol=1e-10)
    for name in ("op", "op_numba"):
        op_value, *op_grads = functions[name](*args, g)
        np.testing.assert_allclose(op_value, value, rtol=0, atol=1e-10)
        reference = list(grads)
        if structure == "tied":  # a shared factor's gradient: summed over the components
            reference[2] = reference[2].sum(axis=0, keepdims=True)
        reference[2] = np.tril(reference[2])
        for got, expected in zip(op_grads, reference, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("structure", ["full", "tied"])
def test_gradient_matches_central_differences(structure):
    args = list(_case(structure, 3, 2, seed=7))
    g = np.random.default_rng(0).normal(size=len(args[0]))

    def cost(*changed):
        return float(g @ mixture_logp_kernel(*args[:1], *changed, *args[4:]))

    analytic = mixture_logp_grad_kernel(*args, g)
    step = 1e-6
    for i, (param, grad) in enumerate(zip(args[1:4], analytic, strict=True)):
        for index in np.ndindex(param.shape):
            if i == 2 and index[-1] > index[-2]:  # the upper triangle is never read
                assert grad[index] == 0.0
                continue
            up, down = [list(args[1:4]) for _ in range(2)]
            up[i], down[i] = param.copy(), param.copy()
            up[i][index] += step
            down[i][index] -= step
            numeric = (cost(*up) - cost(*down)) / (2 * step)
            assert grad[index] == pytest.approx(numeric, rel=1e-6, abs=1e-7)


def test_broadcast_tied_factor_gets_the_summed_gradient():
    args = _case("tied", 3, 2, seed=3)
    inputs = _inputs()
    shared = pt.tensor("shared", dtype="float64", shape=(1, None, None))
    broadcast = pt.broadcast_to(shared, (3, 2, 2))
    op_cost = mixture_loglik(*inputs[:3], broadcast, *inputs[4:]).sum()
    graph_cost = mixture_logp_graph(*inputs[:3], broadcast, *inputs[4:]).sum()
    given = [*inputs[:3], shared, *inputs[4:]]
    fn = pytensor.function(given, [op_cost, pt.grad(op_cost, shared)])  # numba, rewritten
    # the reference in the Python backend (numba compiles the graph's gradient for 15-20 s)
    ref = pytensor.function(given, [graph_cost, pt.grad(graph_cost, shared)], mode="FAST_COMPILE")
    (value, grad), (expected_value, expected_grad) = fn(*args), ref(*args)
    assert value == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(grad, np.tril(expected_grad), rtol=1e-10, atol=1e-10)


def test_density_and_gradient_in_one_node_match_the_pair():
    """The rewrite puts one MixtureLogpAndGrad in place of the pair; same numbers as apart.

    In numba (PyTensor 3's default backend, ``FAST_RUN``) and in the Python backend with the
    same rewrites (the Ops' ``perform``); ``FAST_COMPILE`` leaves the rewrite out.
    """
    args = _case("full", 3, 2, seed=5)
    g = np.random.default_rng(1).normal(size=len(args[0]))
    inputs = _inputs()
    out = mixture_loglik(*inputs)
    grads = pt.grad((out * g).sum(), inputs[1:4])
    python = Mode(linker="py", optimizer=get_mode("NUMBA").optimizer)
    for mode in ("NUMBA", python):
        fused = pytensor.function(inputs, [out, *grads], mode=mode)
        ops = [type(node.op) for node in fused.maker.fgraph.toposort()]
        assert MixtureLogpAndGrad in ops and MixtureLogp not in ops
        apart = [
            pytensor.function(inputs, out, mode=mode)(*args),
            *pytensor.function(inputs, grads, mode=mode)(*args),
        ]
        for got, expected in zip(fused(*args), apart, strict=True):
            np.testing.assert_array_equal(got, expected)


def test_far_rows_and_data_gradients():
    """A row far from every component gives its finite log density (log-sum-exp shifted)."""
    value, weights, means, chol, location, scale = _case("full", 2, 2, seed=1)
    value[0] = [1e4, -1e4]
    out = mixture_loglik(value, weights, means, chol, location, scale).eval()
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(
        out, _scipy(value, weights, means, chol, location, scale), rtol=1e-12
    )
    # the observations and the standardisation are data: no gradient
    x = pt.dmatrix("x")
    cost = mixture_loglik(x, weights, means, chol, location, scale).sum()
    with pytest.raises(Exception, match="observations are data"):
        pt.grad(cost, x)


def test_op_refuses_inputs_of_the_wrong_rank():
    value, weights, means, chol, location, scale = _case("full", 2, 2, seed=1)
    with pytest.raises(ValueError, match="chol must have 3"):
        MixtureLogp()(value, weights, means, chol[0], location, scale)
    with pytest.raises(ValueError, match="weights must have 1"):
        MixtureLogpGrad()(value, weights[None], means, chol, location, scale, value[:, 0])


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_compiled_structure_matches_the_models_own_logp_and_gradient(faithful, covariance_type):
    """The NUTS target (numba, fused Op) against PyMC's own logp and dlogp (Python backend)."""
    spec = MixtureSpec.from_data(faithful, 2, covariance_type, "default")
    target = compiled.compiled_mixture(faithful, spec)
    target.set_data(faithful, spec)
    # density and gradient in one pass (fuse_mixture_logp_and_grad)
    ops = [type(node.op) for node in target._graph_logp_dlogp.function.maker.fgraph.toposort()]
    assert ops.count(MixtureLogpAndGrad) == 1
    assert MixtureLogp not in ops and MixtureLogpGrad not in ops
    model = target.model
    values = [model.rvs_to_values[model[name]] for name in target.free_names]
    logp = model.compile_logp(mode="FAST_COMPILE")
    dlogp = model.compile_dlogp(mode="FAST_COMPILE")
    start = model.initial_point()
    shapes = [np.shape(start[v.name]) for v in values]
    assert [v.name for v in model.value_vars] == [v.name for v in values]
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = rng.normal(0.0, 0.5, target.n_dim)
        point = {
            v.name: x[s].reshape(shape)
            for v, s, shape in zip(values, target.slices, shapes, strict=True)
        }
        # the NUTS target (bayesgmm.bayes.posterior_kernel's for full) and the graph behind it
        for fn in (target.logp_dlogp, target._graph_logp_dlogp):
            value, grad = fn(x)
            np.testing.assert_allclose(value, float(logp(point)), rtol=1e-11)
            np.testing.assert_allclose(grad, dlogp(point), rtol=1e-9, atol=1e-9)
    assert target.uses_kernel  # bayesgmm.bayes.kernels: full and tied


def test_gradients_compile_in_fast_compile_mode():
    """With the fusion rewrite in FAST_COMPILE, PyTensor's rewriting of these models'
    gradients never finished (minutes, against under a second without); a subprocess, so a
    regression fails here instead of hanging the suite."""
    code = (
        "from bayesgmm import datasets\n"
        "from bayesgmm.bayes.model import build_model\n"
        "from bayesgmm.core.spec import MixtureSpec\n"
        "X = datasets.load_faithful()\n"
        "for cov in ('full', 'diag'):\n"
        "    model = build_model(X, MixtureSpec.from_data(X, 2, cov, 'default'))\n"
        "    model.compile_dlogp(mode='FAST_COMPILE')\n"
        "print('compiled')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=True
    )
    assert out.stdout.strip().endswith("compiled")
