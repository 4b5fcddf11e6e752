"""``method="auto"``: the conjugate Gibbs sampler where it is exact and measured to win, NUTS
otherwise.

Both samplers target the same posterior (:mod:`bayesgmm.bayes.gibbs`); the choice is about
speed only. The rule (:func:`auto_rule`) comes from the side-by-side runs of
``benchmarks/bench_gibbs.py`` (``reports/benchmarks.md``, "Gibbs vs NUTS: ESS per second":
whole warm fits, 4 chains, the smallest bulk ESS over weights, means and covariance entries
per second of wall time, on the shared 2-core machine):

* **Gibbs** whenever the model is in its scope (:func:`bayesgmm.bayes.gibbs.gibbs_problem`:
  full covariances, the NIW prior, complete unweighted data without a noise component, no
  ``sampler_kwargs``, equal Dirichlet concentrations in one dimension) and no NUTS setting
  is asked for (``sampler="pymc"``). It gave more bulk ESS per second than NUTS on every
  data set measured, at every dimension: galaxies (d=1, K=3) 5.2x, Old Faithful (d=2, K=2)
  1.8x, iris (d=4, K=2) 3.5x; where neither sampler mixes (iris K=3, wine K=3 at d=13) it
  fails faster; on breast cancer (d=30, K=2, 569 rows) NUTS needs trees of depth 10 for
  its 990 parameters (the issue's fit: 43 minutes) while the whole Gibbs fit takes well
  under a minute. No measured case favoured NUTS inside Gibbs's scope, so the rule has no
  dimension or row threshold.
* **NUTS** otherwise: diag, tied and spherical covariances, the LKJ prior, missing entries,
  frequency weights, a noise component, unequal concentrations in one dimension,
  ``sampler="pymc"``.

Differences that remain: a Gibbs run has ``draws`` draws per chain (NUTS's default
extension to ``max_draws`` does not apply) and no E-BFMI or divergences. The choice is
recorded: the fitted ``method_`` is the method that ran, and ``method_choice_`` (kept in the
posterior's attributes, shown by ``diagnose()``) says why.
"""

from __future__ import annotations

import dataclasses

from bayesgmm.bayes.gibbs import gibbs_problem
from bayesgmm.bayes.options import Settings
from bayesgmm.core.spec import MixtureSpec


@dataclasses.dataclass(frozen=True)
class MethodChoice:
    """What ``method="auto"`` chose and why.

    Attributes
    ----------
    method : {"gibbs", "nuts"}
    reason : str
    """

    method: str
    reason: str

    def __str__(self) -> str:
        return f"method='auto' chose {self.method!r}: {self.reason}"


def auto_rule(*, gibbs_applies: bool, nuts_setting: bool = False) -> str:
    """``"gibbs"`` or ``"nuts"``: the rule of ``method="auto"`` (module docstring).

    Parameters
    ----------
    gibbs_applies : bool
        Whether the model is in the Gibbs sampler's scope
        (:func:`bayesgmm.bayes.gibbs.gibbs_problem` finds nothing).
    nuts_setting : bool, default=False
        Whether a setting only NUTS uses was asked for (``sampler="pymc"``).
    """
    return "gibbs" if gibbs_applies and not nuts_setting else "nuts"


def choose_method(
    settings: Settings, spec: MixtureSpec, *, weighted: bool, missing: bool
) -> MethodChoice:
    """The method ``method="auto"`` runs for this model, with the reason.

    Parameters
    ----------
    settings : Settings
    spec : MixtureSpec
    weighted : bool
        Whether the fit has frequency weights.
    missing : bool
        Whether the data have missing entries.

    Returns
    -------
    MethodChoice
    """
    problem = gibbs_problem(settings, spec, weighted=weighted, missing=missing)
    nuts_setting = settings.sampler != "nutpie"
    if auto_rule(gibbs_applies=problem is None, nuts_setting=nuts_setting) == "gibbs":
        return MethodChoice(
            "gibbs",
            f"full covariances with the conjugate prior (d={spec.n_features}): the Gibbs "
            "sampler gave more bulk ESS per second than NUTS at every dimension measured "
            "(d = 1, 2, 4, 13, 30)",
        )
    if nuts_setting:
        return MethodChoice("nuts", f"sampler={settings.sampler!r} is a NUTS setting")
    return MethodChoice("nuts", f"outside the Gibbs sampler's scope ({problem})")


__all__ = ["MethodChoice", "auto_rule", "choose_method"]
