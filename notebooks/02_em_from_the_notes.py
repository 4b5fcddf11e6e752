# %% [markdown]
# # EM from the notes
#
# This notebook follows the lecture-notes derivation of the EM algorithm for a Gaussian
# mixture and checks every step against the package's own functions:
#
# 1. the maximum-likelihood estimate of a **single Gaussian** (sample mean, covariance with
#    $1/N$), and why it is not enough for the Old Faithful data;
# 2. the **mixture likelihood** and why it has no closed-form maximiser;
# 3. **EM, one step at a time**, with `bayesgmm.em.e_step` and `bayesgmm.em.m_step`:
#    responsibilities $\gamma_{nk}$, soft counts $N_k$, weights $\alpha_k$, means and
#    covariances;
# 4. the **log-likelihood rising at every iteration**;
# 5. the same numbers from the estimator `bayesgmm.GaussianMixture`.

# %%
# %matplotlib inline
import os

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse
from scipy import stats

from bayesgmm import GaussianMixture, MixtureParams, datasets
from bayesgmm.em import e_step, m_step

FAST = os.environ.get("BAYESGMM_FAST") == "1"  # EM is cheap: this notebook runs in full
np.set_printoptions(precision=4, suppress=True)

X = datasets.load_faithful()
N, d = X.shape
print(f"Old Faithful: N = {N} eruptions, d = {d} features (duration, waiting time; minutes)")

# %% [markdown]
# ## 1. One Gaussian: the maximum-likelihood estimate
#
# For $x_1, \dots, x_N \sim \mathcal N(\mu, \Sigma)$ the log-likelihood
# $\ell(\mu, \Sigma) = \sum_n \log \mathcal N(x_n \mid \mu, \Sigma)$ is maximised by
#
# $$\hat\mu = \frac1N \sum_n x_n, \qquad
#   \hat\Sigma = \frac1N \sum_n (x_n - \hat\mu)(x_n - \hat\mu)^\top .$$
#
# Note the $1/N$: the maximum-likelihood covariance is the *biased* one (`np.cov(...,
# bias=True)`), not the unbiased $1/(N-1)$ estimate.

# %%
mu_hat = X.mean(axis=0)
diff = X - mu_hat
sigma_hat = diff.T @ diff / N

assert np.allclose(sigma_hat, np.cov(X, rowvar=False, bias=True))
print("mu_hat    =", mu_hat)
print("Sigma_hat =\n", sigma_hat)

one_gaussian_loglik = stats.multivariate_normal(mu_hat, sigma_hat).logpdf(X).sum()
print(f"log-likelihood of one Gaussian: {one_gaussian_loglik:.2f}")

# %% [markdown]
# A small check that this is the maximum: perturbing $\hat\mu$ or scaling $\hat\Sigma$ in
# either direction only lowers the log-likelihood.

# %%
for label, mu, sigma in [
    ("mu_hat + (0.1, 1)", mu_hat + np.array([0.1, 1.0]), sigma_hat),
    ("0.9 Sigma_hat", mu_hat, 0.9 * sigma_hat),
    ("1.1 Sigma_hat", mu_hat, 1.1 * sigma_hat),
    ("unbiased N/(N-1) Sigma_hat", mu_hat, N / (N - 1) * sigma_hat),
]:
    value = stats.multivariate_normal(mu, sigma).logpdf(X).sum()
    print(f"{label:>28}: {value:.2f}  ({value - one_gaussian_loglik:+.3f})")
    assert value < one_gaussian_loglik


# %% [markdown]
# The best single Gaussian is still a poor description of the data: the eruptions form two
# clusters (short eruptions followed by short waits, long ones by long waits), and one
# ellipse has to cover both, putting most of its mass in the empty space between them.


# %%
def draw_ellipses(ax, means, covariances, colors, n_std=2.0, **kwargs):
    """Draw the ``n_std`` standard-deviation ellipse of each 2-D Gaussian."""
    for mean, cov, color in zip(means, covariances, colors, strict=True):
        eigenvalues, eigenvectors = np.linalg.eigh(cov)
        angle = np.degrees(np.arctan2(eigenvectors[1, 1], eigenvectors[0, 1]))
        width, height = 2 * n_std * np.sqrt(eigenvalues[::-1])
        ax.add_patch(
            Ellipse(mean, width, height, angle=angle, fill=False, color=color, lw=2, **kwargs)
        )
        ax.plot(*mean, marker="x", color=color, ms=10, mew=2)


fig, ax = plt.subplots(figsize=(6, 4.5))
ax.scatter(X[:, 0], X[:, 1], s=10, color="0.4", label="eruptions")
draw_ellipses(ax, [mu_hat], [sigma_hat], ["C3"], label="2 sd of the MLE Gaussian")
ax.set(
    xlabel="eruption duration (min)",
    ylabel="waiting time to next eruption (min)",
    title="One Gaussian fitted by maximum likelihood",
)
ax.legend(loc="upper left")
plt.show()


