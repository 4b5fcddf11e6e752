"""The stopping rules of EM: when the objective has converged.

One definition each, shared by the Python loop (:func:`bayesgmm.em.run.iterate_em`) and the
compiled loop (:func:`bayesgmm.em.loop.converged`, which both rules call).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _absolute_change(history: list[float], tol: float) -> bool:
    """scikit-learn's rule: the objective changed by less than ``tol``."""
    return _stopping_rule(history, tol, "absolute")


def _aitken(history: list[float], tol: float) -> bool:
    """Aitken's rule (Bohning et al. 1994, McNicholas et al. 2010; mclust's idea).

    EM converges linearly, ``l_{k+1} - l_k ~ a (l_k - l_{k-1})``, so a small change can
    hide a long way to go when ``a`` is near one. With ``a`` estimated from the last three
    objectives, the limit is ``l_inf = l_{k-1} + (l_k - l_{k-1}) / (1 - a)``; stop when
    ``|l_inf - l_{k-1}| < tol``, which is never looser than the absolute rule.
    """
    return _stopping_rule(history, tol, "aitken")


def _stopping_rule(history: list[float], tol: float, rule: str) -> bool:
    """The compiled loop's rule (:func:`bayesgmm.em.loop.converged`), one definition; both
    rules read only the last three objectives."""
    from bayesgmm.em.loop import RULE_CODES, converged

    recent = np.asarray(history[-3:], dtype=np.float64)
    return bool(converged(recent, len(recent), tol, RULE_CODES[rule]))


#: Stopping rules of EM: ``rule(objectives since the last re-seed, tol) -> converged``.
STOPPING_RULES: dict[str, Callable[[list[float], float], bool]] = {
    "absolute": _absolute_change,
    "aitken": _aitken,
}


__all__ = ["STOPPING_RULES"]
