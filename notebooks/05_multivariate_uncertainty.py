# %% [markdown]
# # Uncertainty in two dimensions: ellipses, label switching, VI versus NUTS
#
# Old Faithful again, now as a two-dimensional mixture with **full** covariances: each
# component is an ellipse with its own orientation. This notebook
#
# 1. draws the component ellipses of the MAP estimate and of posterior draws;
# 2. provokes **label switching**, diagnoses it and shows the relabelled posterior;
# 3. compares **variational inference** (mean-field and full-rank ADVI) with NUTS.

# %%
# %matplotlib inline
import logging
import os

import arviz_stats as azs
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import clone

from bayesgmm import datasets
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.posterior.draws import stack_draws
from bayesgmm.reporting import plots

logging.getLogger("pymc").setLevel(logging.WARNING)  # PyMC warnings only, no progress messages
FAST = os.environ.get("BAYESGMM_FAST") == "1"  # set by the test suite: fewer draws
DRAWS, TUNE, CHAINS = (300, 300, 2) if FAST else (1000, 1000, 4)
VI_STEPS = 30_000  # a ceiling: the fits stop when their ELBO settles
SEED = 5

X = datasets.load_faithful()
names = ["eruption duration (min)", "waiting time (min)"]

# %% [markdown]
# ## 1. Ellipses from the MAP and from the posterior
#
# The sampler starts every chain at the MAP-EM estimate (with a small jitter). The red
# ellipses are the MAP components; the blue ones come from 100 posterior draws, so their
# spread shows how well location, size and orientation of each component are known.

# %%
nuts = BayesianGaussianMixture(
    n_components=2,
    method="nuts",
    draws=DRAWS,
    tune=TUNE,
    chains=CHAINS,
    random_state=SEED,
    progressbar=False,
)
nuts.fit(X)
print(nuts.diagnose())
posterior = nuts.idata_["posterior"].to_dataset()
_, draw_means, draw_covs = stack_draws(posterior, max_draws=100, random_state=SEED)
plots.plot_ellipses(
    X, nuts.map_.means, nuts.map_.full_covariances(), draw_means, draw_covs, feature_names=names
)

# %% [markdown]
# How well is each component determined? Posterior sds of its centre, and of its
# waiting-time variance relative to the variance itself:

# %%
summary = nuts.summary()
short = int(np.argmin(nuts.map_.means[:, 0]))  # index of the short eruptions' component
waiting_var = summary.loc[[f"covariances[{k}, 1, 1]" for k in range(2)]]
pd.DataFrame(
    {
        "MAP weight": nuts.map_.weights,
        "sd of mean duration": [summary.at[f"means[{k}, 0]", "sd"] for k in range(2)],
        "sd of mean waiting": [summary.at[f"means[{k}, 1]", "sd"] for k in range(2)],
        "sd / mean of waiting variance": (waiting_var["sd"] / waiting_var["mean"]).to_numpy(),
    },
    index=pd.Index(["short" if k == short else "long" for k in range(2)], name="eruptions"),
).round(3)

# %% [markdown]
# The long eruptions' component holds about two thirds of the data; the short eruptions'
# centre is the less certain in waiting time, and its ellipse's waiting-time extent varies
# more, relative to its size.
#
# ## 2. Label switching
#
# The mixture likelihood does not change when the components swap names, so the
# posterior has $K!$ identical copies (here two). A chain explores one of them; chains
# that start in different copies estimate the "same" parameter at different places, and
# every per-component summary (means, R-hat, ESS) becomes meaningless.
#
# Above, every chain started from the same MAP point, so they agreed. To see switching we
# start half of the chains from the MAP with its two components swapped (`start` takes
# one point per chain).

# %%
swapped = nuts.map_.permuted([1, 0])
starts = [nuts.map_ if c % 2 == 0 else swapped for c in range(CHAINS)]
switched = clone(nuts).set_params(start=starts)  # same settings, new starts
switched.fit(X)
record = switched.relabeling_
print(record)
print("chain labelings (position j holds the chain's component):\n", record.chain_labelings)

# %% [markdown]
# `BayesianGaussianMixture` detects this after sampling: every draw is matched to the
# MAP components by the permutation that minimises the Kullback-Leibler divergence
# between matched Gaussians (Hungarian algorithm, `bayesgmm.posterior.relabel`), and the draws are
# stored relabelled. The record above says what it found: the odd chains sat in the
# swapped labelling for their whole length (no switching *within* a chain).
#
# To see the problem it solved, we undo the relabelling chain by chain (exact here,
# since each chain used a single labelling throughout) and compare the raw and the
# relabelled draws.

