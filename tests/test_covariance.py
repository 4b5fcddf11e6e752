"""The covariance-structure registry against scikit-learn, SciPy and closed forms."""

import contextlib
from typing import ClassVar

import numpy as np
import pytest
from scipy import stats
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

from bayesgmm import GaussianMixture, MixtureParams, datasets
from bayesgmm.core import covariance as cov_module
from bayesgmm.core.covariance import (
    MCLUST_ALIASES,
    MCLUST_MODELS,
    CovarianceStructure,
    Diag,
    Full,
    Spherical,
    covariance_types,
    get_structure,
)
from bayesgmm.core.exceptions import SingularCovarianceError
from bayesgmm.em.backends import kernel_layout, structure_kernels, structure_loop

K, D = 3, 2


def _random_params(covariance_type: str, rng: np.random.Generator) -> MixtureParams:
    structure = get_structure(covariance_type)
    a = rng.normal(size=(K, D, D))
    full = a @ np.swapaxes(a, -1, -2) + D * np.eye(D)
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
        "spherical": np.trace(full, axis1=1, axis2=2) / D,
    }[structure.name]
    return MixtureParams(
        rng.dirichlet(np.ones(K)), rng.normal(size=(K, D)), covariances, covariance_type
    )


def test_registry_lists_the_structures_and_rejects_others():
    # the four classic structures, then mclust's ten other models
    assert covariance_types()[:4] == ("full", "tied", "diag", "spherical")
    assert set(covariance_types()[4:]) == set(MCLUST_MODELS) - {"VVV", "EEE", "VVI", "VII"}
    # mclust's names of the classic four are the same objects
    for alias, name in MCLUST_ALIASES.items():
        assert get_structure(alias) is get_structure(name)
        assert get_structure(name).mclust_name == alias
    with pytest.raises(ValueError, match="choose one of"):
        get_structure("banana")
    assert get_structure(get_structure("diag")) is get_structure("diag")


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_structure_matches_scikit_learn_and_scipy(covariance_type):
    rng = np.random.default_rng(3)
    structure = get_structure(covariance_type)
    params = _random_params(covariance_type, rng)
    X = rng.normal(size=(20, D))
    # precision Cholesky factors in scikit-learn's layout
    np.testing.assert_allclose(
        structure.precisions_cholesky(params.covariances),
        _compute_precision_cholesky(params.covariances, covariance_type),
        rtol=1e-12,
    )
    # parameter count as scikit-learn's _n_parameters (weights and means added)
    sk = SkGaussianMixture(K, covariance_type=covariance_type)
    sk.means_ = params.means
    assert structure.n_parameters(K, D) + K * D + K - 1 == sk._n_parameters()
    # log-densities against SciPy with the expanded full matrices
    full = structure.expand(params.covariances, K, D)
    expected = np.column_stack(
        [stats.multivariate_normal(params.means[k], full[k]).logpdf(X) for k in range(K)]
    )
    got = structure.log_gaussian_prob(X, params.means, params.precisions_cholesky)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # precisions and their inverse
    precisions = structure.precisions(params.precisions_cholesky)
    np.testing.assert_allclose(
        structure.covariances_from_precisions(precisions), params.covariances, rtol=1e-10
    )
    # the free entries cover the expanded matrices' distinct values exactly
    entries = structure.entries(K, D)
    assert len(entries) == structure.n_parameters(K, D)
    values = {round(float(full[k, i, j]), 12) for _, (k, i, j) in entries}
    distinct = {round(float(v), 12) for v in np.unique(np.tril(full).ravel()) if v != 0}
    assert values == distinct


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_rescaling_is_the_change_of_variables(covariance_type):
    rng = np.random.default_rng(4)
    params = _random_params(covariance_type, rng)
    shift = np.array([10.0, -3.0])
    scale = get_structure(covariance_type).working_scale(np.array([2.0, 0.5]))
    moved = params.rescaled(shift, scale)
    X = rng.normal(size=(15, D))
    from bayesgmm.em import e_step

    # log p_Y(shift + scale x) = log p_X(x) - sum(log scale)
    np.testing.assert_allclose(
        e_step(shift + scale * X, moved)[1],
        e_step(X, params)[1] - np.log(scale).sum(),
        rtol=1e-10,
    )


def test_singular_covariance_names_the_component():
    covs = np.stack([np.eye(2), np.array([[1.0, 1.0], [1.0, 1.0]]), np.eye(2)])
    with pytest.raises(SingularCovarianceError, match="component 1"):
        get_structure("full").precisions_cholesky(covs)
    with pytest.raises(SingularCovarianceError, match="component 2"):
        get_structure("diag").precisions_cholesky(np.array([[1.0, 1.0], [1, 2], [0, 1]]))


