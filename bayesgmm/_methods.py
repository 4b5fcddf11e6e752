"""Names of the inference methods and NUTS samplers, defined once.

This module imports nothing heavy, so the command line and :mod:`bayesgmm.compare` can
offer the choices without loading PyMC.
"""

from typing import Literal, get_args

#: Methods that give posterior draws.
PosteriorMethod = Literal["nuts", "advi", "fullrank_advi"]
#: Every method of :class:`bayesgmm.BayesianGaussianMixture`: the posterior ones and the MAP.
Method = Literal[PosteriorMethod, "map"]
#: NUTS implementations.
Sampler = Literal["nutpie", "pymc"]

POSTERIOR_METHODS: tuple[str, ...] = get_args(PosteriorMethod)
METHODS: tuple[str, ...] = get_args(Method)
SAMPLERS: tuple[str, ...] = get_args(Sampler)

__all__ = ["METHODS", "POSTERIOR_METHODS", "SAMPLERS", "Method", "PosteriorMethod", "Sampler"]