# %%
assert not record.switching_within_chains
relabelled = switched.idata_["posterior"].to_dataset()
inverse = np.argsort(record.chain_labelings, axis=1)  # old position of each component
raw = xr.concat(
    [
        relabelled.sel(chain=c)
        .isel(component=inverse[i])
        .assign_coords(component=relabelled.component)
        for i, c in enumerate(relabelled.chain.values)
    ],
    dim="chain",
)
rhat = pd.DataFrame(
    {
        "raw draws": azs.rhat(raw[["means"]])["means"].values.ravel(),
        "relabelled": azs.rhat(relabelled[["means"]])["means"].values.ravel(),
    },
    index=[f"mean[{k}, {n.split()[0]}]" for k in range(2) for n in names],
)
rhat.round(3)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
for ax, (label, ds) in zip(axes, [("raw draws", raw), ("relabelled", relabelled)], strict=True):
    for i, c in enumerate(ds.chain.values):
        ax.plot(
            ds["means"].sel(chain=c, component=0, feature=0),
            lw=0.6,
            color=f"C{i}",
            label=f"chain {c}",
        )
    ax.set(xlabel="draw", title=f"Mean duration of component 0: {label}")
axes[0].set_ylabel("eruption duration (min)")
axes[1].legend(loc="center right", fontsize="small")
fig.tight_layout()
plt.show()

# %% [markdown]
# Left, the raw chains of "component 0" sit on two different clusters (2 and 4.3
# minutes) and R-hat is far above 1.01; right, after relabelling, all chains describe the
# same component and R-hat is back near 1. `diagnose()` reports the switching in its
# `labels` line:

# %%
print(switched.diagnose())

# %% [markdown]
# ## 3. Variational inference versus NUTS
#
# ADVI fits a Gaussian approximation to the posterior in the unconstrained space by
# stochastic optimisation: **mean-field** (independent coordinates) or **full-rank**
# (correlated). It is much cheaper than NUTS on large data, but it is an approximation:
# mean-field ADVI in particular cannot represent correlations between parameters and is
# known to understate spread when the posterior is far from Gaussian. We fit both,
# starting from the same MAP point, and compare posterior standard deviations and
# correlations with NUTS.

# %%
vi_fits = {}
for method in ("advi", "fullrank_advi"):
    fit = BayesianGaussianMixture(
        n_components=2,
        method=method,
        draws=2000,
        vi_iterations=VI_STEPS,
        random_state=SEED,
        progressbar=False,
    )
    vi_fits[method] = fit.fit(X)
    print(fit.diagnose(), end="\n\n")

# %% [markdown]
# Each VI fit carries two checks, both Pareto k-hats of importance sampling against the
# exact posterior (below 0.5 good, below 0.7 usable). The first samples from the
# approximation q itself (Yao, Vehtari, Simpson & Gelman 2018): it says how good q is. The
# second samples from a *defensive* proposal (Owen & Zhou 2000) adapted once: half q and
# half q widened 2x, whose importance-weighted mean and covariance then centre a second
# such mixture (moment matching, Paananen et al. 2021), reweighted by Pareto-smoothed
# importance sampling (Vehtari et al. 2024): when its k-hat is below 0.7, the fit's
# posterior draws are these reweighted draws, resampled, so they correct q where it is too
# narrow or, for mean-field, uncorrelated (`diagnose()` says which draws the fit holds).
# Above 0.7, VI is wrong somewhere that matters and NUTS is the answer.

# %%
pd.DataFrame(
    {
        method: {
            "k-hat of q": round(diag.khat, 2),
            "verdict of q": diag.verdict,
            "k-hat of the correction": round(diag.correction_khat, 2),
            "correction ESS": round(diag.correction_ess),
            "posterior draws": diag.posterior,
        }
        for method, diag in ((m, fit.diagnose()) for m, fit in vi_fits.items())
    }
).transpose()

# %% [markdown]
# Beside those verdicts, the posterior sds against NUTS: of q's own draws (`q`), and of the
# fit's corrected draws.