def test_tied_structure_cannot_reseed_one_component():
    assert get_structure("tied").reseed(np.eye(2), 0, np.eye(2)) is None
    reseeded = get_structure("diag").reseed(np.ones((2, 2)), 1, np.diag([4.0, 9.0]))
    np.testing.assert_array_equal(reseeded, [[1.0, 1.0], [4.0, 9.0]])


@contextlib.contextmanager
def _registered(structure: type[CovarianceStructure]):
    """``structure`` in the registry for the duration of the block (the one registration)."""
    cov_module.register(structure)
    try:
        yield get_structure(structure.name)
    finally:
        cov_module._REGISTRY.pop(structure.name)


class FullCopy(Full):
    """A new structure registered in this module only: its parent's maths and backends."""

    name = "full_copy"


class SphericalCopy(Spherical):
    name = "spherical_copy"


class DiagByNumPy(Diag):
    """Diagonal covariances whose densities and M-step are written here (via the parent's).

    Overriding the methods the compiled code stands in for takes the structure off the
    fused kernels and the compiled loop: EM runs the NumPy steps, which call these.
    """

    name = "diag_numpy"
    calls: ClassVar[dict[str, int]] = {"log_gaussian_prob": 0, "m_step": 0}

    def log_gaussian_prob(self, X, means, precisions_cholesky):
        self.calls["log_gaussian_prob"] += 1
        return super().log_gaussian_prob(X, means, precisions_cholesky)

    def m_step(self, stats, prior, reg_covar):
        self.calls["m_step"] += 1
        return super().m_step(stats, prior, reg_covar)


def test_a_new_structure_is_one_class(faithful):
    """A subclass registered under a new name inherits its parent's compiled EM code and fits
    exactly like it; nothing outside this module names it."""
    with _registered(FullCopy) as new:
        parent = get_structure("full")
        assert kernel_layout(new) == kernel_layout(parent) == "full"
        assert structure_kernels(new) is structure_kernels(parent) is not None
        assert structure_loop(new) is structure_loop(parent) is not None
        fits = {
            name: GaussianMixture(3, covariance_type=name, prior="default", random_state=0).fit(
                faithful
            )
            for name in ("full", "full_copy")
        }
        np.testing.assert_array_equal(fits["full_copy"].means_, fits["full"].means_)
        np.testing.assert_array_equal(fits["full_copy"].covariances_, fits["full"].covariances_)
        assert fits["full_copy"].bic(faithful) == fits["full"].bic(faithful)
        assert fits["full_copy"].params_.structure is new
    assert "full_copy" not in covariance_types()


def test_a_structure_without_compiled_code_runs_the_numpy_em_path(faithful):
    DiagByNumPy.calls.update(log_gaussian_prob=0, m_step=0)
    with _registered(DiagByNumPy) as new:
        assert kernel_layout(new) is None
        assert structure_kernels(new) is None and structure_loop(new) is None
        settings = {"prior": "default", "n_init": 2, "random_state": 3, "tol": 1e-10}
        numpy_fit = GaussianMixture(2, covariance_type="diag_numpy", **settings).fit(faithful)
        compiled_fit = GaussianMixture(2, covariance_type="diag", **settings).fit(faithful)
    # the NumPy E- and M-steps ran, through the structure's own methods
    assert DiagByNumPy.calls["log_gaussian_prob"] >= numpy_fit.n_iter_
    assert DiagByNumPy.calls["m_step"] >= numpy_fit.n_iter_
    # and reached the compiled path's fit, to rounding
    np.testing.assert_allclose(numpy_fit.means_, compiled_fit.means_, rtol=1e-6)
    np.testing.assert_allclose(numpy_fit.covariances_, compiled_fit.covariances_, rtol=1e-6)
    np.testing.assert_allclose(numpy_fit.lower_bound_, compiled_fit.lower_bound_, rtol=1e-9)


def test_backend_tables_refuse_what_is_no_structure_class():
    from bayesgmm.em.backends import register_em_layout

    with pytest.raises(TypeError, match="CovarianceStructure class"):
        register_em_layout(get_structure("full"), "full")


