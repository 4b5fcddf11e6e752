# %% [markdown]
# # Large data: EM, minibatch ADVI and NUTS on a subsample
#
# With a million points the question changes. Parameter uncertainty shrinks like
# $1/\sqrt N$, so the posterior of a well-specified mixture is very narrow, and the cost of
# every full pass over the data dominates. This notebook fits one synthetic data set three
# ways:
#
# 1. **EM** (`GaussianMixture`) on all points: NumPy, a few passes over the data (and the
#    same fit out of core, on a Dask array);
# 2. **minibatch ADVI** (`BayesianGaussianMixture`, `method="advi"`) on all points:
#    stochastic variational inference, each step sees a small batch;
# 3. **NUTS** on a random **subsample**: the exact posterior, but for fewer points.
#
# and ends with when to use which.
#
# Set `BAYESGMM_FAST=1` to run everything on 100,000 points with fewer steps and draws (what
# the test suite does); the committed outputs are the full-size run.

# %%
# %matplotlib inline
import logging
import os
import time
import tracemalloc

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bayesgmm import GaussianMixture, datasets
from bayesgmm.bayes.estimator import BayesianGaussianMixture

logging.getLogger("pymc").setLevel(logging.WARNING)  # PyMC warnings only, no progress messages
FAST = os.environ.get("BAYESGMM_FAST") == "1"  # set by the test suite: less data, fewer steps
N = 100_000 if FAST else 1_000_000
SEED = 20240605

X, labels, truth = datasets.make_mixture(
    N,
    n_components=3,
    n_features=2,
    separation=4.0,
    weights=np.array([0.5, 0.3, 0.2]),
    random_state=SEED,
)
# the sampling sd of a component mean estimated from N points: sqrt(Sigma_jj / (N w_k))
variances = np.diagonal(truth.full_covariances(), axis1=1, axis2=2)
sampling_sd = np.sqrt(variances / (N * truth.weights[:, None]))
print(f"{N:,} points in {X.shape[1]} dimensions, {X.nbytes / 1e6:.0f} MB")
print("true weights:", truth.weights.round(3))
print("true means:\n", truth.means.round(3))
print(f"sampling sd of the mean estimates: {sampling_sd.min():.4f} to {sampling_sd.max():.4f}")

# %%
fig, ax = plt.subplots(figsize=(6, 4.5))
hb = ax.hexbin(X[:, 0], X[:, 1], gridsize=80, bins="log", cmap="viridis", mincnt=1)
fig.colorbar(hb, ax=ax, label="points per cell (log scale)")
ax.plot(*truth.means.T, "rx", ms=10, mew=2, label="true means")
ax.set(xlabel="$x_1$", ylabel="$x_2$", title=f"{N:,} points from a 3-component mixture")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# ## 1. EM on every point
#
# Each EM iteration is one E-step and one M-step over the whole array: a few matrix
# products of size $N \times K$. Two settings matter on large data:
#
# * **Starts.** The default `n_init="auto"` runs 20 starts up to 100,000 rows and fewer
#   above (two on a million rows), each a full EM run. The clusters here are well
#   separated, so we fit from one start (`n_init=1`), for half that cost.
# * **Stopping.** scikit-learn's rule (`stopping="absolute"` with its `tol=1e-3`) stops
#   once the **per-point** mean log-likelihood changes by less than `tol`, that is once an
#   iteration gains less than $10^{-3} N$ in total, which for $N = 10^6$ is still a gain of
#   a thousand nats: EM can stop before the maximum. The default rule
#   (`stopping="aitken"`, `tol=1e-8`) stops when the Aitken-extrapolated limit of the
#   objective is within `tol`, at the maximum the start leads to.
#
# We fit with both rules and compare both with the truth (components sorted by their
# first mean coordinate). `tracemalloc` records the peak memory each fit allocates (for
# section 2).

# %%
fits = {}
tracemalloc.start()
RULES = {"absolute, tol=1e-3": dict(stopping="absolute", tol=1e-3), "default": {}}
for rule, settings in RULES.items():
    tracemalloc.reset_peak()
    start = time.perf_counter()
    model = GaussianMixture(n_components=3, n_init=1, random_state=SEED, **settings)
    model.fit(X)
    seconds = time.perf_counter() - start
    fits[rule] = (model, seconds, tracemalloc.get_traced_memory()[1])
    print(
        f"{rule}: {seconds:.1f} s, {model.n_iter_} iterations, "
        f"peak memory allocated {fits[rule][2] / 1e6:.0f} MB"
    )