# %%
params = [
    "weights[0]",
    "means[0, 0]",
    "means[0, 1]",
    "means[1, 0]",
    "means[1, 1]",
    "covariances[0, 1, 1]",
    "covariances[1, 1, 1]",
]


def q_sd(fit: BayesianGaussianMixture, labels: list[str]) -> pd.Series:
    """Posterior sds of ``labels`` from 4000 draws of the approximation q itself."""
    post = fit.approximation_.sample(4000, random_seed=SEED).posterior
    out = {}
    for label in labels:
        name, index = label.rstrip("]").split("[")
        draws = post[name].values.reshape(-1, *post[name].shape[2:])
        out[label] = draws[(slice(None), *(int(i) for i in index.split(",")))].std()
    return pd.Series(out)


sd = pd.DataFrame({"NUTS": nuts.summary().loc[params, "sd"]}).astype(float)
for name, fit in vi_fits.items():
    sd[f"{name} q / NUTS"] = q_sd(fit, params) / sd["NUTS"]
    sd[f"{name} / NUTS"] = fit.summary().loc[params, "sd"].astype(float) / sd["NUTS"]
corrected = sd[["advi / NUTS", "fullrank_advi / NUTS"]].to_numpy()
print(f"corrected VI sd / NUTS sd: from {corrected.min():.2f} to {corrected.max():.2f}")
sd.round(3)

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharex=True, sharey=True)
fits = {
    "NUTS": nuts,
    "mean-field ADVI": vi_fits["advi"],
    "full-rank ADVI": vi_fits["fullrank_advi"],
}
for ax, (label, fit) in zip(axes, fits.items(), strict=True):
    post = fit.idata_["posterior"].to_dataset()
    _, means, _ = stack_draws(post, max_draws=500, random_state=SEED)
    for k in range(2):
        ax.scatter(
            means[:, k, 0], means[:, k, 1], s=4, alpha=0.4, color=f"C{k}", label=f"component {k}"
        )
    ax.set(title=f"{label}: draws of the component means", xlabel=names[0])
axes[0].set_ylabel(names[1])
axes[0].legend(markerscale=4)
fig.tight_layout()
plt.show()

# %% [markdown]
# Zooming on one component, the long eruptions, shows the three clouds of its mean, and
# the table gives the posterior correlation between its mean duration and mean waiting
# time under each method.

# %%
long = int(np.argmax(nuts.map_.means[:, 0]))  # index of the long eruptions' component
fig, ax = plt.subplots(figsize=(6, 4.5))
correlation = {}
for (label, fit), color in zip(fits.items(), ["k", "C1", "C2"], strict=True):
    post = fit.idata_["posterior"].to_dataset()
    _, means, _ = stack_draws(post, max_draws=1000, random_state=SEED)
    ax.scatter(means[:, long, 0], means[:, long, 1], s=4, alpha=0.3, color=color, label=label)
    correlation[label] = np.corrcoef(means[:, long, 0], means[:, long, 1])[0, 1]
ax.set(xlabel=names[0], ylabel=names[1], title="Posterior of the long eruptions' mean")
ax.legend(markerscale=4)
plt.show()
pd.Series(correlation, name="corr(mean duration, mean waiting)").round(3)

# %% [markdown]
# ## What to take away
#
# * Posterior ellipses show how well each component's shape is determined; the MAP shows
#   one shape.
# * In more than one dimension, label switching is the rule whenever chains start apart
#   or the components overlap; per-component diagnostics are only meaningful after
#   relabelling, which `BayesianGaussianMixture` does and reports (`relabeling_`,
#   `diagnose()`).
# * On these data (272 points, two well-separated components) the posterior is close to
#   Gaussian, both VI fits pass their PSIS k-hat checks (the verdict table), and both
#   ADVI variants reproduce the NUTS standard deviations to within the range printed
#   above the ratio columns. The structural limit of mean-field ADVI shows in
#   the correlations: its q has none by construction, while NUTS and full-rank ADVI find
#   the positive correlation between a component's mean duration and mean waiting time;
#   the importance weights of the corrected draws, which the fit returns, restore it (the
#   last table).
#   With fewer points, overlapping components or skewed parameters (notebook 03), the
#   gaps widen: q's k-hat then nears 0.7 and the correction carries the fit (galaxies
#   K=3 in `reports/vi.md`), or both k-hats pass 0.7 and the fit warns. Use VI for speed
#   on large data (notebook 06) and check it against NUTS on a subsample.
