"""The fits that ``bench_sbc.py`` ranks: configurations, methods and one replicate of each.

A *method* is one fit per replicate; it yields one or more *variants*, each a set of
posterior draws ranked on its own (``advi`` yields ``advi``, the estimator's posterior,
PSIS-corrected when the correction's k-hat is < 0.7, and ``advi_q``, the draws of q
itself from the same fit). Replicate ``s`` draws the parameters and the data from seed
``s`` whatever the method, so every method sees the same data sets.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from bayesgmm import BayesianGaussianMixture, GaussianMixture, MixturePrior
from bayesgmm.posterior.draws import log_mixture_density
from bayesgmm.posterior.sbc import (
    aligned_to_reference,
    draw_from_prior,
    mixture_quantities,
    parameter_quantities,
    sbc_ranks,
    simulate_mixture,
    thinned,
)
from bayesgmm.selection.sparse import fit_sparse_mixture

N_RANK_DRAWS = 99
PAIRS = np.array([[0, 1], [2, 3]])
PRIOR_1D = MixturePrior(
    weight_concentration=2.0,
    mean_prior=np.array([0.0]),
    mean_precision=0.2,
    degrees_of_freedom=5.0,
    covariance_prior=np.array([[4.0]]),
)
PRIOR_2D = MixturePrior(
    weight_concentration=2.0,
    mean_prior=np.array([0.0, 0.0]),
    mean_precision=0.2,
    degrees_of_freedom=6.0,
    covariance_prior=np.array([[3.0, 0.5], [0.5, 3.0]]),
)
#: The sparse mixture's model: ``K_max`` components, ``w ~ Dirichlet(e0)`` with ``e0`` fixed
#: (the prior's weight concentration), the 1-D prior's Normal-Inverse-Wishart.
SPARSE_E0 = 0.1
CONFIGS = {
    "1d": {
        "label": "1-D K=2, n=50",
        "k": 2,
        "n": 50,
        "prior": PRIOR_1D,
        "points": np.array([[-3.0], [0.0], [3.0]]),
    },
    "2d": {
        "label": "2-D K=2, n=80",
        "k": 2,
        "n": 80,
        "prior": PRIOR_2D,
        "points": np.array([[0.0, 0.0], [2.0, 2.0], [-2.0, 1.0]]),
    },
    "2d3": {
        "label": "2-D K=3, n=120",
        "k": 3,
        "n": 120,
        "prior": PRIOR_2D,
        "points": np.array([[0.0, 0.0], [2.0, 2.0], [-2.0, 1.0]]),
    },
    "1dsparse": {
        "label": f"1-D sparse, K_max=5, e0={SPARSE_E0:g}, n=60",
        "k": 5,
        "n": 60,
        "prior": MixturePrior(
            weight_concentration=SPARSE_E0,
            mean_prior=np.array([0.0]),
            mean_precision=0.2,
            degrees_of_freedom=5.0,
            covariance_prior=np.array([[4.0]]),
        ),
        "points": np.array([[-3.0], [0.0], [3.0]]),
    },
}
#: Settings of each method's fit (NUTS: fixed length, no extension). VI: the estimator's
#: defaults except the iteration ceiling (bench_sbc's docstring says why).
FIT_SETTINGS = {
    "gibbs": {"draws": 500, "tune": 300, "chains": 2, "pointwise": False},
    "nuts": {"draws": 500, "chains": 2, "max_draws": 500, "pointwise": False},
    "nuts_pymc": {
        "sampler": "pymc",
        "draws": 300,
        "tune": 300,
        "chains": 2,
        "max_draws": 300,
        "pointwise": False,
        "sampler_kwargs": {"cores": 1},
    },
    "advi": {"draws": 1000, "pointwise": False},
    "fullrank_advi": {"draws": 1000, "pointwise": False},
    "sparse_gibbs": {"draws": 1000, "burn": 500, "chains": 2},
}
#: The estimator's method of each bench method (``gibbs_relabelled`` ranks the relabelled
#: parameters of a Gibbs fit).
ESTIMATOR_METHOD = {
    "gibbs": "gibbs",
    "gibbs_relabelled": "gibbs",
    "nuts": "nuts",
    "nuts_pymc": "nuts",
    "advi": "advi",
    "fullrank_advi": "fullrank_advi",
}
METHODS = (*ESTIMATOR_METHOD, "sparse_gibbs")
#: A variant ending in this: the VI fit's own draws of q (no PSIS correction).
Q_SUFFIX = "_q"
EXACT = ("gibbs", "gibbs_relabelled", "nuts", "nuts_pymc", "sparse_gibbs")


def settings_of(method: str) -> dict:
    """The fit settings of a bench method (``gibbs_relabelled``: those of ``gibbs``)."""
    return FIT_SETTINGS["gibbs" if method == "gibbs_relabelled" else method]


def _pooled(post, k: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    weights = post["weights"].values.reshape(-1, k)
    means = post["means"].values.reshape(-1, k, d)
    covs = post["covariances"].values.reshape(-1, k, d, d)
    return weights, means, covs


def _ranked(values, true_values, rng) -> tuple[np.ndarray, int]:
    keep = thinned(np.arange(len(values)), N_RANK_DRAWS)
    return sbc_ranks(values[keep], true_values, rng), len(keep)


def _estimator_fit(config: dict, method: str, X: np.ndarray, seed: int):
    settings = settings_of(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesianGaussianMixture(
            config["k"],
            method=ESTIMATOR_METHOD[method],
            prior=config["prior"],
            random_state=seed,
            progressbar=False,
            **settings,
        ).fit(X)


def _vi_info(fit) -> dict:
    correction = fit.psis_correction_
    return {
        "vi_draws": fit.idata_.posterior.attrs.get("vi_draws", ""),
        "khat": float(fit.psis_.khat),
        "correction_khat": np.nan if correction is None else float(correction.khat),
        "n_iter": int(fit.vi_.n_iter),
        "converged": bool(fit.vi_.converged),
    }


def replicate(key: str, method: str, seed: int) -> list[tuple[str, np.ndarray, list, dict]]:
    """Ranks of one replicate: ``(variant, ranks (n_quantities,), names, info)`` per variant."""
    config = CONFIGS[key]
    rng = np.random.default_rng(seed)
    truth = draw_from_prior(config["prior"], config["k"], rng)
    X, labels = simulate_mixture(*truth, config["n"], rng)
    k, d = config["k"], X.shape[1]
    began = time.perf_counter()
    true_values, names = mixture_quantities(*truth, X, config["points"], PAIRS)
    variants = []  # (variant, draws' values (L, Q), true values (Q,), names, info)
    if method == "sparse_gibbs":
        fit = fit_sparse_mixture(
            X, k, prior=config["prior"], e0=SPARSE_E0, random_state=seed, **settings_of(method)
        )
        post = fit.idata["posterior"]
        values, _ = mixture_quantities(*_pooled(post, k, d), X, config["points"], PAIRS)
        k_plus = post["n_clusters"].values.reshape(-1, 1).astype(float)
        variants.append(
            (
                method,
                np.concatenate([values, k_plus], axis=1),
                np.append(true_values, len(np.unique(labels))),
                [*names, "K+"],
                {},
            )
        )
    else:
        fit = _estimator_fit(config, method, X, seed)
        draws = _pooled(fit.idata_.posterior, k, d)
        info = {}
        if "sample_stats" in fit.idata_.children and "diverging" in fit.idata_["sample_stats"]:
            info["divergences"] = int(fit.idata_["sample_stats"]["diverging"].sum())
        if method == "gibbs_relabelled":
            reference = fit.map_.means, fit.map_.full_covariances()
            aligned = aligned_to_reference(*(t[None] for t in truth), *reference)
            true_values, names = parameter_quantities(*(t[0] for t in aligned))
            if d == 1:  # the package sorts every draw by mean; ranks need it
                draws = aligned_to_reference(*draws, *reference)
            values, _ = parameter_quantities(*draws)
            variants.append((method, values, true_values, names, info))
        else:
            values, _ = mixture_quantities(*draws, X, config["points"], PAIRS)
            if method in ("advi", "fullrank_advi"):
                info = _vi_info(fit)
                variants.append((method, values, true_values, names, info))
                post = fit.approximation_.sample(settings_of(method)["draws"], random_seed=seed)
                q_draws = _pooled(post["posterior"], k, d)
                q_values, _ = mixture_quantities(*q_draws, X, config["points"], PAIRS)
                variants.append((method + Q_SUFFIX, q_values, true_values, names, info))
            else:
                variants.append((method, values, true_values, names, info))
    seconds = time.perf_counter() - began
    out = []
    for variant, values, truth_values, quantity_names, info in variants:
        ranks, n_draws = _ranked(values, truth_values, rng)
        out.append(
            (variant, ranks, quantity_names, {**info, "seconds": seconds, "n_draws": n_draws})
        )
    return out


# ------------------------------------------------------------ the MAP bootstrap

#: Fixed true mixture of the bootstrap's coverage check (1-D, two components).
BOOT_TRUTH = (
    np.array([0.35, 0.65]),
    np.array([[-2.0], [1.5]]),
    np.array([[[1.0]], [[0.6]]]),
)
BOOT_ROWS = 150
BOOT_POINTS = np.array([[-2.0], [0.0], [1.5]])
BOOT_LEVEL = 0.9


def bootstrap_replicate(seed: int, n_boot: int) -> list[dict]:
    """One data set at the true parameters, a MAP-EM fit, its bootstrap intervals.

    Quantities: the parameters sorted by mean (label-invariant in 1-D) and the log mixture
    density at fixed points; percentile intervals of level ``BOOT_LEVEL`` from the
    nonparametric bootstrap (``GaussianMixture.bootstrap``).
    """
    rng = np.random.default_rng(seed)
    X, _ = simulate_mixture(*BOOT_TRUTH, BOOT_ROWS, rng)
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = GaussianMixture(2, prior="default", random_state=seed).fit(X)
        boot = em.bootstrap(X, n_boot=n_boot, random_state=seed, ci_prob=BOOT_LEVEL)
    ok = ~boot.failed
    fitted = em.params_
    # in 1-D aligned_to_reference sorts by mean and needs no reference
    reps = aligned_to_reference(
        boot.weights[ok], boot.means[ok], boot.full_covariances()[ok], None, None
    )
    est = aligned_to_reference(
        fitted.weights[None], fitted.means[None], fitted.full_covariances()[None], None, None
    )
    truth = aligned_to_reference(*(t[None] for t in BOOT_TRUTH), None, None)

    def quantities(w, m, c):
        params, names = parameter_quantities(w, m, c)
        density = log_mixture_density(BOOT_POINTS, w, m, c)
        names = names + [f"log density at {y:g}" for y in BOOT_POINTS[:, 0]]
        return np.concatenate([params, density], axis=1), names

    values, names = quantities(*reps)
    (estimate,), _ = quantities(*est)
    (true_values,), _ = quantities(*truth)
    lower, upper = np.quantile(values, [(1 - BOOT_LEVEL) / 2, (1 + BOOT_LEVEL) / 2], axis=0)
    seconds = time.perf_counter() - began
    return [
        {
            "seed": seed,
            "quantity": name,
            "truth": t,
            "estimate": e,
            "lower": lo,
            "upper": hi,
            "covered": bool(lo <= t <= hi),
            "n_boot": int(ok.sum()),
            "seconds": seconds,
        }
        for name, t, e, lo, hi in zip(names, true_values, estimate, lower, upper, strict=True)
    ]
