# %% [markdown]
# # MAP versus posterior: the galaxy velocities
#
# The velocities of 82 galaxies in the Corona Borealis region (Roeder 1990) are the
# classic small, lumpy data set for mixtures: a main group near 20,000 km/s, a few fast
# and a few slow galaxies. With so few points, a point estimate hides a lot. This notebook
# fits a three-component mixture twice:
#
# * **MAP-EM**: the mode of the posterior (`GaussianMixture(prior="default")`), and
# * **NUTS**: draws from the whole posterior under the same prior,
#
# and compares them parameter by parameter, on the density, and on each galaxy's
# assignment, to show where and why they differ. (Three components: with four, the
# central group splits in two and the posterior becomes multimodal; NUTS then fails its
# convergence checks. Notebook 04 shows how to ask which K the data support, there for
# Old Faithful.)

# %%
# %matplotlib inline
import logging
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from bayesgmm import datasets
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.posterior import summaries as analysis
from bayesgmm.reporting import plots

logging.getLogger("pymc").setLevel(logging.WARNING)  # PyMC warnings only, no progress messages
FAST = os.environ.get("BAYESGMM_FAST") == "1"  # set by the test suite: fewer draws
DRAWS, TUNE, CHAINS = (300, 300, 2) if FAST else (1000, 1000, 4)
SEED = 3
K = 3

X = datasets.load_galaxies()
names = ["velocity (1000 km/s)"]
print(f"{len(X)} galaxies, velocities from {X.min():.1f} to {X.max():.1f} thousand km/s")

# %% [markdown]
# ## Two fits of one model
#
# Both fits use the same likelihood and the same conjugate prior
# (`MixturePrior.default`: weakly informative, scaled to the data). MAP-EM maximises the
# posterior density; NUTS samples it. `BayesianGaussianMixture` runs MAP-EM first (the
# best of its EM restarts, `em_n_init="auto"`) to start its chains, and keeps that fit as
# `em_`. After sampling it runs EM again from each chain's highest-density draw and keeps
# a better optimum, should one turn up, as the MAP `map_` (`map_source_`, printed below,
# says which fit it is). In one dimension the model orders the component means, so
# component 0 is always the slowest: there is no label switching to undo.

# %%
bgm = BayesianGaussianMixture(
    n_components=K,
    method="nuts",
    draws=DRAWS,
    tune=TUNE,
    chains=CHAINS,
    random_state=SEED,
    progressbar=False,
)
bgm.fit(X)
map_em = bgm.em_  # the MAP-EM fit that started the sampler (MAP: it has a prior)
assert map_em.prior_ is not None
print(bgm.diagnose())
print("MAP:", bgm.map_source_)
posterior = bgm.idata_["posterior"].to_dataset()

# %% [markdown]
# ## The MAP-versus-posterior table
#
# One row per parameter: the MAP value beside the posterior mean, median, sd and 89%
# equal-tailed interval. Two derived columns say how far apart they are:
# `mean_over_map` (posterior mean divided by the MAP) and `shift_in_sd` (posterior mean
# minus MAP, in posterior standard deviations).

# %%
table = analysis.map_vs_posterior(posterior, bgm.map_, feature_names=["v"])
table["mean_over_map"] = table["mean"] / table["map"]
table["shift_in_sd"] = (table["mean"] - table["map"]) / table["sd"]
table.round(3)

# %% [markdown]
# The same comparison as a figure. Parameters of different scales share one axis: each row
# is shifted by its posterior median and divided by its posterior sd, so the line is the
# 89% interval, the dot the median and the cross the MAP, all in posterior standard
# deviations.

# %%
plots.plot_map_vs_posterior(table)

# %% [markdown]
# ## Where they differ, and why
#
# Per component: how many galaxies it holds under the MAP ($N_k = \sum_n \gamma_{nk}$),
# how far the posterior mean of its centre lies from the MAP, how many galaxies' worth of
# weight the 89% interval allows, and the posterior mean of its variance over the MAP.

