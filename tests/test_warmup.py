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
