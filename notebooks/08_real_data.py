# %% [markdown]
# # Real data: counts, missing values, outliers and bootstrap uncertainty
#
# Real data rarely arrive as a clean matrix of independent rows. This notebook shows the
# four tools `bayesgmm` has for what they bring instead:
#
# 1. **frequency weights** (`sample_weight`): data stored as distinct values and their
#    counts (binned, deduplicated or aggregated data) are fitted by their counts, with the
#    same answer as the replicated rows;
# 2. **missing values** (`missing="marginalize"`): rows with missing entries keep the
#    information in their observed entries, instead of being dropped or imputed first;
# 3. a **noise component** (`noise=True`): a uniform background over the data's range
#    absorbs outliers that would otherwise inflate the clusters;
# 4. the **bootstrap** of an EM fit: standard errors and intervals without a sampler.
#
# Set `BAYESGMM_FAST=1` for fewer bootstrap replicates and fewer NUTS draws (what the
# test suite does); the committed outputs are the full-size run.

# %%
# %matplotlib inline
import logging
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from bayesgmm import GaussianMixture, datasets
from bayesgmm.bayes.estimator import BayesianGaussianMixture
from bayesgmm.posterior import summaries as analysis

logging.getLogger("pymc").setLevel(logging.WARNING)  # PyMC warnings only, no progress messages
FAST = os.environ.get("BAYESGMM_FAST") == "1"  # set by the test suite: less work
SEED = 11

# %% [markdown]
# ## 1. Fitting counts: Old Faithful in half-minute and two-minute cells
#
# Old Faithful's 272 eruptions (duration in minutes, waiting time to the next one in
# minutes) become a table of distinct cells and their counts when durations are rounded to
# half a minute and waiting times to two minutes. A fit with `sample_weight=counts` on the
# distinct cells maximises $\sum_n w_n \log p(x_n)$, the log-likelihood of the replicated
# rows, so it reaches the same optimum as a fit on the 272 rounded rows, with fewer rows to
# pass over: the two BICs agree, and the means agree up to where each EM run stops (its
# convergence tolerance `tol`; the two runs start from different points).

# %%
X = datasets.load_faithful()
binned = np.round(X * [2.0, 0.5]) / [2.0, 0.5]
cells, counts = np.unique(binned, axis=0, return_counts=True)
print(f"{len(binned)} rounded rows -> {len(cells)} distinct cells, counts 1 to {counts.max()}")

by_counts = GaussianMixture(2, random_state=0).fit(cells, sample_weight=counts)
by_rows = GaussianMixture(2, random_state=0).fit(binned)
order_c, order_r = np.argsort(by_counts.means_[:, 0]), np.argsort(by_rows.means_[:, 0])
print(
    "largest difference in the means:",
    f"{np.abs(by_counts.means_[order_c] - by_rows.means_[order_r]).max():.1e}",
)
print(
    f"BIC by counts {by_counts.bic(cells, sample_weight=counts):.3f}, "
    f"by rows {by_rows.bic(binned):.3f}"
)

# %% [markdown]
# Frequency weights mean "this row was observed $w_n$ times". In the Bayesian model each
# row's log-likelihood term is multiplied by its weight, so the posterior has the width
# of the replicated data: the posterior sds below match a fit on the 272 rows (up to
# Monte Carlo error). Weights that are not counts (survey or importance weights) are a
# different thing: scale them to sum to the number of independent observations, or the
# posterior will be too narrow or too wide.

# %%
draws = dict(draws=300, tune=300, chains=2) if FAST else dict(draws=1000, tune=1000, chains=4)
bayes_kwargs = dict(random_state=SEED, progressbar=False, **draws)
bgm_counts = BayesianGaussianMixture(2, **bayes_kwargs).fit(cells, sample_weight=counts)
bgm_rows = BayesianGaussianMixture(2, **bayes_kwargs).fit(binned)


