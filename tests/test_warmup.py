"""bayesgmm warmup: compiles the default paths once; a second run finds them cached."""

from __future__ import annotations

import pytest

from bayesgmm.cli.main import main
from bayesgmm.selection.warmup import warmup


def test_warmup_times_each_step_and_rejects_unknown_structures():
    seconds = warmup(["diag", "spherical"], posterior=False, clusters=False)
    assert list(seconds) == ["EM diag", "EM spherical"]
    assert all(value > 0 for value in seconds.values())
    with pytest.raises(ValueError, match="unknown covariance type"):
        warmup(["fulll"], posterior=False)


def test_the_warmup_command_prints_its_steps_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["warmup", "--covariance", "tied", "--no-posterior", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "EM tied" in out and "total" in out and "NUTS" not in out
    assert list(tmp_path.iterdir()) == []
    assert main(["warmup", "--covariance", "nope", "--quiet"]) == 2


def test_the_gibbs_step_compiles_what_method_auto_runs():
    import warnings

    import numpy as np

    from bayesgmm import BayesianGaussianMixture, UnreliablePosteriorWarning
    from bayesgmm.posterior import gibbs_kernels

    seconds = warmup((), posterior=False, clusters=False, gibbs=True)
    assert list(seconds) == ["Gibbs full"]
    # the kernel gibbs_chain calls (compiled, or loaded from the disk cache)
    compiled = len(gibbs_kernels._run_gibbs_chain.signatures)
    assert compiled >= 1
    # another data set, dimension and K, the automatic method: no new specialisation
    X = np.random.default_rng(1).standard_normal((60, 3)) + np.repeat(np.eye(3) * 5, 20, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliablePosteriorWarning)  # 30 draws: fails checks
        fit = BayesianGaussianMixture(
            3, method="auto", draws=30, tune=10, chains=2, random_state=0
        ).fit(X)
    assert fit.method_ == "gibbs"
    assert len(gibbs_kernels._run_gibbs_chain.signatures) == compiled


def test_the_demo_compiles_the_samplers_of_compare_clusters_and_method_auto(monkeypatch):
    from bayesgmm.cli.commands import demo
    from bayesgmm.selection import warmup as warmup_module

    asked = []
    monkeypatch.setattr(
        warmup_module, "warmup", lambda *args, **kwargs: asked.append((args, kwargs)) or {}
    )
    lines = []
    demo._compile_for_first_runs(lines.append)
    assert asked == [(((),), {"posterior": False, "clusters": True, "gibbs": True})]
    assert "--method auto" in lines[0]