# %% [markdown]
# ## 2. The mixture likelihood
#
# A mixture of $K$ Gaussians introduces a latent label $z_n \in \{1, \dots, K\}$ with
# $p(z_n = k) = \alpha_k$ and $x_n \mid z_n = k \sim \mathcal N(\mu_k, \Sigma_k)$.
# Summing the label out gives the likelihood
#
# $$\ell(\theta) = \sum_{n=1}^N \log \sum_{k=1}^K \alpha_k\, \mathcal N(x_n \mid \mu_k, \Sigma_k).$$
#
# The logarithm of a *sum* does not split into per-component terms, so setting the
# gradient to zero no longer gives closed-form estimates: the optimal $\mu_k$ depends on
# which points belong to component $k$, which depends on $\mu_k$. EM breaks this circle.
#
# `e_step` returns, besides the responsibilities, the per-point log-likelihood
# $\log \sum_k \alpha_k \mathcal N(x_n \mid \mu_k, \Sigma_k)$, computed with a log-sum-exp.
# Below it is checked against the formula written out with `scipy.stats`. We start EM
# from a deliberately poor guess: two data points as means, the overall covariance for
# both components and equal weights.

# %%
K = 2
start = MixtureParams(
    weights=np.full(K, 1 / K),
    means=X[[0, 1]],  # two arbitrary eruptions
    covariances=np.stack([sigma_hat, sigma_hat]),
    covariance_type="full",
)
print("starting means:\n", start.means)


def mixture_loglik(X, params):
    """The formula above, written out without the package."""
    densities = np.column_stack(
        [
            w * stats.multivariate_normal(m, c).pdf(X)
            for w, m, c in zip(params.weights, params.means, params.covariances, strict=True)
        ]
    )
    return np.log(densities.sum(axis=1)).sum()


_, log_lik = e_step(X, start)
assert np.isclose(log_lik.sum(), mixture_loglik(X, start))
print(f"mixture log-likelihood at the start: {log_lik.sum():.2f}")

# %% [markdown]
# ## 3. EM, one step at a time
#
# ### E-step: responsibilities
#
# Given the current parameters, the posterior probability that point $n$ came from
# component $k$ is
#
# $$\gamma_{nk} = p(z_n = k \mid x_n, \theta) =
#   \frac{\alpha_k \mathcal N(x_n \mid \mu_k, \Sigma_k)}
#        {\sum_j \alpha_j \mathcal N(x_n \mid \mu_j, \Sigma_j)} .$$
#
# `e_step` returns $\log \gamma_{nk}$ (it normalises in log space, so that points far from
# every component do not underflow to $0/0$).

# %%
log_resp, log_lik = e_step(X, start)
resp = np.exp(log_resp)

by_hand = np.column_stack(
    [
        w * stats.multivariate_normal(m, c).pdf(X)
        for w, m, c in zip(start.weights, start.means, start.covariances, strict=True)
    ]
)
by_hand /= by_hand.sum(axis=1, keepdims=True)
assert np.allclose(resp, by_hand)
assert np.allclose(resp.sum(axis=1), 1.0)
print("responsibilities of the first five points:\n", resp[:5])

# %% [markdown]
# ### M-step: soft counts, weights, means, covariances
#
# With the responsibilities fixed, each component is a *weighted* Gaussian MLE, the
# formulas of section 1 with weights $\gamma_{nk}$:
#
# $$N_k = \sum_n \gamma_{nk}, \qquad \alpha_k = \frac{N_k}{N}, \qquad
#   \mu_k = \frac1{N_k} \sum_n \gamma_{nk} x_n, \qquad
#   \Sigma_k = \frac1{N_k} \sum_n \gamma_{nk} (x_n - \mu_k)(x_n - \mu_k)^\top .$$
#
# We compute them by hand and compare with `m_step` (maximum likelihood: `prior=None`,
# and no `reg_covar` added to the diagonals).

