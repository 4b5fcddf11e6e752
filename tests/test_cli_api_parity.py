"""The command line and the library speak one vocabulary: same options, same defaults.

Every option that the command line shares with an estimator, :func:`bayesgmm.compare` or
:func:`bayesgmm.how_many_clusters` is compared, default against signature default, by
introspection (so a default changed on one side only fails here); every ``--option`` that a
user-facing message suggests exists; and ``bayesgmm compare --method map`` gives the table of
``bayesgmm.compare(..., method="map")`` with default options.
"""

import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesgmm
from bayesgmm import BayesianGaussianMixture, GaussianMixture, compare, how_many_clusters
from bayesgmm.cli import build_parser, main, parse_covariances, parse_e0

#: CLI destination -> parameter name, where they differ.
RENAMED = {"n_init": "em_n_init", "seed": "random_state", "jobs": "n_jobs"}
#: CLI ``--prior`` choice -> the library's prior argument.
PRIOR = {"mle": None, "default": "default"}


def _cli_defaults(command: str) -> dict:
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {a.dest: a.default for a in sub._actions if a.dest != "help"}


def _signature_defaults(function) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _shared(cli: dict, api: dict, names) -> dict:
    return {name: (cli[name], api[RENAMED.get(name, name)]) for name in names}


def _assert_same(pairs: dict) -> None:
    differ = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
    assert not differ, f"CLI default != library default (cli, library): {differ}"


BAYES_OPTIONS = (
    "draws",
    "tune",
    "chains",
    "sampler",
    "target_accept",
    "combine_chains",
    "max_draws",
    "noise",
    "missing",
    "method",
    "seed",
)


def test_fit_defaults_are_the_estimators():
    cli = _cli_defaults("fit")
    bayes = _signature_defaults(BayesianGaussianMixture)
    pairs = _shared(cli, bayes, (*BAYES_OPTIONS, "n_init"))
    pairs["covariance"] = (cli["covariance"], bayes["covariance_type"])
    pairs["prior"] = (PRIOR[cli["prior"]], bayes["prior"])
    pairs["ci_prob"] = (
        cli["ci_prob"],
        _signature_defaults(BayesianGaussianMixture.summary)["ci_prob"],
    )
    pairs["weights"] = (
        cli["weights"],
        _signature_defaults(BayesianGaussianMixture.fit)["sample_weight"],
    )
    em = _signature_defaults(GaussianMixture)
    for name in ("noise", "missing", "n_init"):
        pairs[f"em {name}"] = (cli[name], em[name])
    pairs["em seed"] = (cli["seed"], em["random_state"])
    _assert_same(pairs)
    assert set(pairs) >= {"n_init", "noise", "missing", "weights", "seed"}


@pytest.mark.parametrize("command", ["compare", "report"])
def test_compare_and_report_defaults_are_compares(command):
    cli = _cli_defaults(command)
    api = _signature_defaults(compare)
    pairs = _shared(
        cli,
        api,
        ("draws", "tune", "chains", "method", "noise", "missing", "seed", "jobs", "n_init"),
    )
    pairs["covariance"] = (parse_covariances(cli["covariance"]), list(api["covariance_types"]))
    pairs["prior"] = (PRIOR[cli["prior"]], api["em_prior"])
    pairs["weights"] = (cli["weights"], api["sample_weight"])
    # the posterior settings compare() passes on to every BayesianGaussianMixture
    bayes = _signature_defaults(BayesianGaussianMixture)
    for name in ("sampler", "target_accept", "combine_chains", "max_draws"):
        pairs[name] = (cli[name], bayes[name])
    _assert_same(pairs)


def test_clusters_defaults_are_how_many_clusters():
    cli = _cli_defaults("clusters")
    api = _signature_defaults(how_many_clusters)
    pairs = _shared(
        cli, api, ("max_components", "draws", "burn", "chains", "thin", "loss", "ci_prob", "seed")
    )
    pairs["e0"] = (parse_e0(cli["e0"]), api["e0"])
    _assert_same(pairs)


def test_every_fitting_command_takes_the_shared_options():
    parser = build_parser()
    for command, options in {
        "fit": ["--n-init", "auto", "--missing", "marginalize", "--noise", "--weights", "w"],
        "compare": ["--n-init", "auto", "--missing", "marginalize", "--noise", "--weights", "w"],
        "report": ["--n-init", "3", "--covariance", "all", "--scale", "--target-accept", "0.95"],
        "clusters": ["--scale", "--seed", "4", "--ci-prob", "0.9", "--loss", "binder"],
    }.items():
        needs_k = [] if command == "clusters" else ["--k", "2"]
        args = parser.parse_args([command, "faithful", *needs_k, "--out", "o", *options])
        assert args.seed in (None, 4)
    args = parser.parse_args(["compare", "faithful", "--k", "2", "--out", "o", "--n-init", "auto"])
    assert args.n_init == "auto" and parse_covariances("all")[:4] == [
        "full",
        "tied",
        "diag",
        "spherical",
    ]
    with pytest.raises(SystemExit):
        parser.parse_args(["fit", "faithful", "--k", "2", "--out", "o", "--n-init", "0"])