# %%
n_obs = len(X)
map_counts = map_em.predict_proba(X).sum(axis=0)[np.argsort(map_em.means_[:, 0])]
rows = table.set_index("parameter")
per_component = pd.DataFrame(
    {
        "MAP N_k (galaxies)": map_counts,
        "|mean - MAP| of the centre (km/s)": [
            1000 * abs(rows.at[f"mu[{k}, v]", "mean"] - rows.at[f"mu[{k}, v]", "map"])
            for k in range(K)
        ],
        "weight, 89% lower (galaxies)": [n_obs * rows.at[f"w[{k}]", "lower"] for k in range(K)],
        "weight, 89% upper (galaxies)": [n_obs * rows.at[f"w[{k}]", "upper"] for k in range(K)],
        "variance: mean / MAP": [rows.at[f"Sigma[{k}, v, v]", "mean_over_map"] for k in range(K)],
    },
    index=pd.Index(["slow", "main", "fast"], name="component"),
)
print(
    f"MAP inside its 89% interval: {int(table['map_in_interval'].sum())} of {len(table)} parameters"
)
per_component.round(2)

# %% [markdown]
# The MAP values lie inside their intervals (the count above), and the **means** agree to
# a small fraction of the spread between groups: the data pin the centres down. The
# differences concentrate on the **small components**, the slow and the fast groups:
#
# * **Variances.** A variance estimated from a few points has a long right tail (an
#   inverse-gamma shape). The MAP is the *mode*, at the left of that tail; the posterior
#   median and mean lie to its right and the interval stretches far above it. The fewer
#   galaxies, the larger the ratio of posterior mean to MAP (last column).
# * **Weights.** The slow and fast groups hold a handful of galaxies each under the MAP,
#   but their weight intervals span a wide range of galaxy counts, relatively the wider
#   the fewer galaxies a group holds (the two weight columns).
# * **The main group** has a nearly symmetric posterior, and MAP and posterior mean
#   nearly coincide.
#
# Why: the MAP is the single point of highest posterior density. Where the posterior is
# narrow and symmetric (many points per parameter) that point is also its centre; where
# it is skewed (few points, scale parameters), the mode is not where the probability
# mass is, and a point estimate says nothing about the width. The five parameters whose
# posterior mean is furthest from the MAP, relatively:

# %%
largest = table.reindex(table["mean_over_map"].sub(1).abs().sort_values(ascending=False).index)
largest[["parameter", "map", "median", "mean", "lower", "upper", "mean_over_map"]].head(5).round(3)

# %% [markdown]
# ## Frequentist uncertainty beside the Bayesian: the bootstrap
#
# A point estimate can carry its own uncertainty without a sampler: refit it on resampled
# data. `GaussianMixture.bootstrap` resamples the galaxies with replacement (as frequency
# weights), refits MAP-EM from the fitted solution under the same prior, relabels every
# replicate to the fit, and returns standard errors and percentile intervals (mclust's
# `MclustBootstrap`). Passed to `map_vs_posterior`, they become three more columns:
# `boot_se` beside the posterior `sd`, and the bootstrap's 89% interval beside the
# credible interval.

# %%
N_BOOT = 100 if FAST else 400
boot = map_em.bootstrap(X, n_boot=N_BOOT, random_state=SEED)
with_boot = analysis.map_vs_posterior(posterior, bgm.map_, feature_names=["v"], bootstrap=boot)
with_boot["boot_se_over_sd"] = with_boot["boot_se"] / with_boot["sd"]
columns = ["parameter", "map", "sd", "boot_se", "boot_se_over_sd"]
with_boot[[*columns, "lower", "upper", "boot_lower", "boot_upper"]].round(3)

