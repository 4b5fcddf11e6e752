# %% [markdown]
# # Quickstart: Old Faithful in two fits
#
# The Old Faithful geyser data (272 eruptions: duration and waiting time to the next
# eruption, in minutes) fall into two clusters. This notebook fits a two-component
# Gaussian mixture twice:
#
# 1. by **EM** (`GaussianMixture`): a point estimate in a fraction of a second;
# 2. by **NUTS** (`BayesianGaussianMixture`): the full posterior under the same model and
#    priors, started from the MAP-EM estimate;
#
# then summarises the posterior and draws three figures: component ellipses, densities
# with credible bands, and how sure the posterior is of each point's cluster.

# %%
# %matplotlib inline
import logging
import os

import pandas as pd
from IPython.display import display

from bayesgmm import GaussianMixture, datasets
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.posterior import summaries as analysis
from bayesgmm.posterior.draws import stack_draws
from bayesgmm.reporting import plots

logging.getLogger("pymc").setLevel(logging.WARNING)  # PyMC warnings only, no progress messages
FAST = os.environ.get("BAYESGMM_FAST") == "1"  # set by the test suite: fewer draws
DRAWS, TUNE, CHAINS = (300, 300, 2) if FAST else (1000, 1000, 4)
SEED = 1

faithful = datasets.load_faithful(as_frame=True)
X = faithful.to_numpy()
names = ["eruption duration (min)", "waiting time (min)"]
faithful.describe().round(2)

# %% [markdown]
# ## EM: the maximum-likelihood fit
#
# `GaussianMixture` follows scikit-learn's conventions: `fit`, then fitted attributes
# with a trailing underscore.

# %%
em = GaussianMixture(n_components=2, covariance_type="full", random_state=SEED).fit(X)
print(f"converged in {em.n_iter_} iterations; BIC = {em.bic(X):.1f}")
pd.DataFrame(
    {"weight": em.weights_, "mean duration": em.means_[:, 0], "mean waiting": em.means_[:, 1]},
    index=pd.Index(["component 0", "component 1"]),
).round(3)

# %% [markdown]
# ## NUTS: the posterior
#
# `BayesianGaussianMixture` builds the same mixture in PyMC with the labels summed out,
# under the default conjugate prior (the one MAP-EM uses), and samples it with NUTS from
# the MAP-EM estimate. `diagnose()` checks R-hat, effective sample sizes, divergences,
# E-BFMI and label switching before we look at any number.

# %%
bgm = BayesianGaussianMixture(
    n_components=2,
    method="nuts",
    draws=DRAWS,
    tune=TUNE,
    chains=CHAINS,
    random_state=SEED,
    progressbar=False,
)
bgm.fit(X)
print(bgm.diagnose())

# %% [markdown]
# The summary lists each parameter's posterior mean, sd and 89% equal-tailed interval.
# With 272 points the posterior is narrow, and its means sit close to the EM estimate.

# %%
summary = bgm.summary().loc[
    ["weights[0]", "weights[1]", "means[0, 0]", "means[0, 1]", "means[1, 0]", "means[1, 1]"]
]
summary.drop(columns="kind").round(3).astype({"ess_bulk": int, "ess_tail": int})

# %% [markdown]
# ## Three figures
#
# **1. Component ellipses.** Two-standard-deviation ellipses of the MAP estimate (red) and
# of 50 posterior draws (blue): the spread of the blue ellipses is the uncertainty about
# each component's location and shape.

# %%
posterior = bgm.idata_["posterior"].to_dataset()
_, draw_means, draw_covs = stack_draws(posterior, max_draws=50, random_state=SEED)
plots.plot_ellipses(
    X, bgm.map_.means, bgm.map_.full_covariances(), draw_means, draw_covs, feature_names=names
)

# %% [markdown]
# **2. Densities with credible bands.** The marginal density of each feature under the MAP
# estimate, and the posterior predictive density with its 89% band over posterior draws.

# %%
grid = analysis.data_grid(X)
band = analysis.marginal_density_band(grid, posterior)
map_density = analysis.marginal_density(
    grid, bgm.map_.weights, bgm.map_.means, bgm.map_.full_covariances()
)
fig = plots.plot_density(X, grid, map_density, band, feature_names=names)
display(fig)

# %% [markdown]
# **3. Assignment uncertainty.** For each eruption, the posterior probability of its most
# probable cluster, with an 89% interval over posterior draws. Only eruptions of
# intermediate duration, between the two clusters, can be in doubt; the printout lists the
# ones whose interval reaches below 0.5.

# %%
assignment = analysis.assignment_summary(X, posterior)
uncertain = assignment["uncertain"].to_numpy()
print(
    f"{uncertain.sum()} of {len(X)} eruptions have an interval reaching below 0.5; "
    f"their durations (min): {X[uncertain, 0].round(2).tolist()}"
)
plots.plot_assignment(X[:, 0], assignment, xlabel=names[0])

# %% [markdown]
# ## Next
#
# * `02_em_from_the_notes`: what EM does, step by step.
# * `03_map_vs_posterior`: where the MAP point estimate and the posterior disagree.
# * `04_model_comparison_loo`: choosing the number of components.
# * `05_multivariate_uncertainty`: label switching, and variational inference versus NUTS.
# * `06_large_data`: a million points.
