"""The Gaussian mixture as a PyMC model, with the component labels summed out.

:func:`build_model` writes the same latent variable model that MAP-EM fits
(:mod:`bayesgmm.core.priors` gives the priors), so that ``find_MAP`` on the PyMC model
(no Jacobian, constrained space) and MAP-EM optimise one objective, and NUTS
samples the posterior whose mode EM finds.

Working scale
    The sampler sees standardised data ``x_z = (x - location) / scale``
    (:class:`~bayesgmm.core.spec.Standardization`, part of the
    :class:`~bayesgmm.core.spec.MixtureSpec`):
    per-feature scales for ``full``/``tied``/``diag``
    and one common scale for ``spherical`` (a spherical covariance stays spherical
    only under an isotropic rescaling). The prior hyper-parameters are mapped to the
    working scale exactly (``Psi0 -> D Psi0 D`` with ``D = diag(1 / scale)``), so the
    model is the user's model re-expressed; the map is linear, so modes map to modes.
    The observed variable ``X`` stays on the user's scale: its log-density
    standardises internally and adds the Jacobian ``-sum(log scale)`` per
    observation, so ``log_likelihood`` and ``posterior_predictive`` are on the
    user's scale too.

Variables (named dims ``component``, ``feature``, ``feature_bis``, ``obs``)
    ``weights`` (component)
        Dirichlet(``a0``); a constant one when ``n_components == 1``.
    ``covariances_z`` / ``variances_z`` / ``stds_z`` + ``corr_chol_z``
        Covariances on the working scale: Inverse-Wishart matrices (full
        (component, feature, feature_bis); tied (feature, feature_bis)),
        Inverse-Gamma variances (diag (component, feature); spherical
        (component)), or with ``covariance_prior_family="lkj"`` half-normal
        scales times LKJ correlation Cholesky factors, one per component.
    ``covariance_scale_z`` (feature, feature_bis)
        Only under the hierarchical prior (:class:`~bayesgmm.core.priors.HierarchicalPrior`,
        full covariances): the Inverse-Wishart scale ``Psi ~ Wishart(nu_g, G0^-1)`` on the
        working scale, a variable (the covariances' prior takes it as its scale), in the
        Cholesky space of :class:`SPDCholeskyTransform`; no hand-written kernel, so NUTS runs
        the PyTensor graph.
    ``means_z`` (component, feature)
        ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``, batched over components. In
        one dimension the means are ordered (identifiability). With ``order_basis``
        (d > 1, opt-in) it is a deterministic of ``means_coords_z`` (component, feature),
        the means in an orthogonal basis whose first vector ``v`` they are ordered along.
    ``means`` (component, feature), ``covariances`` (component, feature, feature_bis)
        Deterministics on the user's scale; covariances are full matrices for every
        covariance type.
    ``X`` (obs, feature)
        Observed; ``log p(x_n) = logsumexp_k(log w_k + log N(x_n | mu_k, Sigma_k))``,
        one term per observation (times the frequency weight ``sample_weight`` (obs),
        a ``pm.Data``, when the model is built with weights; with missing entries, the
        marginal density of the row's observed coordinates: :class:`MarginalMixtureLogp`).

With a noise component (``spec.noise``, :mod:`bayesgmm.core.noise`) the Dirichlet over the
K + 1 weights ``(w_1, ..., w_K, w_0)`` is written through its aggregation property:
``noise_weight`` ``w_0 ~ Beta(a_0, sum_k a_k)`` and ``component_weights`` (component)
``~ Dirichlet(a_1, ..., a_K)`` independently (the Gaussians' conditional weights), which
is the same distribution; ``weights`` is then the deterministic ``(1 - w_0)`` times the
component weights (absolute, summing to ``1 - w_0``), and every observation's density
gains the term ``w_0 / V``: ``log p(x_n) = logsumexp(log w_k + log N(x_n | ...),
log w_0 - log V)``, still one term per observation.

The Inverse-Wishart variable is a :class:`pymc.CustomDist` whose density is with
respect to the matrix itself; the sampler moves in the unconstrained space of
:class:`SPDCholeskyTransform`. Each covariance structure's variables are built by its entry in
:mod:`bayesgmm.bayes.structures`.
The observed variable's densities (plain, weighted, noisy, marginal over missing entries)
are in :mod:`bayesgmm.bayes.observed`, the means' ordering constraints in
:mod:`bayesgmm.bayes.ordering`; this module re-exports their public names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions import transforms

from bayesgmm.bayes import eigen_structures  # noqa: F401  (registers mclust's ten models)
from bayesgmm.bayes.observed import (
    _NOISY_OBSERVED_DIST,
    _OBSERVED_DIST,
    _WEIGHTED_OBSERVED_DIST,
    MarginalMixtureLogp,
    mixture_logp,
    mixture_logp_graph,
    mixture_random,
    noisy_mixture_logp,
    noisy_mixture_random,
    weighted_mixture_logp,
)
from bayesgmm.bayes.ordering import (
    ORDER_BASIS,
    ORDERED_MEANS,
    OrderedComponents,
    OrderedFirstCoordinate,
    check_order_basis,
    ordered_projection_means,
)
from bayesgmm.bayes.structures import (
    SCALE_NAME,
    SPDCholeskyTransform,
    covariance_initial_values,
    covariance_variables,
    inverse_gamma_covariances,
    inverse_wishart_covariances,
    inverse_wishart_logp,
    wishart_scale,
)
from bayesgmm.core.covariance import CovarianceStructure
from bayesgmm.core.missing import MissingPatterns, has_missing
from bayesgmm.core.noise import noise_concentration
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import HierarchicalPrior, MixturePrior
from bayesgmm.core.spec import MixtureSpec
from bayesgmm.core.validation import check_feature_combination

CovariancePriorFamily = Literal["niw", "lkj"]
COVARIANCE_PRIOR_FAMILIES: tuple[str, ...] = ("niw", "lkj")
OBSERVED = "X"
#: Name of the data container behind the observed variable.
DATA = "X_data"


@dataclass(frozen=True)
class PriorInputs:
    """The working-scale prior's hyper-parameters as ``pm.Data`` containers of a model.

    Same attribute names as :class:`~bayesgmm.core.priors.MixturePrior` (``concentration`` is
    the Dirichlet vector, shape (n_components,)), so the structures' covariance builders
    (:mod:`bayesgmm.bayes.structures`)
    take either. Because they are shared variables, a compiled model's functions stay
    valid when :func:`set_model_data` swaps in another data set's prior.
    """

    concentration: pt.TensorVariable
    mean_prior: pt.TensorVariable
    mean_precision: pt.TensorVariable
    degrees_of_freedom: pt.TensorVariable
    covariance_prior: pt.TensorVariable
    #: the hierarchical prior's ``nu_g`` and ``G0`` (``None`` for a fixed scale)
    scale_degrees_of_freedom: pt.TensorVariable | None = None
    scale_rate: pt.TensorVariable | None = None

    @staticmethod
    def values(prior_z: MixturePrior, n_components: int) -> dict[str, np.ndarray]:
        """Values of the containers for ``prior_z``, keyed by container name."""
        values = {
            "concentration": prior_z.concentration(n_components),
            "mean_prior": np.asarray(prior_z.mean_prior, dtype=np.float64),
            "mean_precision": np.asarray(prior_z.mean_precision, dtype=np.float64),
            "degrees_of_freedom": np.asarray(prior_z.degrees_of_freedom, dtype=np.float64),
            "covariance_prior": np.asarray(prior_z.covariance_prior, dtype=np.float64),
        }
        if isinstance(prior_z, HierarchicalPrior):
            values["scale_degrees_of_freedom"] = np.asarray(
                prior_z.scale_degrees_of_freedom, dtype=np.float64
            )
            values["scale_rate"] = np.asarray(prior_z.scale_rate, dtype=np.float64)
        return values

    @classmethod
    def create(cls, prior_z: MixturePrior, n_components: int) -> PriorInputs:
        """Add one ``pm.Data`` container per hyper-parameter to the current model."""
        return cls(
            **{
                name: pm.Data(name, value)
                for name, value in cls.values(prior_z, n_components).items()
            }
        )


class CholeskyCorrTransform(transforms.CholeskyCorrTransform):
    """PyMC's LKJ correlation transform under a name without an underscore.

    PyMC recovers a variable from its transformed value's name by cutting at the last
    underscore (``pymc.util.get_untransformed_name``), which breaks for the default name
    ``cholesky_corr`` (initial values, ``compute_log_likelihood``). Reproducer (PyMC 6.4)::

        >>> pymc.util.get_untransformed_name("c_cholesky_corr__")
        'c_cholesky'    # expected 'c'; pm.sample(initvals=...) then raises a KeyError
    """

    name = "choleskycorr"


def _covariances_lkj(structure, n_components, n_features, eta, sd_scale):
    """Half-normal scales times LKJ correlations (working scale), batched over components."""
    batch = structure.batch(n_components)
    comp = ("component",) if batch else ()
    stds = pm.HalfNormal(
        "stds_z", sigma=sd_scale, shape=(*batch, n_features), dims=(*comp, "feature")
    )
    corr_chol = pm.LKJCorr(
        "corr_chol_z",
        n=n_features,
        eta=eta,
        default_transform=CholeskyCorrTransform(n=n_features, upper=False),
        shape=(*batch, n_features, n_features),
        dims=(*comp, "feature", "feature_bis"),
    )
    chol = stds[..., :, None] * corr_chol
    chol = pt.broadcast_to(chol, (n_components, n_features, n_features))
    return chol @ chol.mT, chol


def check_model_options(
    structure: CovarianceStructure, covariance_prior_family: str, n_features: int
) -> None:
    """Raise ``ValueError`` naming the bad value if the options do not describe a model."""
    if covariance_prior_family not in COVARIANCE_PRIOR_FAMILIES:
        raise ValueError(
            f"covariance_prior_family must be one of {COVARIANCE_PRIOR_FAMILIES}, got "
            f"{covariance_prior_family!r}"
        )
    if covariance_prior_family == "lkj" and (not structure.supports_lkj or n_features < 2):
        raise ValueError(
            "covariance_prior_family='lkj' needs a covariance structure with correlations "
            f"('full' or 'tied') and at least 2 features, got covariance_type={structure.name!r} "
            f"with {n_features} feature(s); use covariance_prior_family='niw'"
        )


def build_model(
    X: np.ndarray,
    spec: MixtureSpec,
    *,
    covariance_prior_family: CovariancePriorFamily = "niw",
    batch_size: int | None = None,
    lkj_eta: float = 2.0,
    lkj_sd_scale: float = 1.0,
    random_seed: int | None = None,
    sample_weight: np.ndarray | None = None,
    order_basis: np.ndarray | None = None,
) -> pm.Model:
    """PyMC model of a K-component Gaussian mixture with marginalised labels.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated data on the user's scale. NaN entries are missing values (missing at
        random): each row's likelihood is then the marginal density of its observed
        coordinates (:class:`MarginalMixtureLogp`, grouped by missingness pattern), and
        the observed variable ``X`` holds the feature's location in place of each NaN
        (never read by the density; a NaN would make PyMC impute it as a free variable).
        Minibatches (``batch_size``) are not available with missing entries.
    spec : MixtureSpec
        K, the covariance structure, the prior (``None`` puts improper flat priors on
        means and covariances and a uniform Dirichlet on the weights: the posterior mode
        is then the maximum-likelihood estimate, which is what ``find_MAP`` is for; do not
        sample it) and the standardisation the sampler works in
        (``MixtureSpec.from_data(..., standardize=False)`` for none).
    covariance_prior_family : {"niw", "lkj"}
        ``"niw"`` uses the spec's prior throughout (Inverse-Wishart / Inverse-Gamma).
        ``"lkj"`` (structures with correlations, d >= 2) replaces the covariance prior by
        ``Sigma_k = diag(s_k) R_k diag(s_k)`` with ``s_kj ~ HalfNormal(lkj_sd_scale)`` on
        the working scale and ``R_k ~ LKJ(lkj_eta)``, keeping the Dirichlet and the
        ``N(m0, Sigma_k / kappa0)`` means prior.
    batch_size : int, optional
        Minibatch size for stochastic variational inference; the likelihood is then
        rescaled to the full data (``total_size``) and ``obs`` is not a named dim. The
        minibatches are drawn from the ``pm.Data`` container of the rows, not from the rows
        as a constant: numba then neither embeds the rows in the compiled step function (on
        10^5 x 2 rows LLVM spent ~30 s on that constant in every process) nor keys the disk
        cache on them. Measured (2026-12-06, load ~2, 10^5 x 2 rows, K=3, 4000 steps of
        1000 rows, each fit in a new process): 35.4 s with the rows as a constant, 41.6 s
        for the first fit now and 8.3 s for the next, with the same draws bit for bit.
    lkj_eta, lkj_sd_scale : float
        Hyper-parameters of the ``"lkj"`` family.
    random_seed : int, optional
        Seed of the minibatch index stream.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (:mod:`bayesgmm.core.weights`): the log-likelihood term of ``x_n`` is
        multiplied by ``w_n`` (``pm.Data`` ``sample_weight``, dim ``obs``), so the model is
        that of the rows repeated ``w_n`` times and the posterior narrows accordingly.
        ``spec`` should then be built from the weighted moments. Not with ``batch_size``.
    order_basis : ndarray of shape (n_features, n_features), optional
        Orthogonal matrix whose first column ``v`` is an identifying direction (d > 1,
        K > 1): the means are then constrained to ``mu_1 . v < ... < mu_K . v``
        (:class:`OrderedFirstCoordinate` on the means in that basis, the free variable
        ``means_coords_z``, of which ``means_z`` is a deterministic; the basis is the
        ``pm.Data`` container ``order_basis``, swapped by :func:`set_model_data`). The
        prior must be symmetric
        in the components (equal Dirichlet concentrations) for this to leave the
        distribution of label-free quantities unchanged. In one dimension the means are
        always ordered and ``order_basis`` must be ``None``.

    Returns
    -------
    pymc.Model
        Variables as in the module docstring.
    """
    X = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X.shape
    n_components, structure = spec.n_components, spec.structure
    if n_features != spec.n_features:
        raise ValueError(f"X has {n_features} features, the spec is for {spec.n_features}")
    check_model_options(structure, covariance_prior_family, n_features)
    if spec.prior is None and covariance_prior_family == "lkj":
        raise ValueError("covariance_prior_family='lkj' needs a prior ('default' or MixturePrior)")
    if isinstance(spec.prior, HierarchicalPrior) and (
        covariance_prior_family != "niw" or spec.noise is not None
    ):
        raise ValueError(
            "prior='hierarchical' learns the scale of the Inverse-Wishart prior: it needs "
            "covariance_prior_family='niw' and no noise component"
        )
    if sample_weight is not None and batch_size is not None:
        raise ValueError(
            "sample_weight with minibatches (batch_size) is not supported: use batch_size=None"
        )
    check_feature_combination(
        noise=spec.noise is not None, weighted=sample_weight is not None, missing=has_missing(X)
    )
    std = spec.standardization
    prior_z = spec.working_prior
    logp = mixture_logp
    if has_missing(X):
        if batch_size is not None:
            raise ValueError(
                "minibatch variational inference (batch_size) does not support missing "
                "entries (NaN): set batch_size=None, or drop or impute the rows with NaN"
            )
        logp = MarginalMixtureLogp(MissingPatterns.from_data(X))
        X = np.where(np.isnan(X), std.location, X)
    coords = {
        "component": np.arange(n_components),
        "feature": np.arange(n_features),
        "feature_bis": np.arange(n_features),
        "obs": np.arange(n_samples),
    }
    with pm.Model(coords=coords) as model:
        location = pm.Data("location", std.location, dims="feature")
        scale = pm.Data("scale", std.scale, dims="feature")
        hyper = None if prior_z is None else PriorInputs.create(prior_z, n_components)
        if hyper is not None and hyper.scale_rate is not None:  # Psi learned (hierarchical)
            scale_z = wishart_scale(hyper.scale_degrees_of_freedom, hyper.scale_rate, n_features)
            hyper = dataclasses.replace(hyper, covariance_prior=scale_z)
        if spec.noise is not None:
            weights, noise_weight = _noisy_weights(prior_z, n_components)
        elif n_components == 1:
            weights = pm.Deterministic("weights", pt.ones(1), dims="component")
        else:
            conc = np.ones(n_components) if hyper is None else hyper.concentration
            weights = pm.Dirichlet("weights", a=conc, dims="component")
        if covariance_prior_family == "lkj":
            cov_z, chol = _covariances_lkj(
                structure, n_components, n_features, lkj_eta, lkj_sd_scale
            )
        else:
            cov_z, chol = covariance_variables(structure, hyper, n_components, n_features)
        if order_basis is None:
            ordered = {"transform": OrderedComponents()} if n_features == 1 else {}
            means_z = _means(hyper, "means_z", chol, n_components, n_features, ordered)
        else:
            basis = check_order_basis(order_basis, n_features, n_components)
            means_z = ordered_projection_means(hyper, chol, basis, n_components, n_features)
        pm.Deterministic("means", location + scale * means_z, dims=("component", "feature"))
        pm.Deterministic(
            "covariances",
            pt.broadcast_to(cov_z, (n_components, n_features, n_features))
            * (scale[:, None] * scale[None, :]),
            dims=("component", "feature", "feature_bis"),
        )
        params = (weights, means_z, chol, location, scale)
        dist_kwargs = _OBSERVED_DIST if logp is mixture_logp else {**_OBSERVED_DIST, "logp": logp}
        if spec.noise is not None:
            noise = spec.noise
            params = (
                *params,
                noise_weight,
                np.log(noise.volume),
                np.asarray(noise.lower),
                np.asarray(noise.upper),
            )
            dist_kwargs = _NOISY_OBSERVED_DIST
        elif sample_weight is not None:
            row_weight = pm.Data(
                "sample_weight", np.asarray(sample_weight, dtype=np.float64), dims="obs"
            )
            params = (*params, row_weight)
            dist_kwargs = _WEIGHTED_OBSERVED_DIST
        data = pm.Data(DATA, X, dims=("obs", "feature"))
        if batch_size is None:
            pm.CustomDist(OBSERVED, *params, observed=data, dims=("obs", "feature"), **dist_kwargs)
        else:
            batch = pm.Minibatch(data, batch_size=batch_size)
            pm.CustomDist(OBSERVED, *params, observed=batch, total_size=n_samples, **dist_kwargs)
    return model


def _means(hyper, name, chol, n_components, n_features, transform, mean=None):
    """``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)`` (flat without a prior), named ``name``.

    ``chol`` (K, d, d) are the Cholesky factors of the ``Sigma_k``; ``mean`` replaces ``m0``.
    """
    shape, dims = (n_components, n_features), ("component", "feature")
    if hyper is None:
        return pm.Flat(name, shape=shape, dims=dims, **transform)
    return pm.MvNormal(
        name,
        mu=hyper.mean_prior if mean is None else mean,
        chol=chol / pt.sqrt(hyper.mean_precision),
        shape=shape,
        dims=dims,
        **transform,
    )


def _noisy_weights(prior_z: MixturePrior | None, n_components: int):
    """``weights`` (absolute) and ``noise_weight`` of a model with a noise component."""
    conc = noise_concentration(
        1.0 if prior_z is None else prior_z.weight_concentration, n_components
    )
    noise_weight = pm.Beta("noise_weight", alpha=conc[-1], beta=conc[:-1].sum())
    if n_components == 1:
        conditional = pt.ones(1)
    else:
        conditional = pm.Dirichlet("component_weights", a=conc[:-1], dims="component")
    weights = pm.Deterministic("weights", (1.0 - noise_weight) * conditional, dims="component")
    return weights, noise_weight


def initial_point(
    params: MixtureParams,
    model: pm.Model,
    spec: MixtureSpec,
    noise_weight: float | None = None,
) -> dict[str, np.ndarray]:
    """Values of the free variables of ``model`` (from :func:`build_model`) at ``params``.

    Parameters
    ----------
    params : MixtureParams
        A point on the user's scale, e.g. the MAP-EM estimate. In one dimension it
        must be sorted by mean (:meth:`MixtureParams.sorted_by_mean`). With a noise
        component its weights are the Gaussians' conditional weights.
    model : pymc.Model
    spec : MixtureSpec
        The spec the model was built from (for the standardisation).
    noise_weight : float, optional
        The noise weight, for a model with a noise component (required there).

    Returns
    -------
    dict
        Constrained values keyed by free variable name, usable as ``initvals``.
    """
    working = spec.standardization.params_to_working(params)
    structure = spec.structure
    names = {rv.name for rv in model.free_RVs}
    point = {"means_z": working.means}
    if ORDERED_MEANS in names:  # the means in the identifying basis (ordered along v)
        point = {ORDERED_MEANS: working.means @ model[ORDER_BASIS].get_value()}
    if "weights" in names:
        point["weights"] = working.weights
    if "component_weights" in names:
        point["component_weights"] = working.weights
    if "noise_weight" in names:
        if noise_weight is None:
            raise ValueError("the model has a noise component: give initial_point a noise_weight")
        point["noise_weight"] = np.asarray(noise_weight, dtype=np.float64)
    if "stds_z" in names:
        cov = structure.batched_full(working.covariances, params.n_components, params.n_features)
        stds = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        point["stds_z"] = stds
        point["corr_chol_z"] = np.linalg.cholesky(cov / (stds[..., :, None] * stds[..., None, :]))
    else:
        point.update(covariance_initial_values(structure, working.covariances))
    if SCALE_NAME in names:  # the learned scale at its conditional mode given the covariances
        point[SCALE_NAME] = spec.working_prior.scale_mode(working.full_covariances())
    return point


def data_values(X: np.ndarray, spec: MixtureSpec) -> dict[str, np.ndarray]:
    """Values of every ``pm.Data`` container of :func:`build_model` for ``X`` and ``spec``."""
    std = spec.standardization
    values = {"location": std.location, "scale": std.scale, DATA: np.asarray(X, np.float64)}
    if spec.working_prior is not None:
        values.update(PriorInputs.values(spec.working_prior, spec.n_components))
    return values


def set_model_data(
    model: pm.Model, X: np.ndarray, spec: MixtureSpec, order_basis: np.ndarray | None = None
) -> None:
    """Swap another data set (same K, structure and d) into a model of :func:`build_model`.

    The data, their standardisation and the working-scale prior are ``pm.Data``
    containers, so functions compiled from ``model`` see the new values without
    recompiling; the number of observations may change. ``order_basis`` is required
    by, and only by, a model built with one.
    """
    values = data_values(X, spec)
    if (ORDER_BASIS in model.named_vars) != (order_basis is not None):
        raise ValueError(
            "order_basis must be given exactly when the model was built with one "
            f"(this model {'has' if ORDER_BASIS in model.named_vars else 'has no'} "
            "identifying constraint)"
        )
    if order_basis is not None:
        values[ORDER_BASIS] = check_order_basis(order_basis, spec.n_features, spec.n_components)
    model.set_data(DATA, values.pop(DATA), coords={"obs": np.arange(len(X))})
    for name, value in values.items():
        model.set_data(name, value)


__all__ = [
    "COVARIANCE_PRIOR_FAMILIES",
    "DATA",
    "OBSERVED",
    "ORDERED_MEANS",
    "ORDER_BASIS",
    "CovariancePriorFamily",
    "MarginalMixtureLogp",
    "OrderedComponents",
    "OrderedFirstCoordinate",
    "PriorInputs",
    "SPDCholeskyTransform",
    "build_model",
    "check_model_options",
    "data_values",
    "initial_point",
    "inverse_gamma_covariances",
    "inverse_wishart_covariances",
    "inverse_wishart_logp",
    "mixture_logp",
    "mixture_logp_graph",
    "mixture_random",
    "noisy_mixture_logp",
    "noisy_mixture_random",
    "set_model_data",
    "weighted_mixture_logp",
]