def posterior_sds(bgm: BayesianGaussianMixture) -> pd.Series:
    """Posterior sds of the weights and means, components ordered by mean duration."""
    posterior = bgm.idata_["posterior"]
    order = np.argsort(bgm.map_.means[:, 0])
    weights = posterior["weights"].std(("chain", "draw")).to_numpy()[order]
    means = posterior["means"].std(("chain", "draw")).to_numpy()[order]
    names = ["short", "long"]
    return pd.Series(
        [*weights, *means.ravel()],
        index=[f"weight, {c}" for c in names]
        + [f"mean {v}, {c}" for c in names for v in ("duration", "waiting")],
    )


pd.DataFrame(
    {"sd, fit by counts": posterior_sds(bgm_counts), "sd, fit on the rows": posterior_sds(bgm_rows)}
).round(3)

# %% [markdown]
# ## 2. Missing values: Old Faithful with a quarter of its measurements removed
#
# Remove 25% of the entries of Old Faithful completely at random and three choices
# remain: drop every eruption with a missing measurement (here almost half of them), impute
# first, or fit the model to what was observed. `missing="marginalize"` does the last: EM
# (Ghahramani & Jordan 1994) uses each row's observed coordinates in the E-step (the
# marginal Gaussian of the observed block) and the conditional expectations of the missing
# coordinates in the M-step. Under missing-at-random this is the maximum-likelihood
# estimate from the observed data. We compare both with the fit on the complete data.

# %%
rng = np.random.default_rng(SEED)
holes = rng.uniform(size=X.shape) < 0.25
holes[holes.all(axis=1), 0] = False  # keep at least one entry per eruption
Xm = np.where(holes, np.nan, X)
complete_rows = ~np.isnan(Xm).any(axis=1)
print(
    f"{holes.mean():.0%} of entries missing; {complete_rows.sum()} of {len(X)} eruptions complete"
)

full = GaussianMixture(2, random_state=0).fit(X)
marginal = GaussianMixture(2, missing="marginalize", random_state=0).fit(Xm)
dropped = GaussianMixture(2, random_state=0).fit(Xm[complete_rows])


def mean_errors(model: GaussianMixture) -> np.ndarray:
    """Largest error of the component means per feature, against the complete-data fit."""
    cost = ((model.means_[:, None, :] - full.means_[None, :, :]) ** 2).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return np.abs(model.means_[rows[np.argsort(cols)]] - full.means_).max(axis=0)


pd.DataFrame(
    {
        "marginalize missing entries": mean_errors(marginal),
        "drop incomplete eruptions": mean_errors(dropped),
    },
    index=pd.Index(["duration (min)", "waiting (min)"], name="largest error of a mean"),
).round(3)

# %% [markdown]
# Keeping every eruption stays closer to the complete-data fit than dropping the incomplete
# ones, most visibly for the waiting times. (How much closer depends on which entries were
# removed: over other random removals the gain varies, and for a few it reverses; on average
# the marginal fit is the more accurate, see `benchmarks/bench_missing.py`.) The fitted
# model also imputes: `impute` fills each missing entry with its conditional mean given the
# row's observed entries, averaged over the components by the row's responsibilities. The
# two measurements are strongly related, so a removed waiting time is predicted well from
# the duration of the same eruption.

# %%
imputed = marginal.impute(Xm)
gone = holes[:, 1] & ~holes[:, 0]  # waiting time removed, duration observed
fig, ax = plt.subplots(figsize=(5.5, 4.5))
ax.plot(X[gone, 1], imputed[gone, 1], "o", alpha=0.7)
lims = [X[:, 1].min() - 2, X[:, 1].max() + 2]
ax.plot(lims, lims, color="0.5", lw=1)
ax.set(
    xlabel="removed waiting time (min)",
    ylabel="imputed waiting time (min)",
    title="Conditional-mean imputation of removed waiting times",
)
plt.show()
rmse = np.sqrt(np.mean((imputed[gone, 1] - X[gone, 1]) ** 2))
print(f"RMSE {rmse:.1f} min, against {X[:, 1].std():.1f} min for the column mean")

