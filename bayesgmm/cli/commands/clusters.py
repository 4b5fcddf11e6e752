"""``bayesgmm clusters``: how many clusters, by the sparse finite mixture
(:func:`bayesgmm.selection.clusters.how_many_clusters`), and the point partition."""

from __future__ import annotations

import argparse

from bayesgmm.cli.data import SCALED_NOTE, InputError, load_dataset
from bayesgmm.cli.options import at_least, parse_e0
from bayesgmm.cli.output import Progress
from bayesgmm.core.io import atomic_directory, write_text_atomic


def run(args: argparse.Namespace, progress: Progress) -> int:
    from bayesgmm.reporting.plots import plot_cluster_count, plot_similarity_matrix
    from bayesgmm.reporting.report import figure_png, markdown_table
    from bayesgmm.selection.clusters import how_many_clusters

    k_max = at_least(args.max_components, "--max-components")
    e0 = parse_e0(args.e0)
    draws = at_least(args.draws, "--draws")
    burn = at_least(args.burn, "--burn", minimum=0)
    chains = at_least(args.chains, "--chains")
    data = load_dataset(args.data, args.columns, 1, scale=args.scale)
    if data.X.shape[0] < k_max:
        raise InputError(
            f"data {args.data!r} has {data.X.shape[0]} rows, too few for "
            f"--max-components {k_max}: use at most {data.X.shape[0]}"
        )
    with atomic_directory(args.out, overwrite=args.overwrite) as tmp:
        progress(
            f"sampling the sparse finite mixture (K_max={k_max}) on {data.name} "
            f"({data.X.shape[0]} x {data.X.shape[1]}): {chains} chains x {draws} draws"
        )
        result = how_many_clusters(
            data.X,
            k_max,
            e0=e0,
            prior=args.prior,
            draws=draws,
            burn=burn,
            chains=chains,
            thin=args.thin,
            loss=args.loss,
            ci_prob=args.ci_prob,
            random_state=args.seed,
        )
        print(result)
        progress("writing results")
        result.to_frame().to_csv(tmp / "cluster_count.csv")
        result.partition_frame().to_csv(tmp / "partition.csv")
        part = result.partitions
        (tmp / "similarity.png").write_bytes(
            figure_png(plot_similarity_matrix(part.psm, part.partition[part.psm_index]))
        )
        (tmp / "cluster_count.png").write_bytes(
            figure_png(plot_cluster_count(result.cluster_count))
        )
        ball = part.credible_ball
        lines = [
            f"# How many clusters: {data.name}",
            "",
            *([SCALED_NOTE, ""] if data.scaling is not None else []),
            f"**{result.answer()}.**",
            "",
            f"Model and priors: {result.priors()}.",
            "",
            "## Posterior of the number of occupied clusters K+",
            "",
            markdown_table(result.to_frame(), digits=3),
            "",
            "## Point partition",
            "",
            f"SALSO estimate under the {part.loss.upper()} loss: {part.n_clusters} clusters, "
            f"expected loss {part.loss_value:.3g}. Its {ball.ci_prob:.0%} credible ball has "
            f"radius {ball.radius:.3g} ({ball.n_in_ball} of {ball.n_draws} draws inside); "
            "its bounds:",
            "",
            markdown_table(ball.bounds_frame(), digits=3),
            "",
            markdown_table(part.cluster_frame(), digits=3),
            "",
            "`partition.csv`: one row per observation, its cluster and its certainty (mean "
            "posterior probability of sharing a cluster with the other members of its cluster).",
            "",
            "## Diagnostics of K+ (label-invariant)",
            "",
            markdown_table(result.diagnostics, digits=3),
            "",
            "```",
            args.command,
            "```",
        ]
        if not result.converged:
            lines[4:4] = [
                f"Warning: R-hat of K+ is {result.diagnostics.loc['n_clusters', 'rhat']:.3f}; "
                "the chains disagree, so run more draws or chains.",
                "",
            ]
        write_text_atomic(tmp / "summary.md", "\n".join(lines) + "\n")
    progress(
        f"written to {args.out}/ (cluster_count.csv, partition.csv, similarity.png, "
        "cluster_count.png, summary.md)"
    )
    return 0
