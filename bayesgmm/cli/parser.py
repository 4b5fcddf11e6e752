"""The ``bayesgmm`` argument parser: one subcommand per module of :mod:`bayesgmm.cli.commands`."""

from __future__ import annotations

import argparse

from bayesgmm.cli.commands import clusters as clusters_command
from bayesgmm.cli.commands import compare as compare_command
from bayesgmm.cli.commands import demo as demo_command
from bayesgmm.cli.commands import fit as fit_command
from bayesgmm.cli.commands import predict as predict_command
from bayesgmm.cli.commands import report as report_command
from bayesgmm.cli.commands import warmup as warmup_command
from bayesgmm.cli.data import BUNDLED
from bayesgmm.cli.options import (
    HelpFormatter,
    OneLineParser,
    add_bootstrap_option,
    add_data_options,
    add_debug_option,
    add_overwrite_option,
    add_seed_option,
    jobs,
    non_negative_int,
    positive_int,
    probability,
)
from bayesgmm.cli.output import EXIT_DIAGNOSTICS
from bayesgmm.core.covariance import bayesian_covariance_names, covariance_names
from bayesgmm.core.methods import METHODS


def build_parser() -> argparse.ArgumentParser:
    """The ``bayesgmm`` argument parser."""
    parser = OneLineParser(
        prog="bayesgmm",
        description=(
            "Bayesian Gaussian mixtures: fit, compare, report, clusters, predict, warmup."
        ),
        formatter_class=HelpFormatter,
    )
    add_debug_option(parser, False)
    sub = parser.add_subparsers(dest="name", required=True)
    fit = sub.add_parser(
        "fit",
        help="fit one model; write posterior, point estimates, summary",
        formatter_class=HelpFormatter,
    )
    add_data_options(fit, "number of components, e.g. 3")
    fit.add_argument(
        "--covariance",
        default="full",
        choices=bayesian_covariance_names(),
        help="covariance structure (or mclust's name of it: VVV, EEE, VVI, VII), or one of "
        "mclust's ten other models (EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV)",
    )
    fit.add_argument(
        "--method",
        default="nuts",
        choices=METHODS,
        help="NUTS, conjugate Gibbs (full covariances, complete data), auto (Gibbs where it "
        "applies with 2 or more features, NUTS otherwise), variational (advi, fullrank_advi) "
        "or the MAP point estimate only",
    )
    fit.add_argument(
        "--prior",
        choices=("default", "hierarchical", "mle"),
        default="default",
        help="prior of the fit: default (weakly informative), hierarchical (the components' "
        "covariance scale learned, Malsiner-Walli et al. 2016; --covariance full), or mle "
        "(flat: maximum likelihood, --method map only)",
    )
    add_bootstrap_option(fit)
    fit.add_argument(
        "--strict",
        action="store_true",
        help=f"exit with status {EXIT_DIAGNOSTICS} when the sampler checks fail "
        "(outputs are still written)",
    )
    fit.set_defaults(func=fit_command.run)
    for name, func, text in (
        (
            "compare",
            compare_command.run,
            "compare K and covariance types by LOO and BIC/AIC/ICL; writes the table, "
            "bic_by_model.png (BIC by model in mclust's layout, lower is better, as the "
            "table) and (with a posterior) loo_comparison.png",
        ),
        (
            "report",
            report_command.run,
            "comparison plus the chosen model's analysis as Markdown/HTML",
        ),
    ):
        cmd = sub.add_parser(name, help=text, formatter_class=HelpFormatter)
        add_data_options(cmd, "numbers of components, e.g. 1-6 or 1-3,5")
        cmd.add_argument(
            "--covariance",
            default="full",
            help=f"comma-separated covariance types out of {', '.join(covariance_names())}, "
            "e.g. full,diag, or all (with --method map all fourteen of mclust's models)",
        )
        cmd.add_argument(
            "--method",
            default="nuts",
            choices=METHODS,
            help="posterior method (auto: Gibbs or NUTS per candidate; map: EM criteria only)",
        )
        cmd.add_argument(
            "--jobs", type=jobs, default=1, help="candidates fitted in parallel (-1: all cores)"
        )
        cmd.add_argument(
            "--prior",
            choices=("mle", "default"),
            default="mle",
            help="prior of the EM fits behind BIC/AIC/ICL: mle (their textbook definition) "
            "or default (MAP-EM)",
        )
        if name == "report":
            add_bootstrap_option(cmd)
        cmd.set_defaults(func=func)
    clusters = sub.add_parser(
        "clusters",
        help="how many clusters (sparse finite mixture) and which points belong together",
        formatter_class=HelpFormatter,
    )
    clusters.add_argument("data", metavar="DATA", help=f"CSV file or one of {', '.join(BUNDLED)}")
    clusters.add_argument("--out", required=True, help="output folder")
    clusters.add_argument(
        "--max-components", type=positive_int, default=10, help="K_max, the most clusters"
    )
    clusters.add_argument(
        "--e0",
        default="0.01",
        help="Dirichlet parameter of the weights, fixed, or 'gamma' for e0 ~ Gamma(10, 10 K_max)",
    )
    clusters.add_argument(
        "--prior",
        choices=("default", "hierarchical"),
        default="default",
        help="prior of the components: default (fixed Inverse-Wishart scale) or hierarchical "
        "(its scale learned, Malsiner-Walli et al. 2016)",
    )
    clusters.add_argument("--draws", type=positive_int, default=2000, help="kept draws per chain")
    clusters.add_argument(
        "--burn", type=non_negative_int, default=1000, help="burn-in sweeps per chain"
    )
    clusters.add_argument("--chains", type=positive_int, default=2, help="Gibbs chains")
    clusters.add_argument("--thin", type=positive_int, default=1, help="Gibbs sweeps per kept draw")
    clusters.add_argument(
        "--loss",
        choices=("vi", "binder"),
        default="vi",
        help="loss of the point partition and distance of its credible ball",
    )
    clusters.add_argument(
        "--ci-prob",
        type=probability,
        default=0.95,
        help="probability of the partition's credible ball",
    )
    add_seed_option(clusters)
    clusters.add_argument("--columns", help="comma-separated columns to use (default: all)")
    clusters.add_argument(
        "--scale",
        action="store_true",
        help="standardise every column (mean 0, sd 1) before fitting",
    )
    clusters.add_argument("--quiet", action="store_true", help="no progress messages")
    add_overwrite_option(clusters)
    add_debug_option(clusters, argparse.SUPPRESS)
    clusters.set_defaults(func=clusters_command.run)
    demo = sub.add_parser(
        "demo",
        help="fit the bundled Old Faithful data and write figures",
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--out", default="bayesgmm-demo", help="output folder")
    add_seed_option(demo)
    demo.add_argument("--no-posterior", action="store_true", help="MAP-EM only (no NUTS)")
    demo.add_argument("--quiet", action="store_true", help="no progress messages")
    add_overwrite_option(demo)
    add_debug_option(demo, argparse.SUPPRESS)
    demo.set_defaults(func=demo_command.run)
    predict = sub.add_parser(
        "predict",
        help="assign new rows with a saved fit: probabilities with credible intervals",
        formatter_class=HelpFormatter,
    )
    predict.add_argument("model", metavar="MODEL_DIR", help="folder written by 'bayesgmm fit'")
    predict.add_argument(
        "data", metavar="DATA", help="CSV file or bundled data set with the model's columns"
    )
    predict.add_argument("--out", required=True, help="output folder (predictions.csv)")
    predict.add_argument(
        "--ci-prob", type=probability, default=0.89, help="credible interval probability"
    )
    predict.add_argument(
        "--max-draws", type=positive_int, default=1000, help="posterior draws used (a subset)"
    )
    predict.add_argument("--quiet", action="store_true", help="no progress messages")
    add_overwrite_option(predict)
    add_debug_option(predict, argparse.SUPPRESS)
    predict.set_defaults(func=predict_command.run)
    warmup = sub.add_parser(
        "warmup",
        help="compile the kernels once (first run on a machine: minutes), so no fit waits",
        formatter_class=HelpFormatter,
    )
    warmup.add_argument(
        "--covariance",
        default="full,tied,diag,spherical",
        help="comma-separated covariance structures to compile, or 'all'",
    )
    warmup.add_argument(
        "--no-posterior", action="store_true", help="EM kernels only (no NUTS, no sparse mixture)"
    )
    warmup.add_argument("--quiet", action="store_true", help="no progress messages")
    add_debug_option(warmup, argparse.SUPPRESS)
    warmup.set_defaults(func=warmup_command.run)
    return parser