# %% [markdown]
# For the main group's centre and variance the two kinds of uncertainty agree
# (`boot_se_over_sd` near 1): with seventy galaxies the likelihood dominates the prior and
# the sampling distribution of the estimate has the width of the posterior. For the small
# groups they part, in both directions:
#
# * the **weights** of the main and the fast group vary several times more over
#   bootstrap samples than in the posterior (`boot_se_over_sd`): a resample can leave out
#   most of the three fast galaxies, and the refitted fast component then holds fewer of
#   them or reaches into the main group's tail;
# * the small groups' **variances** vary far less: every replicate is a MAP, the *mode* of
#   a skewed posterior, and that mode moves little when the data change, while the
#   posterior's sd measures its long right tail (the table above).
#
# Read the bootstrap as "how much would this estimate change on another sample of 82
# galaxies", the posterior as "what the parameters can be, given these 82". Where they
# differ this much, the point estimate's standard error is not a substitute for the
# posterior.

# %% [markdown]
# ## Credible bands on the density
#
# The MAP gives one density curve. The posterior gives a distribution of curves: the
# band is the 89% interval of the density at each velocity over the posterior draws.
# It is narrow over the main group, and wide around the two small groups, where a few
# galaxies say little about the peak's height and width. The MAP peaks of the small groups
# are taller and narrower than the posterior mean density: the MAP variances are the
# small modes seen in the table.

# %%
grid = np.linspace(X.min() - 3, X.max() + 3, 400)[:, None]
band = analysis.marginal_density_band(grid, posterior, max_draws=1000)
map_density = analysis.marginal_density(
    grid, bgm.map_.weights, bgm.map_.means, bgm.map_.full_covariances()
)
fig = plots.plot_density(X, grid, map_density, band, feature_names=names)
fig.axes[0].plot(X[:, 0], np.zeros(len(X)), "|", color="k", ms=10)
display(fig)

# %% [markdown]
# ## Assignment uncertainty per galaxy
#
# For each galaxy: the posterior probability of its most probable component, with an
# 89% interval over posterior draws. With three well-separated groups nearly every galaxy
# is assigned with certainty. The exceptions (printed below) are the galaxies between the
# main group and the fast group, near 27,000 km/s: a single MAP fit hands them to the main
# group, while under some plausible parameter values (a wider main or fast group) they
# could belong to the fast group, so their intervals reach well below 1. (`prob` is the
# posterior mean; it can lie just below an equal-tailed interval that ends at 1 when a few
# draws, fewer than 5.5% of them, are much lower than the rest.)

# %%
assignment = analysis.assignment_summary(X, posterior, max_draws=1000)
print(f"{int(assignment['uncertain'].sum())} of {len(X)} galaxies have an interval below 0.5")
print("least certain galaxies:")
print(assignment.assign(velocity=X[:, 0]).nsmallest(3, "lower").round(3))
plots.plot_assignment(X[:, 0], assignment, xlabel=names[0])

# %% [markdown]
# Finally, how many galaxies does each component hold? Under MAP-EM this is one number,
# $N_k = \sum_n \gamma_{nk}$; under the posterior it is a distribution.

# %%
counts = bgm.component_counts().stack(sample=("chain", "draw")).transpose("sample", ...)
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.violinplot(counts.values, positions=np.arange(K), showmedians=True)
ax.plot(np.arange(K), map_counts, "x", color="C3", ms=10, mew=2, label="MAP-EM $N_k$")
ax.set(
    xticks=np.arange(K),
    xlabel="component (ordered by mean velocity)",
    ylabel="galaxies in the component, $N_k$",
    title="Soft counts per component: posterior (violins) and MAP",
)
ax.legend()
plt.show()

# %% [markdown]
# ## What to take away
#
# * For the well-populated main group, MAP and posterior agree: report either.
# * For small components, the MAP understates uncertainty and sits at the mode of skewed
#   distributions; use posterior intervals (or at least posterior medians) for their
#   weights and variances.
# * The posterior density band shows where the fitted shape is supported by data and
#   where it is extrapolation.
# * Assignment probabilities with intervals show which memberships are in doubt, here
#   only for the galaxies between groups; report them rather than hard labels.