def test_seed_default_is_shown_in_help(capsys):
    for command in ("fit", "compare", "report", "clusters", "demo"):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "--seed SEED random seed (default: None" in text, command


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _suggested_options() -> dict[str, set[str]]:
    """``--option`` in every string literal of the package but docstrings, by file."""
    root = Path(bayesgmm.__file__).parent
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", node.value):
                    found.setdefault(option, set()).add(path.name)
    return found


def test_every_option_a_message_suggests_exists():
    parser = build_parser()
    known = {s for a in parser._actions for s in a.option_strings}
    for sub in parser._subparsers._group_actions[0].choices.values():
        known |= {s for a in sub._actions for s in a.option_strings}
    suggested = _suggested_options()
    assert {"--scale", "--target-accept", "--missing", "--combine-chains"} <= set(suggested)
    missing = {option: files for option, files in suggested.items() if option not in known}
    assert not missing, f"messages suggest options the command line lacks: {missing}"


def test_api_spellings_in_messages_are_parameters():
    from bayesgmm.core.missing import MISSING_REMEDY
    from bayesgmm.posterior.diagnostics import Diagnostics

    bad = Diagnostics(1.2, 50.0, 50.0, 3, 0.1, "none", 2, 300, drifting=(1,))
    text = " ".join([*bad.remedies, MISSING_REMEDY])
    for name in re.findall(r"\b([a-z_]+)=", text):
        assert name in inspect.signature(BayesianGaussianMixture).parameters, name


def _crabs_like(tmp_path) -> tuple[np.ndarray, Path]:
    """200 x 5, four anisotropic groups (the shape of the crabs data)."""
    rng = np.random.default_rng(20)
    parts = []
    for k in range(4):
        scale = rng.uniform(0.5, 3.0, 5)
        rotation = np.linalg.qr(rng.normal(size=(5, 5)))[0]
        cov = rotation @ np.diag(scale**2) @ rotation.T
        parts.append(rng.multivariate_normal(rng.normal(0, 5, 5) + 8 * np.eye(5)[k], cov, 50))
    X = np.vstack(parts)
    path = tmp_path / "crabs_like.csv"
    pd.DataFrame(X, columns=["FL", "RW", "CL", "CW", "BD"]).to_csv(path, index=False)
    return X, path


def test_cli_compare_map_gives_the_apis_table(tmp_path):
    X, path = _crabs_like(tmp_path)
    out = tmp_path / "cmp"
    argv = ["compare", str(path), "--k", "1-4", "--method", "map", "--seed", "7", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    cli = pd.read_csv(out / "comparison.csv", index_col=0)
    api = compare(X, range(1, 5), method="map", random_state=7).table
    assert list(cli.index) == list(api.index)
    assert list(cli["covariance_type"]) == list(api["covariance_type"])
    assert list(cli["n_components"]) == list(api["n_components"])
    for column in ("loglik", "bic", "aic", "icl"):
        np.testing.assert_allclose(cli[column], api[column], rtol=0, atol=1e-8)


def test_top_level_exports_stay_lazy():
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys

        import bayesgmm

        names = {"compare", "how_many_clusters", "ModelComparison", "ClusterAnalysis"}
        assert names <= set(bayesgmm.__all__) and names <= set(dir(bayesgmm))
        assert not {"pymc", "pytensor", "arviz", "arviz_stats"} & set(sys.modules)
        from bayesgmm import ClusterAnalysis, ModelComparison, compare, how_many_clusters
        from bayesgmm.selection import clusters, compare as compare_module
        assert compare is compare_module.compare and how_many_clusters is clusters.how_many_clusters
        assert ModelComparison is compare_module.ModelComparison
        assert ClusterAnalysis is clusters.ClusterAnalysis
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_random_state_means_the_same_everywhere():
    from bayesgmm.core.validation import seed_sequence

    X = np.random.default_rng(1).normal(size=(120, 2)) + np.repeat([[0, 0], [5, 5]], 60, axis=0)
    a = GaussianMixture(2, n_init=2, random_state=np.random.default_rng(3)).fit(X)
    b = GaussianMixture(2, n_init=2, random_state=np.random.default_rng(3)).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    from bayesgmm.bayes.options import Settings

    def check(estimator):
        return Settings.checked(estimator.get_params(deep=False), type(estimator).__name__)

    for value in (None, 0, np.random.default_rng(0), np.random.SeedSequence(0)):
        check(BayesianGaussianMixture(2, random_state=value))
    for bad in (1.5, "0", -1):
        with pytest.raises(ValueError, match="random_state"):
            check(BayesianGaussianMixture(2, random_state=bad))
    # one helper: an int as SeedSequence(int), a Generator consumed, a SeedSequence left as it is
    assert seed_sequence(5).generate_state(3).tolist() == (
        np.random.SeedSequence(5).generate_state(3).tolist()
    )
    rng, twin = np.random.default_rng(8), np.random.default_rng(8)
    assert seed_sequence(rng).entropy == seed_sequence(twin).entropy
    assert seed_sequence(rng).entropy != seed_sequence(np.random.default_rng(8)).entropy
    seq = np.random.SeedSequence(2)
    seed_sequence(seq).spawn(2)
    assert seq.n_children_spawned == 0