tracemalloc.stop()

rows = {"truth": truth}
rows.update({f"EM, {rule}": model.params_.sorted_by_mean() for rule, (model, *_) in fits.items()})
table = pd.concat(
    {
        name: pd.DataFrame(
            {"weight": p.weights, "mean x1": p.means[:, 0], "mean x2": p.means[:, 1]},
            index=pd.Index(range(3), name="component"),
        )
        for name, p in rows.items()
    },
    axis=1,
)
table.round(3)

# %%
em, em_seconds, em_peak = fits["default"]
em_params = em.params_.sorted_by_mean()
for rule, (model, *_) in fits.items():
    error = np.abs(model.params_.sorted_by_mean().means - truth.means)
    print(
        f"{rule}: largest error in a mean coordinate = {error.max():.4f} "
        f"({(error / sampling_sd).max():.1f} sampling sds)"
    )

# %% [markdown]
# With the default rule the largest error (over six coordinates) is a few sampling sds of
# $N$ points, the accuracy the data allow; with scikit-learn's it is many times larger.
# How does the cost grow with the data? Fitting nested subsets shows that the time per EM
# iteration grows linearly in $N$ on large data; on the small subsets the fixed costs of a
# fit (its start, the checks) weigh more per iteration.

# %%
sizes = np.array([10_000, 30_000, 100_000, 300_000, 1_000_000])
sizes = sizes[sizes <= N]
per_iteration = []
for n in sizes:
    start = time.perf_counter()
    model = GaussianMixture(n_components=3, n_init=1, random_state=SEED).fit(X[:n])
    per_iteration.append((time.perf_counter() - start) / model.n_iter_)
per_iteration = np.array(per_iteration)

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(sizes, per_iteration, marker="o", label="EM fit time / iterations")
ax.loglog(sizes, per_iteration[-1] * sizes / sizes[-1], ls="--", color="0.5", label="linear in N")
ax.set(
    xlabel="number of points N",
    ylabel="wall time per iteration (s)",
    title="EM cost grows linearly with N",
)
ax.legend()
plt.show()

# %% [markdown]
# ## 2. The same EM out of core: a Dask array
#
# `GaussianMixture.fit` also accepts a **Dask array**. It then runs EM chunk by chunk
# (`bayesgmm.em.chunked.fit_em_chunked`): each E-step pass accumulates the per-component
# sufficient statistics of every block, and the M-step is the in-memory one; it runs one
# start, initialised on a seeded 20,000-row subsample, so it reaches the in-memory fit's
# optimum up to where each run stops.
# Memory is proportional to the block size, not to $N$. Here the array wraps the data
# already in memory; on disk-backed data (Zarr, HDF5, a `np.memmap`) the same call works
# without ever loading everything.

