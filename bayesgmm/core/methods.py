"""Names of the inference methods and NUTS samplers, and NUTS defaults, defined once.

This module imports nothing heavy, so the command line and :mod:`bayesgmm.selection.compare` can
offer the choices without loading PyMC.
"""

from typing import Literal, get_args

#: Methods that give posterior draws.
PosteriorMethod = Literal["nuts", "gibbs", "advi", "fullrank_advi"]
#: ``method="auto"``: the conjugate Gibbs sampler where it is exact and was measured to win,
#: NUTS otherwise (the rule: :func:`bayesgmm.bayes.auto.choose_method`).
AUTO = "auto"
#: Every method of :class:`bayesgmm.BayesianGaussianMixture`: the posterior ones, the choice
#: between Gibbs and NUTS, and the MAP.
Method = Literal[PosteriorMethod, "auto", "map"]
#: NUTS implementations.
Sampler = Literal["nutpie", "pymc"]

POSTERIOR_METHODS: tuple[str, ...] = get_args(PosteriorMethod)
METHODS: tuple[str, ...] = get_args(Method)
SAMPLERS: tuple[str, ...] = get_args(Sampler)
#: Markov chain methods: several chains, R-hat/ESS diagnostics, ``sample_stats``
#: (``"gibbs"``: the conjugate Gibbs sampler of :mod:`bayesgmm.bayes.gibbs`).
MCMC_METHODS: tuple[str, ...] = ("nuts", "gibbs")

#: NUTS tuning steps per chain. Measured on 2026-11-27 (default settings otherwise,
#: ``bayesgmm.BayesianGaussianMixture(K, random_state=seed, tune=t)``): galaxies K=3
#: passes the strict checks for 47 of 48 seeds with 500 (0-47) as with 1000 (0-15 and
#: 16-47; each failure one divergence), 14 of 16 with 300 (a divergence each); iris K=2
#: full 8 of 8 with 300 and 500; the minimum bulk ESS of Old Faithful K=2 full and the
#: synthetic 2-D K=4 set is the same within run-to-run noise with 300, 500 or 1000, while
#: the fit takes 17-21% less time with 500 (2.3 s against 2.9 s, 16 s against 20 s).
TUNE = 500

__all__ = [
    "AUTO",
    "MCMC_METHODS",
    "METHODS",
    "POSTERIOR_METHODS",
    "SAMPLERS",
    "TUNE",
    "Method",
    "PosteriorMethod",
    "Sampler",
]