@pytest.mark.slow
def test_a_new_structure_is_fitted_by_nuts_like_its_parent(faithful):
    """The same registration gives the new structure its parent's PyMC variables: NUTS from
    the same seed draws the same posterior."""
    from bayesgmm.bayes.estimator import BayesianGaussianMixture
    from bayesgmm.bayes.structures import pymc_covariances

    X = faithful[::3]
    settings = {"draws": 60, "tune": 60, "chains": 2, "random_state": 5, "progressbar": False}
    with _registered(SphericalCopy) as new:
        assert pymc_covariances(new) is pymc_covariances(get_structure("spherical"))
        fits = {
            name: BayesianGaussianMixture(2, covariance_type=name, **settings).fit(X)
            for name in ("spherical", "spherical_copy")
        }
    posterior = {name: fit.idata_.posterior for name, fit in fits.items()}
    assert posterior["spherical_copy"]["means"].shape == posterior["spherical"]["means"].shape
    for variable in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            posterior["spherical_copy"][variable].to_numpy(),
            posterior["spherical"][variable].to_numpy(),
            rtol=1e-9,
        )


def test_a_structure_with_no_pymc_variables_is_refused_by_name():
    from bayesgmm.bayes.structures import pymc_covariances

    class Unbuilt(CovarianceStructure):
        name = "unbuilt"

    with pytest.raises(ValueError, match="'unbuilt' has no PyMC variables"):
        pymc_covariances(Unbuilt())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"covariance_type": "banana"}, "covariance_type"),
        ({"weights": np.array([0.9, 0.9])}, "sum to 1"),
        ({"weights": np.array([1.5, -0.5])}, "non-negative"),
        ({"means": np.zeros((3, 2))}, "means must have shape"),
        ({"covariances": np.ones((2, 3))}, "covariances for covariance_type='diag'"),
        ({"means": np.array([[0.0, np.nan], [1.0, 1.0]])}, "NaN"),
        ({"covariances": np.array([[1.0, 1.0], [1.0, -1.0]])}, "component 1"),
    ],
)
def test_mixture_params_validate_their_invariants(kwargs, match):
    args = {
        "weights": np.array([0.4, 0.6]),
        "means": np.zeros((2, 2)),
        "covariances": np.ones((2, 2)),
        "covariance_type": "diag",
    } | kwargs
    with pytest.raises(ValueError, match=match):
        MixtureParams(**args)


def test_fitted_params_round_trip_through_dict():
    X = datasets.load_faithful()
    params = GaussianMixture(2, covariance_type="tied", random_state=0).fit(X).params_
    again = MixtureParams.from_dict(params.to_dict())
    np.testing.assert_array_equal(again.covariances, params.covariances)
    assert again.covariance_type == "tied"


class SharedSpherical(CovarianceStructure):
    """One variance shared by every component and direction (mclust's ``EII``).

    A structure the package does not have, written in full here: no compiled EM code is
    registered for it, so EM runs the NumPy steps that call these methods, and its PyMC
    variables are registered with it (:func:`_shared_spherical_variables`).
    """

    name = "shared_spherical"
    matrix_scatter = False
    per_component = False

    def shape(self, n_components, n_features):
        return ()

    def n_parameters(self, n_components, n_features):
        return 1

    def batch(self, n_components):
        return ()

    def expand(self, covariances, n_components, n_features):
        return np.broadcast_to(
            self.batched_full(covariances, n_components, n_features),
            (n_components, n_features, n_features),
        ).copy()

    def batched_full(self, covariances, n_components, n_features):
        return float(covariances) * np.eye(n_features)

    def permute(self, covariances, order):
        return covariances

    def entries(self, n_components, n_features):
        return [("all", (0, 0, 0))]

    def precisions_cholesky(self, covariances):
        covariances = np.asarray(covariances, dtype=np.float64)
        if not covariances > 0.0:
            raise SingularCovarianceError(None)
        return 1.0 / np.sqrt(covariances)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky**2

    def covariances_from_precisions(self, precisions):
        return 1.0 / np.asarray(precisions, dtype=np.float64)

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return n_features * np.log(precisions_cholesky)

    def _mahalanobis(self, X, means, precisions_cholesky):
        return ((X[:, None, :] - means[None]) ** 2).sum(axis=-1) * precisions_cholesky**2

    def m_step(self, stats, prior, reg_covar):
        nk, xbar = stats.nk, stats.xbar
        n_components, d = xbar.shape
        scatter = stats.scatter.sum()
        if prior is None:
            return np.asarray(scatter / (d * nk.sum()) + reg_covar)
        kappa = prior.mean_precision
        shift = (kappa * nk / (kappa + nk) * ((xbar - prior.mean_prior) ** 2).sum(axis=1)).sum()
        numerator = prior.covariance_prior + scatter + shift
        denominator = prior.degrees_of_freedom + 2.0 + n_components * d + d * nk.sum()
        return np.asarray(numerator / denominator + reg_covar)

    def reseed(self, covariances, component, spread):
        return None

    def prior_scale_shape(self, n_features):
        return ()

    def default_prior_scale(self, covariance, n_components):
        d = covariance.shape[0]
        return np.asarray(np.trace(covariance) / d / float(n_components) ** (2.0 / d))

    def log_prior(self, prior, params):
        var, d = float(params.covariances), params.n_features
        nu, psi, kappa = prior.degrees_of_freedom, prior.covariance_prior, prior.mean_precision
        log_var = stats.invgamma.logpdf(var, a=0.5 * nu, scale=0.5 * psi)
        diff2 = ((params.means - prior.mean_prior) ** 2).sum()
        n_means = params.n_components * d
        return float(
            log_var - 0.5 * (n_means * np.log(2 * np.pi * var / kappa) + kappa * diff2 / var)
        )

    def working_scale(self, scale):
        return get_structure("spherical").working_scale(scale)

    def rescale(self, covariances, scale):
        return covariances * scale[0] ** 2


