"""The Gaussian mixture as a PyMC model, with the component labels summed out.

:func:`build_model` writes the same latent variable model that MAP-EM fits
(:mod:`bayesgmm.priors` gives the priors), so that ``find_MAP`` on the PyMC model
(no Jacobian, constrained space) and MAP-EM optimise one objective, and NUTS
samples the posterior whose mode EM finds.

Working scale
    The sampler sees standardised data ``x_z = (x - location) / scale``
    (:class:`bayesgmm.spec.Standardization`, part of the :class:`~bayesgmm.spec.MixtureSpec`):
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
    ``means_z`` (component, feature)
        ``mu_k | Sigma_k ~ N(m0, Sigma_k / kappa0)``, batched over components. In
        one dimension the means are ordered (identifiability).
    ``means`` (component, feature), ``covariances`` (component, feature, feature_bis)
        Deterministics on the user's scale; covariances are full matrices for every
        covariance type.
    ``X`` (obs, feature)
        Observed; ``log p(x_n) = logsumexp_k(log w_k + log N(x_n | mu_k, Sigma_k))``,
        one term per observation.

The Inverse-Wishart variable is a :class:`pymc.CustomDist` whose density is with
respect to the matrix itself; the sampler moves in the unconstrained space of
:class:`SPDCholeskyTransform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions import transforms
from pymc.logprob.transforms import Transform
from scipy import stats

from bayesgmm.covariance import CovarianceStructure
from bayesgmm.params import MixtureParams
from bayesgmm.posterior import sample_mixture
from bayesgmm.priors import MixturePrior
from bayesgmm.spec import MixtureSpec

CovariancePriorFamily = Literal["niw", "lkj"]
COVARIANCE_PRIOR_FAMILIES: tuple[str, ...] = ("niw", "lkj")
OBSERVED = "X"
#: Name of the data container behind the observed variable.
DATA = "X_data"


@dataclass(frozen=True)
class PriorInputs:
    """The working-scale prior's hyper-parameters as ``pm.Data`` containers of a model.

    Same attribute names as :class:`~bayesgmm.priors.MixturePrior` (``concentration`` is
    the Dirichlet vector, shape (n_components,)), so the structures' ``pymc_covariances``
    take either. Because they are shared variables, a compiled model's functions stay
    valid when :func:`set_model_data` swaps in another data set's prior.
    """

    concentration: pt.TensorVariable
    mean_prior: pt.TensorVariable
    mean_precision: pt.TensorVariable
    degrees_of_freedom: pt.TensorVariable
    covariance_prior: pt.TensorVariable

    @staticmethod
    def values(prior_z: MixturePrior, n_components: int) -> dict[str, np.ndarray]:
        """Values of the containers for ``prior_z``, keyed by container name."""
        return {
            "concentration": prior_z.concentration(n_components),
            "mean_prior": np.asarray(prior_z.mean_prior, dtype=np.float64),
            "mean_precision": np.asarray(prior_z.mean_precision, dtype=np.float64),
            "degrees_of_freedom": np.asarray(prior_z.degrees_of_freedom, dtype=np.float64),
            "covariance_prior": np.asarray(prior_z.covariance_prior, dtype=np.float64),
        }

    @classmethod
    def create(cls, prior_z: MixturePrior, n_components: int) -> PriorInputs:
        """Add one ``pm.Data`` container per hyper-parameter to the current model."""
        return cls(
            **{
                name: pm.Data(name, value)
                for name, value in cls.values(prior_z, n_components).items()
            }
        )


class SPDCholeskyTransform(Transform):
    """Unconstrained vector of length ``d(d+1)/2`` <-> symmetric positive definite matrix.

    ``y`` fills the lower triangle of ``L`` row by row (``numpy.tril_indices``) with the
    diagonal exponentiated, and ``Sigma = L L^T``. The log-Jacobian of ``y -> Sigma`` is
    ``d log 2 + sum_i (d - i + 2) log L_ii`` (``i`` 1-indexed), so densities stay with
    respect to ``Sigma`` itself. Batched over leading dimensions.
    """

    name = "spdcholesky"
    ndim_supp = 2

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        rows, cols = np.tril_indices(n_features)
        self._rows, self._cols = rows, cols
        self._diag = np.flatnonzero(rows == cols)
        self._off = np.flatnonzero(rows != cols)

    def _cholesky(self, value):
        value = pt.as_tensor(value)
        d = self.n_features
        chol = pt.zeros((*value.shape[:-1], d, d))
        chol = pt.set_subtensor(
            chol[..., self._rows[self._off], self._cols[self._off]], value[..., self._off]
        )
        diag = np.arange(d)
        return pt.set_subtensor(chol[..., diag, diag], pt.exp(value[..., self._diag]))

    def backward(self, value, *inputs):
        chol = self._cholesky(value)
        return chol @ chol.mT

    def forward(self, value, *inputs):
        chol = pt.linalg.cholesky(pt.as_tensor(value))
        packed = chol[..., self._rows, self._cols]
        return pt.set_subtensor(packed[..., self._diag], pt.log(packed[..., self._diag]))

    def log_jac_det(self, value, *inputs):
        value = pt.as_tensor(value)
        d = self.n_features
        powers = d - np.arange(d) + 1.0
        return d * np.log(2.0) + (powers * value[..., self._diag]).sum(axis=-1)


class OrderedComponents(Transform):
    """Means of shape (n_components, 1) kept in increasing order along the component axis.

    ``y_0 = mu_0``, ``y_k = log(mu_k - mu_{k-1})``. The log-Jacobian is returned per
    component (``0, y_1, ..., y_{K-1}``), matching the shape of a batched MvNormal logp.
    """

    name = "ordered"
    ndim_supp = 2

    def backward(self, value, *inputs):
        value = pt.as_tensor(value)
        steps = pt.concatenate([value[:1], pt.exp(value[1:])], axis=0)
        return pt.cumsum(steps, axis=0)

    def forward(self, value, *inputs):
        value = pt.as_tensor(value)
        return pt.concatenate([value[:1], pt.log(value[1:] - value[:-1])], axis=0)

    def log_jac_det(self, value, *inputs):
        value = pt.as_tensor(value)
        return pt.concatenate([pt.zeros_like(value[:1, 0]), value[1:, 0]])


def inverse_wishart_logp(value, dof, scale):
    """Inverse-Wishart log-density of ``value`` (shape (..., d, d)) w.r.t. the matrix itself.

    Returns a tensor of shape (...).
    """
    d = value.shape[-1]
    chol = pt.linalg.cholesky(value)
    scale_chol = pt.linalg.cholesky(scale)
    logdet = 2.0 * pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    logdet_scale = 2.0 * pt.log(pt.diagonal(scale_chol, axis1=-2, axis2=-1)).sum(axis=-1)
    whitened = pt.linalg.solve_triangular(
        chol, pt.broadcast_to(scale_chol, value.shape), lower=True
    )
    trace = pt.sqr(whitened).sum(axis=(-2, -1))
    half_dof = 0.5 * dof
    log_multigamma = 0.25 * d * (d - 1) * np.log(np.pi) + pt.gammaln(
        half_dof[..., None] + 0.5 * (1 - pt.arange(1, d + 1))
    ).sum(axis=-1)
    return (
        half_dof * logdet_scale
        - half_dof * d * np.log(2.0)
        - log_multigamma
        - 0.5 * (dof + d + 1.0) * logdet
        - 0.5 * trace
    )


def _inverse_wishart_random(dof, scale, rng=None, size=None):
    d = np.shape(scale)[-1]
    size = tuple(size or ())
    draws = stats.invwishart.rvs(
        df=float(np.ravel(dof)[0]),
        scale=np.reshape(scale, (-1, d, d))[0],
        size=int(np.prod(size)),
        random_state=rng,
    )
    return np.reshape(draws, (*size, d, d))


def _inverse_wishart_mode(rv, size, dof, scale):
    d = scale.shape[-1]
    return pt.broadcast_to(scale / (dof + d + 1.0), rv.shape)


def _flat_spd_logp(value, *inputs):
    return pt.zeros(value.shape[:-2])


def mixture_logp(value, weights, means, chol, location, scale):
    """Log-density of each observation under the mixture, labels summed out.

    Parameters
    ----------
    value : tensor of shape (n_samples, n_features)
        Observations on the user's scale.
    weights : tensor of shape (n_components,)
    means : tensor of shape (n_components, n_features)
        Working-scale means.
    chol : tensor of shape (n_components, n_features, n_features)
        Lower Cholesky factors of the working-scale covariances.
    location, scale : tensor of shape (n_features,)
        The standardisation ``x_z = (x - location) / scale``.

    Returns
    -------
    tensor of shape (n_samples,)
        ``logsumexp_k(log w_k + log N(x_z | mu_k, Sigma_k)) - sum(log scale)``.
    """
    x_z = (value - location) / scale
    d = x_z.shape[-1]
    diff = x_z[..., None, :] - means
    chol_inv = pt.linalg.solve_triangular(chol, pt.broadcast_to(pt.eye(d), chol.shape), lower=True)
    whitened = (chol_inv * diff[..., None, :]).sum(axis=-1)
    half_logdet = pt.log(pt.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    log_component = -0.5 * d * np.log(2.0 * np.pi) - half_logdet - 0.5 * pt.sqr(whitened).sum(-1)
    log_joint = pt.log(weights) + log_component
    return pt.logsumexp(log_joint, axis=-1) - pt.log(scale).sum(axis=-1)


def mixture_random(weights, means, chol, location, scale, rng=None, size=None):
    """Draw observations (shape (*size, n_features)) on the user's scale from the mixture.

    Parameters are those of :func:`mixture_logp` (leading dimensions of size one allowed).
    """
    k, d = np.shape(means)[-2:]
    weights, means, chol = (
        np.reshape(weights, (k,)),
        np.reshape(means, (k, d)),
        np.reshape(chol, (k, d, d)),
    )
    location, scale = np.reshape(location, (d,)), np.reshape(scale, (d,))
    size = tuple(size or ())
    x_z, _ = sample_mixture(
        weights / weights.sum(), means, chol @ np.swapaxes(chol, -1, -2), int(np.prod(size)), rng
    )
    return location + scale * x_z.reshape(*size, d)


def inverse_wishart_covariances(
    prior: MixturePrior | None, batch: tuple[int, ...], n_features: int, n_components: int
):
    """Inverse-Wishart (or flat) SPD matrices ``covariances_z`` in the current model.

    Parameters
    ----------
    prior : MixturePrior, PriorInputs or None
        Working-scale prior (``None``: flat, for ``find_MAP`` only).
    batch : tuple of int
        ``(K,)`` for one matrix per component, ``()`` for a shared one.
    n_features, n_components : int

    Returns
    -------
    covariances : tensor of shape (*batch, d, d)
    cholesky : tensor of shape (n_components, d, d)
    """
    dims = ("component",) * len(batch) + ("feature", "feature_bis")
    shape = (*batch, n_features, n_features)
    transform = SPDCholeskyTransform(n_features)
    if prior is None:
        cov = pm.CustomDist(
            "covariances_z",
            np.eye(n_features),
            logp=_flat_spd_logp,
            support_point=lambda rv, size, reference: pt.broadcast_to(reference, rv.shape),
            signature="(d,d)->(d,d)",
            transform=transform,
            shape=shape,
            dims=dims,
        )
    else:
        cov = pm.CustomDist(
            "covariances_z",
            prior.degrees_of_freedom,
            prior.covariance_prior,
            logp=inverse_wishart_logp,
            random=_inverse_wishart_random,
            support_point=_inverse_wishart_mode,
            signature="(),(d,d)->(d,d)",
            transform=transform,
            shape=shape,
            dims=dims,
        )
    chol = pt.linalg.cholesky(cov)
    return cov, pt.broadcast_to(chol, (n_components, n_features, n_features))


def inverse_gamma_covariances(
    prior: MixturePrior | None,
    structure: CovarianceStructure,
    n_components: int,
    n_features: int,
):
    """Inverse-Gamma (or flat) variances ``variances_z`` and the diagonal covariances.

    The variances have the structure's layout ((K, d) diag, (K,) spherical).

    Returns
    -------
    covariances : tensor of shape (n_components, d, d)
    cholesky : tensor of shape (n_components, d, d)
    """
    shape = structure.shape(n_components, n_features)
    dims = ("component", "feature")[: len(shape)]
    if prior is None:
        var = pm.HalfFlat("variances_z", shape=shape, dims=dims)
    else:
        var = pm.InverseGamma(
            "variances_z",
            alpha=0.5 * prior.degrees_of_freedom,
            beta=0.5 * prior.covariance_prior,
            shape=shape,
            dims=dims,
        )
    sd = pt.sqrt(var)
    if len(shape) == 1:  # one variance per component, the same in every direction
        var, sd = var[:, None], sd[:, None]
    eye = pt.eye(n_features)
    return var[:, :, None] * eye, sd[:, :, None] * eye


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
) -> pm.Model:
    """PyMC model of a K-component Gaussian mixture with marginalised labels.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated data on the user's scale.
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
        rescaled to the full data (``total_size``) and ``obs`` is not a named dim.
    lkj_eta, lkj_sd_scale : float
        Hyper-parameters of the ``"lkj"`` family.
    random_seed : int, optional
        Seed of the minibatch index stream.

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
    std = spec.standardization
    prior_z = spec.working_prior
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
        if n_components == 1:
            weights = pm.Deterministic("weights", pt.ones(1), dims="component")
        else:
            conc = np.ones(n_components) if hyper is None else hyper.concentration
            weights = pm.Dirichlet("weights", a=conc, dims="component")
        if covariance_prior_family == "lkj":
            cov_z, chol = _covariances_lkj(
                structure, n_components, n_features, lkj_eta, lkj_sd_scale
            )
        else:
            cov_z, chol = structure.pymc_covariances(hyper, n_components, n_features)
        ordered = {"transform": OrderedComponents()} if n_features == 1 else {}
        if hyper is None:
            means_z = pm.Flat(
                "means_z",
                shape=(n_components, n_features),
                dims=("component", "feature"),
                **ordered,
            )
        else:
            means_z = pm.MvNormal(
                "means_z",
                mu=hyper.mean_prior,
                chol=chol / pt.sqrt(hyper.mean_precision),
                shape=(n_components, n_features),
                dims=("component", "feature"),
                **ordered,
            )
        pm.Deterministic("means", location + scale * means_z, dims=("component", "feature"))
        pm.Deterministic(
            "covariances",
            pt.broadcast_to(cov_z, (n_components, n_features, n_features))
            * (scale[:, None] * scale[None, :]),
            dims=("component", "feature", "feature_bis"),
        )
        params = (weights, means_z, chol, location, scale)
        dist_kwargs = {
            "logp": mixture_logp,
            "random": mixture_random,
            "signature": "(k),(k,d),(k,d,d),(d),(d)->(d)",
        }
        if batch_size is None:
            data = pm.Data(DATA, X, dims=("obs", "feature"))
            pm.CustomDist(OBSERVED, *params, observed=data, dims=("obs", "feature"), **dist_kwargs)
        else:
            batch = pm.Minibatch(X, batch_size=batch_size)
            pm.CustomDist(OBSERVED, *params, observed=batch, total_size=n_samples, **dist_kwargs)
    return model