# %%
chunked = da.from_array(X, chunks=(N // 10, 2))  # ten blocks of rows
tracemalloc.start()
start = time.perf_counter()
em_dask = GaussianMixture(n_components=3, random_state=SEED).fit(chunked)  # one start
dask_seconds = time.perf_counter() - start
dask_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
dask_params = em_dask.params_.sorted_by_mean()
print(
    f"Dask, {chunked.numblocks[0]} blocks of {chunked.chunks[0][0]:,} rows: "
    f"{dask_seconds:.1f} s, {em_dask.n_iter_} iterations, "
    f"peak memory allocated {dask_peak / 1e6:.0f} MB (in memory: {em_peak / 1e6:.0f} MB)"
)
print(
    f"largest difference to the in-memory fit: means "
    f"{np.abs(dask_params.means - em_params.means).max():.1e}, weights "
    f"{np.abs(dask_params.weights - em_params.weights).max():.1e}"
)

# %% [markdown]
# ## 3. Minibatch ADVI on every point
#
# Stochastic variational inference fits a Gaussian approximation to the posterior (in the
# unconstrained space) by gradient steps, each computed on a random **minibatch** of
# 1,000 points with the likelihood rescaled to the full data set, so the cost per step
# does not depend on $N$. `BayesianGaussianMixture` switches to minibatches by itself
# above 20,000 rows; we pass `batch_size` to make it explicit. On this many rows it
# does not store per-observation log-likelihoods and predictive draws (`pointwise`,
# default: only when they stay below 2e7 values), which would take gigabytes.
#
# Two settings matter on large data:
#
# * **Start.** The estimator starts the optimisation at its own MAP-EM fit; we pass the
#   EM fit above instead (`start=`). The estimator still runs its MAP-EM fit (it keeps it
#   as `em_`), so `em_n_init=1` keeps that to one start rather than the several of
#   `"auto"`.
# * **Step size and stopping.** ADVI starts every standard deviation at 0.1 (on the
#   standardised scale) and must shrink them to the posterior's, about $1/\sqrt N$ of that
#   scale. The estimator (`bayesgmm.bayes.vi.fit_vi`) uses Adam with a step decaying as $1/t$
#   and stops when the windowed mean ELBO settles; `vi_iterations` is only the ceiling.
#   Every VI fit is then checked by the PSIS k-hat of the approximation against the exact
#   posterior (on a subsample of rows for minibatch fits), reported by `diagnose()`.
#   On a million rows that check is out of its depth: the subsample's likelihood is scaled
#   by N/n = 500, one draw takes nearly all the importance weight and k-hat cannot be
#   estimated, so the fit warns that it is unchecked. That warning is expected here; the
#   comparison with EM and with NUTS on a subsample below is the check that counts.

# %% tags=["explained-warning"]
ADVI_STEPS = 10_000 if FAST else 40_000

start = time.perf_counter()
advi = BayesianGaussianMixture(
    n_components=3,
    method="advi",
    vi_iterations=ADVI_STEPS,
    draws=1_000,
    batch_size=1_000,
    start=em.params_,
    em_n_init=1,
    random_state=SEED,
    progressbar=False,
)
advi.fit(X)
advi_seconds = time.perf_counter() - start
print(
    f"minibatch ADVI: {advi.vi_.n_iter:,} steps (ceiling {ADVI_STEPS:,}) in "
    f"{advi_seconds:.1f} s, including the estimator's own MAP-EM fit"
)
print("stored groups:", sorted(advi.idata_.children))
print(advi.diagnose())

# %%
loss = advi.vi_.hist
window = 200
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(loss, lw=0.5, color="0.6", label="per step")
ax.plot(
    np.arange(window - 1, len(loss)),
    np.convolve(loss, np.ones(window) / window, "valid"),
    color="C0",
    label=f"moving average ({window} steps)",
)
ax.set(
    xlabel="optimisation step",
    ylabel="negative ELBO (minibatch estimate)",
    title="Minibatch ADVI: the objective over the run",
    ylim=np.quantile(loss, [0.0, 0.99]),
)
ax.legend()
plt.show()

# %% [markdown]
# The centre starts at the EM estimate, so the objective's moving average falls only
# while the standard deviations shrink from their start, then stays flat; the spread
# around it is minibatch noise (each step sees 1,000 of the $N$ points). The loss says
# little about whether the standard deviations are right: section 5 checks them.
#
# ## 4. NUTS on a subsample
#
# NUTS needs the gradient of the full log-likelihood at every leapfrog step, so its cost
# grows with $N$ (and a million-point gradient is slow). A random subsample gives the
# exact posterior **for that subsample**: the centre is right, but the intervals are about
# $\sqrt{N / n}$ times wider than for all the data.

# %%
n_sub = 500 if FAST else 2_000
subsample = X[np.random.default_rng(SEED).choice(N, size=n_sub, replace=False)]
DRAWS, TUNE, CHAINS = (300, 300, 2) if FAST else (1000, 1000, 4)
start = time.perf_counter()
nuts = BayesianGaussianMixture(
    n_components=3,
    method="nuts",
    draws=DRAWS,
    tune=TUNE,
    chains=CHAINS,
    random_state=SEED,
    progressbar=False,
)
nuts.fit(subsample)
nuts_seconds = time.perf_counter() - start
print(f"NUTS on {n_sub:,} points: {nuts_seconds:.1f} s")
print(nuts.diagnose())

# %% [markdown]
# ## 5. Comparing the three
#
# For each component mean we show the error of the estimate and a 94% interval: none for
# EM (a point), the ADVI approximation's interval on all the data, and the NUTS interval on
# the subsample. Components are matched to the truth by their first mean coordinate. The
# bottom row leaves the wider NUTS intervals out and zooms in on EM and ADVI.


# %%
def mean_draws(posterior):
    """Draws of the component means, components sorted by first coordinate."""
    means = posterior["means"].stack(sample=("chain", "draw")).transpose("sample", ...).values
    order = np.argsort(means.mean(axis=0)[:, 0])
    return means[:, order]


methods = {
    f"ADVI, all {N:,} points": mean_draws(advi.idata_["posterior"]),
    f"NUTS, {n_sub:,}-point subsample": mean_draws(nuts.idata_["posterior"]),
}
fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
for row, shown in enumerate([methods, dict(list(methods.items())[:1])]):
    for j, ax in enumerate(axes[row]):
        for k in range(3):
            ax.plot(
                k - 0.2,
                em_params.means[k, j] - truth.means[k, j],
                "s",
                color="C3",
                label="EM, all points" if k == 0 else None,
            )
            for offset, color, (label, draws) in zip(
                [0.0, 0.2],
                ["C0", "C2"],
                shown.items(),
                strict=False,  # the zoom shows ADVI only
            ):
                error = draws[:, k, j] - truth.means[k, j]
                lo, hi = np.quantile(error, [0.03, 0.97])
                ax.errorbar(
                    k + offset,
                    error.mean(),
                    fmt="o",
                    color=color,
                    capsize=3,
                    yerr=[[error.mean() - lo], [hi - error.mean()]],
                    label=label if k == 0 else None,
                )
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set(
            xticks=range(3),
            xlabel="component",
            ylabel=f"estimate - true mean of $x_{j + 1}$",
            title=f"Error in the mean of $x_{j + 1}$ (94% intervals)"
            + (": EM and ADVI" if row else ""),
        )
    axes[row, 0].legend(fontsize="small")
fig.tight_layout()
plt.show()

# %% [markdown]
# The NUTS intervals on the subsample are wide, as expected. Is the ADVI spread right for
# all $N$ points? Two references for the posterior sd of each mean coordinate: the
# sampling sd $\sqrt{\Sigma_{jj} / (N w_k)}$ from the true parameters, and the NUTS sd on
# the subsample shrunk by $\sqrt{n / N}$. The last column says how far the ADVI centre
# lies from the EM estimate, in sampling sds.

# %%
advi_sd, nuts_sd = (draws.std(axis=0) for draws in methods.values())
spread = pd.DataFrame(
    {
        "ADVI sd": advi_sd.ravel(),
        "sampling sd": sampling_sd.ravel(),
        "NUTS sd x sqrt(n/N)": nuts_sd.ravel() * np.sqrt(n_sub / N),
    },
    index=[f"mean[{k}, x{j + 1}]" for k in range(3) for j in range(2)],
)
spread["ADVI / sampling"] = spread["ADVI sd"] / spread["sampling sd"]
advi_centre = methods[f"ADVI, all {N:,} points"].mean(axis=0)
spread["(ADVI - EM) / sampling sd"] = ((advi_centre - em_params.means) / sampling_sd).ravel()
spread.round(4)

# %%
summary = pd.DataFrame(
    {
        "data used": [f"{N:,}", f"{N:,} (minibatches of 1,000)", f"{n_sub:,}"],
        "wall time (s)": [em_seconds, advi_seconds, nuts_seconds],
        "uncertainty": ["none (point estimate)", "approximate", "exact, for the subsample"],
        "largest |error| in a mean": [
            np.abs(em_params.means - truth.means).max(),
            *[np.abs(d.mean(axis=0) - truth.means).max() for d in methods.values()],
        ],
    },
    index=["EM", "minibatch ADVI", "NUTS on a subsample"],
)
summary.round(4)

# %% [markdown]
# ## When to use which
#
# * **EM** is the tool for a point estimate on large data: linear in $N$, seconds for a
#   million points from one start, and as accurate as the data allow, provided it runs
#   to the maximum (the default stopping rule does; scikit-learn's `tol=1e-3` does not).
#   With $N$ this large the posterior is so narrow that parameter uncertainty is rarely
#   the question (model choice is; see notebook 04). For data that
#   do not fit in memory, pass a Dask array (or call `bayesgmm.em.chunked.fit_em_chunked`
#   on a memmap): the same EM, chunk by chunk.
# * **Minibatch ADVI** gives an approximate posterior on all the data at a cost per step
#   that does not grow with $N$. Its standard deviations are those of a Gaussian
#   approximation reached by a noisy optimiser, and here they are an order of magnitude
#   wider than the posterior's (the `ADVI / sampling` column above); its centre lies
#   within those sds of EM's but many sampling sds away from it (the last column): it is
#   the last iterate of that optimiser. Check the sds (as above), and tune the step size
#   and number of steps before trusting them.
# * **NUTS on a subsample** gives exact intervals for the subsample. Use it to check the
#   model (diagnostics, posterior predictive checks, label switching) and to see how
#   uncertain the parameters are at moderate $N$; it is the reference against which the
#   faster methods should be checked.
