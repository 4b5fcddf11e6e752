"""PyMC's ``find_MAP`` as the tests' reference optimiser (no test of its own here).

Compiled in ``FAST_COMPILE`` mode: PyTensor's Python linker compiles nothing (numba takes a
minute with a cold cache for a graph that no fit uses).
"""

from __future__ import annotations

import warnings

import pymc as pm


def find_map(
    model: pm.Model,
    start: dict,
    *,
    names: tuple[str, ...] | None = ("weights", "means", "covariances"),
    ftol: float = 1e-14,
    gtol: float = 1e-10,
) -> dict:
    """The posterior mode of ``model`` from ``start`` (no jitter), as arrays by name.

    Parameters
    ----------
    model : pymc.Model
    start : dict
        Initial values of the free variables.
    names : tuple of str or None
        The variables returned; ``None``: every variable of the result.
    ftol, gtol : float
        L-BFGS-B's stopping tolerances.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        result = pm.find_MAP(
            model=model,
            initvals=start,
            jitter=False,
            progressbar=False,
            return_inferencedata=True,
            maxiter=20_000,
            ftol=ftol,
            gtol=gtol,
            compile_kwargs={"mode": "FAST_COMPILE"},
        )
    posterior = result["posterior"]
    names = tuple(posterior.data_vars) if names is None else names
    return {name: posterior[name].values[0, 0] for name in names}
