"""The settings of :class:`~bayesgmm.bayes.estimator.BayesianGaussianMixture`, checked once.

:data:`PARAMETER_CONSTRAINTS` holds a test and a description of every constructor setting;
:meth:`Settings.checked` runs them, then the checks of combinations, and returns the
settings as one frozen record that the pure functions of the fit read
(:mod:`bayesgmm.bayes.start`, :mod:`bayesgmm.bayes.sampling`,
:mod:`bayesgmm.bayes.postprocess`).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from bayesgmm.bayes.model import COVARIANCE_PRIOR_FAMILIES
from bayesgmm.core.covariance import bayesian_covariance_names
from bayesgmm.core.methods import METHODS, SAMPLERS
from bayesgmm.core.missing import MISSING_OPTIONS
from bayesgmm.core.noise import check_noise_volume
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import MixturePrior
from bayesgmm.core.validation import RANDOM_STATE_HELP, is_random_state

MINIBATCH_THRESHOLD = 20_000
MINIBATCH_SIZE = 1_000
TARGET_ACCEPT = 0.9
START_JITTER = 0.1
#: Largest ``n_obs * chains * draws`` for which log-likelihood and predictive draws are stored.
MAX_POINTWISE_VALUES = 20_000_000
#: How chains are combined into one posterior (:mod:`bayesgmm.posterior.stacking`).
CHAIN_COMBINATIONS: tuple[str, ...] = ("auto", "pool", "stack")
#: How NUTS identifies the component labels in d > 1 (``identify``).
IDENTIFICATIONS: tuple[str, ...] = ("relabel", "ordered_projection")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _int_at_least(minimum: int) -> Callable[[object], bool]:
    return lambda value: _is_int(value) and value >= minimum


def _one_of(choices: tuple[str, ...]) -> Callable[[object], bool]:
    return lambda value: isinstance(value, str) and value in choices


def _is_bool(value) -> bool:
    return isinstance(value, bool | np.bool_)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value) and np.isfinite(value)


def _is_start(value) -> bool:
    if value is None or isinstance(value, MixtureParams):
        return True
    return (
        isinstance(value, Sequence)
        and len(value) > 0
        and all(isinstance(v, MixtureParams) for v in value)
    )


def _is_noise_volume(value) -> bool:
    try:
        check_noise_volume(value)
    except ValueError:
        return False
    return True


def _choices(choices: tuple[str, ...]) -> str:
    return "one of " + ", ".join(repr(c) for c in choices)


#: Every constructor setting: a test of its value and what it must be. ``fit`` checks them all.
PARAMETER_CONSTRAINTS: dict[str, tuple[Callable[[object], bool], str]] = {
    "n_components": (_int_at_least(1), "a positive int (the number of components K)"),
    "covariance_type": (
        lambda v: isinstance(v, str) and v in bayesian_covariance_names(),
        "a covariance structure of the Bayesian model: "
        + _choices(bayesian_covariance_names())
        + " (VVV, EEE, VVI, VII: mclust's names of full, tied, diag, spherical)",
    ),
    "prior": (
        lambda v: (
            v is None
            or isinstance(v, MixturePrior)
            or (isinstance(v, str) and v in ("default", "hierarchical"))
        ),
        "'default', 'hierarchical' (learned covariance scale, covariance_type='full'), None "
        "(flat: method='map' only) or a MixturePrior",
    ),
    "covariance_prior_family": (
        _one_of(COVARIANCE_PRIOR_FAMILIES),
        _choices(COVARIANCE_PRIOR_FAMILIES),
    ),
    "method": (_one_of(METHODS), _choices(METHODS)),
    "draws": (_int_at_least(1), "a positive int (draws per chain)"),
    "max_draws": (
        lambda v: v is None or (_is_int(v) and v >= 1),
        "None (4 x draws) or a positive int (the longest run per chain; draws turns the "
        "extension off)",
    ),
    "tune": (_int_at_least(0), "an int >= 0 (tuning steps per chain)"),
    "chains": (_int_at_least(1), "a positive int"),
    "sampler": (_one_of(SAMPLERS), _choices(SAMPLERS)),
    "target_accept": (
        lambda v: _is_real(v) and 0.0 < v < 1.0,
        "a float strictly between 0 and 1 (e.g. 0.9; raise it towards 0.99 on divergences)",
    ),
    "jitter": (
        lambda v: _is_real(v) and v >= 0.0,
        "a float >= 0 (half-width of the uniform start jitter; 0 starts every chain "
        "exactly at `start`)",
    ),
    "start": (
        _is_start,
        "None (the best EM optima), a MixtureParams, or a list of them, one per chain",
    ),
    "combine_chains": (
        _one_of(CHAIN_COMBINATIONS),
        _choices(CHAIN_COMBINATIONS)
        + " ('auto' stacks the chains when they sit in different modes, else pools them)",
    ),
    "identify": (
        _one_of(IDENTIFICATIONS),
        _choices(IDENTIFICATIONS)
        + " ('relabel': relabel the draws to the MAP; 'ordered_projection': also order the "
        "means along the direction that best separates the MAP's components)",
    ),
    "vi_iterations": (_int_at_least(1), "a positive int (optimisation steps of VI)"),
    "em_n_init": (
        lambda v: (isinstance(v, str) and v == "auto") or _int_at_least(1)(v),
        '"auto" or a positive int (EM restarts of the MAP start; see GaussianMixture\'s n_init)',
    ),
    "batch_size": (
        lambda v: v is None or (isinstance(v, str) and v == "auto") or _int_at_least(1)(v),
        f"'auto' (minibatches of {MINIBATCH_SIZE} above {MINIBATCH_THRESHOLD} rows), None "
        "(no minibatches) or a positive int",
    ),
    "pointwise": (
        lambda v: _is_bool(v) or (isinstance(v, str) and v == "auto"),
        f"'auto' (when at most {MAX_POINTWISE_VALUES:.0e} values), True or False",
    ),
    "sampler_kwargs": (
        lambda v: v is None or (isinstance(v, dict) and all(isinstance(k, str) for k in v)),
        "None or a dict of keyword arguments (str keys) for pymc.sample, nutpie.sample or "
        "the VI fit",
    ),
    "random_state": (is_random_state, RANDOM_STATE_HELP),
    "progressbar": (_is_bool, "True or False"),
    "noise": (_is_bool, "True or False (a uniform background component for outliers)"),
    "noise_volume": (
        _is_noise_volume,
        "None (the data's bounding box) or a positive finite number (the hypervolume of the "
        "noise component in the data's units)",
    ),
    "noise_init": (
        lambda v: v is None or np.ndim(v) == 1,
        "None or an array-like of shape (n_samples,) of bools or probabilities",
    ),
    "missing": (
        _one_of(MISSING_OPTIONS),
        _choices(MISSING_OPTIONS) + " ('marginalize': NaN entries are marginalised, missing "
        "at random)",
    ),
}

#: Keys of ``sampler_kwargs`` that a constructor setting owns (``None``: fixed by the estimator).
RESERVED_SAMPLER_KWARGS: dict[str, str | None] = {
    "draws": "draws",
    "tune": "tune",
    "chains": "chains",
    "target_accept": "target_accept",
    "random_seed": "random_state",
    "seed": "random_state",
    "progressbar": "progressbar",
    "progress_bar": "progressbar",
    "initvals": "start",
    "start": "start",
    "n": "vi_iterations",
    "init": None,
    "model": None,
    "nuts_sampler": None,
}


@dataclasses.dataclass(frozen=True, eq=False)
class Settings:
    """The checked constructor settings of a ``BayesianGaussianMixture`` (see its docstring)."""

    n_components: int
    covariance_type: str
    prior: MixturePrior | str | None
    covariance_prior_family: str
    method: str
    draws: int
    max_draws: int | None
    tune: int
    chains: int
    sampler: str
    target_accept: float
    jitter: float
    start: MixtureParams | Sequence[MixtureParams] | None
    combine_chains: str
    identify: str
    vi_iterations: int
    em_n_init: int | str
    batch_size: int | str | None
    pointwise: bool | str
    sampler_kwargs: dict | None
    random_state: object
    progressbar: bool
    noise: bool
    noise_volume: float | None
    noise_init: object
    missing: str

    @classmethod
    def checked(cls, params: Mapping[str, object], owner: str) -> Settings:
        """The settings ``params`` (``get_params()``) once :func:`check_settings` passes."""
        check_settings(params, owner)
        return cls(**params)

    @property
    def extra_kwargs(self) -> dict:
        """``sampler_kwargs`` as a dict (empty for ``None``)."""
        return dict(self.sampler_kwargs or {})


def check_settings(params: Mapping[str, object], owner: str) -> None:
    """Check every setting against :data:`PARAMETER_CONSTRAINTS`, then their combinations.

    Parameters
    ----------
    params : mapping of setting name to value
        The estimator's ``get_params(deep=False)``.
    owner : str
        The estimator's class name, for the messages.

    Raises
    ------
    ValueError
        Naming the first invalid setting and what it must be.
    """
    for name, (is_valid, expected) in PARAMETER_CONSTRAINTS.items():
        value = params[name]
        if not is_valid(value):
            raise ValueError(
                f"{owner}({name}={value!r}) is invalid: {name} must be {expected}. "
                f"Pass such a value to the constructor or to set_params({name}=...)."
            )
    method = params["method"]
    if params["prior"] is None and method != "map":
        raise ValueError(
            f"prior=None (flat, improper) only supports method='map', got "
            f"method={method!r}: use prior='default' or a MixturePrior for NUTS and VI"
        )
    for key in params["sampler_kwargs"] or {}:
        if key not in RESERVED_SAMPLER_KWARGS:
            continue
        setting = RESERVED_SAMPLER_KWARGS[key]
        remedy = (
            f"set {owner}({setting}=...) instead"
            if setting
            else f"{owner} sets it itself; remove it"
        )
        raise ValueError(f"sampler_kwargs={{{key!r}: ...}} is not allowed: {remedy}")
    start, chains = params["start"], params["chains"]
    if isinstance(start, Sequence) and len(start) > 1:
        if method in ("advi", "fullrank_advi"):
            raise ValueError(
                f"method={method!r} starts from one point, got {len(start)} "
                "starts: pass a single MixtureParams"
            )
        if len(start) != chains:
            raise ValueError(
                f"start must be one MixtureParams or one per chain ({chains}), got "
                f"{len(start)}: give {chains} starts or set chains={len(start)}"
            )


__all__ = [
    "CHAIN_COMBINATIONS",
    "IDENTIFICATIONS",
    "PARAMETER_CONSTRAINTS",
    "RESERVED_SAMPLER_KWARGS",
    "Settings",
    "check_settings",
]