# %% [markdown]
# ## 3. Outliers: a noise component
#
# Add fifteen points spread uniformly over a box around Old Faithful (5% of the data):
# the kind of background that bad readings or rare events leave. A plain two-component fit
# has to put them somewhere, and its covariances swell to reach them. With `noise=True`
# the mixture gains a uniform component over the data's bounding box (mclust's `Vinv`);
# its weight is fitted with the others, and every point gets a probability of being noise.

# %%
outliers = np.random.default_rng(1).uniform([0.5, 20.0], [7.5, 130.0], size=(15, 2))
Xo = np.vstack([X, outliers])
clean = GaussianMixture(2, random_state=0).fit(X)
plain = GaussianMixture(2, random_state=0).fit(Xo)
noisy = GaussianMixture(2, noise=True, random_state=0).fit(Xo)


def variances(model: GaussianMixture) -> np.ndarray:
    order = np.argsort(model.means_[:, 0])
    return np.diagonal(model.covariances_, axis1=1, axis2=2)[order]


pd.DataFrame(
    np.vstack([variances(clean), variances(plain), variances(noisy)]).reshape(3, -1),
    index=["clean data", "with outliers, plain fit", "with outliers, noise=True"],
    columns=[f"var {v}, {c}" for c in ("short", "long") for v in ("duration", "waiting")],
).round(2)

# %%
p_noise = noisy.noise_proba(Xo)
fig, ax = plt.subplots(figsize=(6.5, 4.8))
points = ax.scatter(Xo[:, 0], Xo[:, 1], c=p_noise, cmap="viridis", vmin=0, vmax=1, s=18)
ax.scatter(outliers[:, 0], outliers[:, 1], facecolors="none", edgecolors="C3", s=90, lw=1.2)
fig.colorbar(points, ax=ax, label="P(noise | x)")
ax.set(
    xlabel="eruption duration (min)",
    ylabel="waiting time (min)",
    title="Noise probability (added outliers circled in red)",
)
plt.show()
flagged = noisy.predict(Xo) == -1
print(
    f"noise weight {noisy.noise_weight_:.3f}; flagged as noise: "
    f"{flagged[len(X) :].sum()} of {len(outliers)} added points, "
    f"{flagged[: len(X)].sum()} of {len(X)} eruptions"
)

# %% [markdown]
# Added points that land inside a cluster are, rightly, not flagged: nothing in the data
# distinguishes them from eruptions. The covariances of the noise fit are close to those
# of the clean data; the plain fit's are inflated.
#
# ## 4. Bootstrap uncertainty of an EM fit
#
# EM gives a point estimate. `bootstrap` refits it on resampled data (rows with
# replacement, `kind="nonparametric"`; Dirichlet weights, `"weighted"`; or data drawn
# from the fit, `"parametric"`), relabels every replicate to the fit and summarises the
# spread. On Old Faithful's two clusters the bootstrap standard errors are close to the
# posterior standard deviations of the Bayesian fit: with 272 points and two clusters, the
# sampling distribution of the estimate and the posterior have nearly the same width.

# %%
n_boot = 100 if FAST else 400
bayes = BayesianGaussianMixture(2, **bayes_kwargs).fit(X)
start = time.perf_counter()
boot = bayes.em_.bootstrap(X, n_boot=n_boot, random_state=SEED)  # the MAP-EM fit
print(f"{n_boot} bootstrap replicates in {time.perf_counter() - start:.1f} s")
table = analysis.map_vs_posterior(
    bayes.idata_["posterior"].to_dataset(),
    bayes.map_,
    feature_names=["duration", "waiting"],
    bootstrap=boot,
)
table["boot_se_over_sd"] = table["boot_se"] / table["sd"]
table[["parameter", "map", "mean", "sd", "boot_se", "boot_se_over_sd"]].round(3)