def _shared_spherical_variables(structure, prior_z, n_components, n_features):
    import pymc as pm
    import pytensor.tensor as pt

    if prior_z is None:
        var = pm.HalfFlat("variances_z")
    else:
        var = pm.InverseGamma(
            "variances_z",
            alpha=0.5 * prior_z.degrees_of_freedom,
            beta=0.5 * prior_z.covariance_prior,
        )
    eye = pt.eye(n_features)
    return var * eye, pt.broadcast_to(pt.sqrt(var) * eye, (n_components, n_features, n_features))


@contextlib.contextmanager
def _shared_spherical(with_pymc: bool = False):
    """:class:`SharedSpherical` registered, with its PyMC variables if asked."""
    tables = []
    if with_pymc:
        from bayesgmm.bayes.structures import PYMC_COVARIANCES, PyMCCovariances

        PYMC_COVARIANCES[SharedSpherical] = PyMCCovariances(
            _shared_spherical_variables, lambda structure, covariances: {"variances_z": covariances}
        )
        tables.append(PYMC_COVARIANCES)
    try:
        with _registered(SharedSpherical) as structure:
            yield structure
    finally:
        for table in tables:
            table.pop(SharedSpherical)


def test_a_genuinely_new_structure_is_fitted_by_numpy_em(faithful):
    with _shared_spherical() as structure:
        assert structure_kernels(structure) is None and structure_loop(structure) is None
        # one component: the maximum-likelihood variance is the data's, averaged over features
        one = GaussianMixture(1, covariance_type="shared_spherical", reg_covar=0.0).fit(faithful)
        np.testing.assert_allclose(one.means_[0], faithful.mean(axis=0), rtol=1e-12)
        expected = faithful.var(axis=0).mean()
        np.testing.assert_allclose(one.covariances_, expected, rtol=1e-10)
        # two components: EM's objective never decreases, and the fit is the joint mode
        two = GaussianMixture(
            2, covariance_type="shared_spherical", prior="default", random_state=0, tol=1e-12
        ).fit(faithful)
        assert two.bic(faithful) < one.bic(faithful)
    assert two.converged_ and np.all(np.diff(two.lower_bound_trace_) > -1e-12)


def test_a_genuinely_new_structure_has_its_map_in_pymc_equal_to_map_em(faithful):
    """EM (NumPy path) and the PyMC model (registered variables) optimise one objective."""
    import pymc as pm

    from bayesgmm.bayes.model import build_model, initial_point
    from bayesgmm.core.spec import MixtureSpec

    with _shared_spherical(with_pymc=True):
        em = GaussianMixture(
            2,
            covariance_type="shared_spherical",
            prior="default",
            reg_covar=0.0,
            tol=1e-12,
            max_iter=5000,
            random_state=0,
        ).fit(faithful)
        spec = MixtureSpec.from_data(faithful, 2, "shared_spherical", "default")
        model = build_model(faithful, spec)
        start = initial_point(em.params_, model, spec)
        # the model's free variables at the EM fit: its gradient vanishes there (a mode)
        transformed = pm.initial_point.make_initial_point_fn(
            model=model, overrides=start, jitter_rvs=set(), return_transformed=True
        )(0)
        logp_dlogp = (
            model.compile_logp(jacobian=False, mode="FAST_COMPILE"),
            model.compile_dlogp(jacobian=False, mode="FAST_COMPILE"),
        )
        gradient = logp_dlogp[1](transformed)
    assert np.isfinite(logp_dlogp[0](transformed))
    np.testing.assert_allclose(gradient, 0.0, atol=1e-4 * len(faithful))