# %%
N_k = resp.sum(axis=0)
alpha = N_k / N
means = (resp.T @ X) / N_k[:, None]
covariances = np.stack(
    [(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / N_k[k] for k in range(K)]
)
print("N_k     =", N_k, " (sums to N =", N_k.sum().round(6), ")")
print("alpha_k =", alpha)
print("mu_k    =\n", means)

updated = m_step(X, resp, "full", prior=None, reg_covar=0.0)
assert np.allclose(updated.weights, alpha)
assert np.allclose(updated.means, means)
assert np.allclose(updated.covariances, covariances)
print("m_step agrees with the formulas")


# %% [markdown]
# ### Iterating
#
# One E-step and one M-step make an iteration. EM guarantees that the log-likelihood
# never decreases: the E-step makes the lower bound tight at the current parameters and
# the M-step maximises it. We iterate until the mean log-likelihood per point changes by
# less than `tol`, the same stopping rule as the estimator, and keep every iterate.


# %%
def em(X, params, tol=1e-8, max_iter=500):
    """Plain EM with the package's E- and M-steps; returns the iterates and log-likelihoods."""
    history, logliks = [params], []
    previous = -np.inf
    for _ in range(max_iter):
        log_resp, log_lik = e_step(X, params)
        current = log_lik.mean()
        logliks.append(log_lik.sum())
        params = m_step(X, np.exp(log_resp), params.covariance_type, reg_covar=0.0)
        history.append(params)
        if abs(current - previous) < tol:
            break
        previous = current
    return history, np.array(logliks)


history, logliks = em(X, start)
print(f"{len(logliks)} iterations; log-likelihood {logliks[0]:.2f} -> {logliks[-1]:.2f}")
print(f"smallest change between iterations: {np.diff(logliks).min():.2e}")
assert np.all(np.diff(logliks) >= -1e-8), "EM decreased the log-likelihood"

# %%
fig, (ax_ll, ax_gain) = plt.subplots(1, 2, figsize=(11, 4))
iterations = np.arange(len(logliks))
ax_ll.plot(iterations, logliks, marker="o", ms=3)
ax_ll.axhline(one_gaussian_loglik, color="C3", ls="--", label="one Gaussian (MLE)")
ax_ll.set(
    xlabel="iteration",
    ylabel="log-likelihood $\\ell(\\theta^{(t)})$",
    title="EM never decreases the log-likelihood",
)
ax_ll.legend()
ax_gain.semilogy(iterations[1:], np.diff(logliks), marker="o", ms=3)
ax_gain.set(
    xlabel="iteration",
    ylabel="increase $\\ell(\\theta^{(t)}) - \\ell(\\theta^{(t-1)})$",
    title="Every increase is positive (log scale)",
)
fig.tight_layout()
plt.show()

# %% [markdown]
# How the components move: the 2-sd ellipses after 0, 1, 3 iterations and at convergence,
# with points coloured by their responsibility for the second component.

# %%
fig, axes = plt.subplots(1, 4, figsize=(16, 4), sharex=True, sharey=True)
for ax, t in zip(axes, [0, 1, 3, len(history) - 1], strict=True):
    params = history[t]
    gamma = np.exp(e_step(X, params)[0])[:, 1]
    points = ax.scatter(X[:, 0], X[:, 1], c=gamma, s=8, cmap="coolwarm", vmin=0, vmax=1)
    draw_ellipses(ax, params.means, params.covariances, ["C0", "C3"])
    ax.set(title=f"iteration {t}", xlabel="eruption duration (min)")
axes[0].set_ylabel("waiting time (min)")
fig.colorbar(points, ax=axes, label="responsibility $\\gamma_{n2}$")
fig.suptitle("EM from a poor start: ellipses and responsibilities")
plt.show()

# %% [markdown]
# ## 4. The same fit from the estimator
#
# `GaussianMixture` runs exactly this loop (plus restarts, collapse handling and a final
# E-step). Started from the same parameters, with the same tolerance and without
# regularisation, it reaches the same point in the same number of iterations, and its
# `lower_bound_trace_` is our log-likelihood per point.

# %%
gm = GaussianMixture(
    n_components=K,
    covariance_type="full",
    weights_init=start.weights,
    means_init=start.means,
    precisions_init=np.linalg.inv(start.covariances),
    reg_covar=0.0,
    tol=1e-8,
    max_iter=500,
).fit(X)

ours = history[-1]
print(f"iterations: ours {len(logliks)}, estimator {gm.n_iter_}")
assert gm.n_iter_ == len(logliks)
assert np.allclose(gm.lower_bound_trace_, logliks / N)
assert np.allclose(gm.weights_, ours.weights)
assert np.allclose(gm.means_, ours.means)
assert np.allclose(gm.covariances_, ours.covariances)
print("weights:", gm.weights_)
print("means:\n", gm.means_)
print("covariances:\n", gm.covariances_)

# %% [markdown]
# The two components are the short and the long eruptions. Their covariances differ
# (the long eruptions scatter more in waiting time), which is why `full` covariances fit
# these data better than one shared ellipse.
#
# ## What to take away
#
# * The Gaussian MLE is the sample mean and the $1/N$ covariance; EM's M-step is the same
#   estimate with each point weighted by its responsibility.
# * The E-step is Bayes' rule for the label, done in log space.
# * The log-likelihood rises monotonically; EM stops at a *local* maximum, so the start
#   matters (the estimator starts from mclust's hierarchical agglomeration plus many
#   restarts and split-and-merge moves; `n_init` sets how many).
# * Maximum likelihood can also run into degenerate solutions (a component collapsing onto
#   one point, $|\Sigma_k| \to 0$). `GaussianMixture(prior="default")` replaces the M-step
#   with the MAP update under a conjugate prior, which rules that out; notebook 03 compares
#   that point estimate with the full posterior.