def initial_point(
    params: MixtureParams, model: pm.Model, spec: MixtureSpec
) -> dict[str, np.ndarray]:
    """Values of the free variables of ``model`` (from :func:`build_model`) at ``params``.

    Parameters
    ----------
    params : MixtureParams
        A point on the user's scale, e.g. the MAP-EM estimate. In one dimension it
        must be sorted by mean (:meth:`MixtureParams.sorted_by_mean`).
    model : pymc.Model
    spec : MixtureSpec
        The spec the model was built from (for the standardisation).

    Returns
    -------
    dict
        Constrained values keyed by free variable name, usable as ``initvals``.
    """
    working = spec.standardization.params_to_working(params)
    structure = spec.structure
    names = {rv.name for rv in model.free_RVs}
    point = {"means_z": working.means}
    if "weights" in names:
        point["weights"] = working.weights
    if "stds_z" in names:
        cov = structure.batched_full(working.covariances, params.n_components, params.n_features)
        stds = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
        point["stds_z"] = stds
        point["corr_chol_z"] = np.linalg.cholesky(cov / (stds[..., :, None] * stds[..., None, :]))
    else:
        point.update(structure.pymc_initial_values(working.covariances))
    return point


def data_values(X: np.ndarray, spec: MixtureSpec) -> dict[str, np.ndarray]:
    """Values of every ``pm.Data`` container of :func:`build_model` for ``X`` and ``spec``."""
    std = spec.standardization
    values = {"location": std.location, "scale": std.scale, DATA: np.asarray(X, np.float64)}
    if spec.working_prior is not None:
        values.update(PriorInputs.values(spec.working_prior, spec.n_components))
    return values


def set_model_data(model: pm.Model, X: np.ndarray, spec: MixtureSpec) -> None:
    """Swap another data set (same K, structure and d) into a model of :func:`build_model`.

    The data, their standardisation and the working-scale prior are ``pm.Data``
    containers, so functions compiled from ``model`` see the new values without
    recompiling; the number of observations may change.
    """
    values = data_values(X, spec)
    model.set_data(DATA, values.pop(DATA), coords={"obs": np.arange(len(X))})
    for name, value in values.items():
        model.set_data(name, value)


__all__ = [
    "COVARIANCE_PRIOR_FAMILIES",
    "DATA",
    "OBSERVED",
    "CovariancePriorFamily",
    "OrderedComponents",
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
    "mixture_random",
    "set_model_data",
]
