"""Align mixture component labels across posterior draws and chains.

A mixture likelihood is invariant to permuting the components, so chains can sit in
different labelings (between-chain switching) or jump between them (within-chain
switching); either makes per-component R-hat and ESS meaningless. In one dimension
the model orders the means, which fixes the labels. For ``d > 1`` every draw is
relabelled to a reference solution (the MAP estimate): the permutation that
minimises the summed Kullback-Leibler divergences ``KL(N(draw_i) || N(ref_j))``
between matched components, found by the Hungarian algorithm
(:func:`scipy.optimize.linear_sum_assignment`). The same rule relabels a point estimate
to the posterior (:func:`align_point_estimate`), so that the MAP and the draws are
compared component by component.

Permutation convention (as :meth:`bayesgmm.core.params.MixtureParams.permuted`): after
relabelling, position ``j`` holds the draw's old component ``perm[j]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from bayesgmm.core.params import MixtureParams


def gaussian_kl_cost(
    means: np.ndarray, covariances: np.ndarray, ref_means: np.ndarray, ref_covariances: np.ndarray
) -> np.ndarray:
    """KL divergence of every draw component from every reference component.

    Parameters
    ----------
    means : ndarray of shape (n_draws, K, d)
    covariances : ndarray of shape (n_draws, K, d, d)
    ref_means : ndarray of shape (K, d)
    ref_covariances : ndarray of shape (K, d, d)

    Returns
    -------
    ndarray of shape (n_draws, K, K)
        ``cost[s, i, j] = KL(N_si || N_ref_j)`` with ``N_si`` the draw's component ``i``
        and ``N_ref_j`` the reference component ``j``.
    """
    d = means.shape[-1]
    ref_prec = np.linalg.inv(ref_covariances)
    _, ref_logdet = np.linalg.slogdet(ref_covariances)
    _, logdet = np.linalg.slogdet(covariances)
    trace = np.einsum("jab,siba->sij", ref_prec, covariances)
    diff = ref_means[None, None, :, :] - means[:, :, None, :]
    maha = np.einsum("sija,jab,sijb->sij", diff, ref_prec, diff)
    return 0.5 * (trace + maha - d + ref_logdet[None, None, :] - logdet[:, :, None])


def best_permutations(cost: np.ndarray) -> np.ndarray:
    """Assignment minimising the total cost, draw by draw.

    Parameters
    ----------
    cost : ndarray of shape (n_draws, K, K)
        ``cost[s, i, j]`` of giving draw component ``i`` the reference label ``j``.

    Returns
    -------
    ndarray of shape (n_draws, K)
        ``perm[s, j]``: the draw component that takes label ``j``.
    """
    perms = np.empty(cost.shape[:2], dtype=np.intp)
    for s, matrix in enumerate(cost):
        rows, cols = linear_sum_assignment(matrix)
        perms[s, cols] = rows
    return perms


def apply_permutations(values: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Reorder the component axis of ``values`` draw by draw.

    Parameters
    ----------
    values : ndarray of shape (*batch, K, ...)
    perms : ndarray of shape (*batch, K)

    Returns
    -------
    ndarray of the shape of ``values``, with ``out[b, j] = values[b, perms[b, j]]``.
    """
    index = perms.reshape(perms.shape + (1,) * (values.ndim - perms.ndim))
    return np.take_along_axis(values, index, axis=perms.ndim - 1)


def align_point_estimate(
    params: MixtureParams, reference_means: np.ndarray, reference_covariances: np.ndarray
) -> MixtureParams:
    """Relabel a point estimate so that its component ``j`` matches reference component ``j``.

    The rule of the draws (:func:`relabel_to_reference`) with the roles set the same
    way: the point estimate's components take the reference labels that minimise the
    summed ``KL(N(params_i) || N(ref_j))`` (Hungarian algorithm).

    Parameters
    ----------
    params : MixtureParams
        With as many components and features as the reference.
    reference_means : ndarray of shape (K, d)
        For instance the posterior means of the means.
    reference_covariances : ndarray of shape (K, d, d)
        For instance the posterior means of the covariances.

    Returns
    -------
    MixtureParams
        ``params`` with its components reordered.
    """
    reference_means = np.asarray(reference_means, dtype=np.float64)
    if reference_means.shape != params.means.shape:
        raise ValueError(
            f"the point estimate has means of shape {params.means.shape} but the reference "
            f"{reference_means.shape}: compare fits with the same K and number of features"
        )
    cost = gaussian_kl_cost(
        params.means[None],
        params.full_covariances()[None],
        reference_means,
        np.asarray(reference_covariances, dtype=np.float64),
    )
    return params.permuted(best_permutations(cost)[0])


@dataclass(frozen=True)
class RelabelingRecord:
    """What relabelling did to a posterior sample.

    Attributes
    ----------
    method : {"ordered", "kl-hungarian", "none"}
        ``"ordered"``: identified by ordered means (1-D), nothing relabelled;
        ``"none"``: one component, nothing to relabel.
    n_draws : int
        Draws per chain.
    permuted_per_chain : ndarray of shape (n_chains,)
        Draws of each chain whose labels were changed.
    chain_labelings : ndarray of shape (n_chains, K)
        The most frequent permutation of each chain (identity: the chain already used
        the reference labels).
    switches_per_chain : ndarray of shape (n_chains,)
        Consecutive draws of each chain whose best permutations differ.
    """

    method: str
    n_draws: int
    permuted_per_chain: np.ndarray
    chain_labelings: np.ndarray
    switches_per_chain: np.ndarray

    @property
    def chains_disagree(self) -> bool:
        """Between-chain switching: chains sat in different labelings."""
        return bool(np.any(self.chain_labelings != self.chain_labelings[:1]))

    @property
    def switching_within_chains(self) -> bool:
        """Within-chain switching: some chain changed labeling during sampling."""
        return bool(np.any(self.switches_per_chain > 0))

    @property
    def relabelled(self) -> bool:
        """Whether any draw was permuted."""
        return bool(np.any(self.permuted_per_chain > 0))

    @property
    def verdict(self) -> str:
        """One-line summary of the label switching that was found."""
        if self.method in ("ordered", "none"):
            return f"identified ({self.method}), nothing relabelled"
        if not self.relabelled:
            return "no label switching"
        kinds = [
            name
            for name, found in (
                ("between chains", self.chains_disagree),
                ("within chains", self.switching_within_chains),
            )
            if found
        ]
        where = " and ".join(kinds) if kinds else "isolated draws"
        total = int(self.permuted_per_chain.sum())
        return f"label switching {where}: {total} draws relabelled to the MAP labels"

    def to_dict(self) -> dict:
        """JSON-serialisable form (stored in the posterior's attributes)."""
        return {
            "method": self.method,
            "n_draws": self.n_draws,
            "permuted_per_chain": self.permuted_per_chain.tolist(),
            "chain_labelings": self.chain_labelings.tolist(),
            "switches_per_chain": self.switches_per_chain.tolist(),
            "chains_disagree": self.chains_disagree,
            "switching_within_chains": self.switching_within_chains,
            "verdict": self.verdict,
        }

    def __str__(self) -> str:
        permuted = self.permuted_per_chain.tolist()
        return f"RelabelingRecord({self.verdict}; permuted per chain {permuted})"


def identity_record(
    method: str, n_chains: int, n_draws: int, n_components: int
) -> RelabelingRecord:
    """Record for a sample whose labels need no alignment (``"ordered"`` or ``"none"``)."""
    return RelabelingRecord(
        method=method,
        n_draws=n_draws,
        permuted_per_chain=np.zeros(n_chains, dtype=int),
        chain_labelings=np.tile(np.arange(n_components), (n_chains, 1)),
        switches_per_chain=np.zeros(n_chains, dtype=int),
    )


def relabel_to_reference(
    means: np.ndarray, covariances: np.ndarray, reference: MixtureParams
) -> tuple[np.ndarray, RelabelingRecord]:
    """Permutations aligning every draw to ``reference``, and the record of what they do.

    Parameters
    ----------
    means : ndarray of shape (n_chains, n_draws, K, d)
    covariances : ndarray of shape (n_chains, n_draws, K, d, d)
    reference : MixtureParams
        The labelling to align to (the MAP estimate).

    Returns
    -------
    perms : ndarray of shape (n_chains, n_draws, K)
        Apply with :func:`apply_permutations`.
    record : RelabelingRecord
    """
    n_chains, n_draws, k, d = means.shape
    cost = gaussian_kl_cost(
        means.reshape(-1, k, d),
        covariances.reshape(-1, k, d, d),
        reference.means,
        reference.full_covariances(),
    )
    perms = best_permutations(cost).reshape(n_chains, n_draws, k)
    identity = np.arange(k)
    moved = np.any(perms != identity, axis=-1)
    modal = np.empty((n_chains, k), dtype=np.intp)
    for c in range(n_chains):
        labelings, counts = np.unique(perms[c], axis=0, return_counts=True)
        modal[c] = labelings[np.argmax(counts)]
    switches = np.any(perms[:, 1:] != perms[:, :-1], axis=-1).sum(axis=1)
    record = RelabelingRecord(
        method="kl-hungarian",
        n_draws=n_draws,
        permuted_per_chain=moved.sum(axis=1),
        chain_labelings=modal,
        switches_per_chain=switches,
    )
    return perms, record


@dataclass(frozen=True)
class ProjectionOrder:
    """An identifying constraint: the components ordered along one direction.

    Attributes
    ----------
    direction : ndarray of shape (n_features,)
        Unit vector ``v``; the constraint is ``mu_1 . v < mu_2 . v < ... < mu_K . v``.
    order : ndarray of shape (n_components,)
        The components of the solution it was chosen from, by increasing projection
        (position ``i`` holds component ``order[i]``, as :meth:`MixtureParams.permuted`).
    separation : float
        Smallest gap between neighbouring projected means in units of its approximate
        posterior standard deviation (see :func:`projection_order`).
    """

    direction: np.ndarray
    order: np.ndarray
    separation: float

    def basis(self) -> np.ndarray:
        """Orthogonal matrix of shape (d, d) whose first column is ``direction``.

        The Householder reflection that maps the first unit vector to ``direction``
        (symmetric, so it is its own inverse).
        """
        v = np.asarray(self.direction, dtype=np.float64)
        e1 = np.zeros_like(v)
        e1[0] = 1.0
        u = e1 - v
        norm2 = float(u @ u)
        if norm2 < 1e-24:
            return np.eye(v.size)
        return np.eye(v.size) - 2.0 * np.outer(u, u) / norm2


def _order_along(
    direction: np.ndarray, means: np.ndarray, mean_covariances: np.ndarray
) -> tuple[np.ndarray, float]:
    """Order of the projected means and the smallest standardised neighbouring gap."""
    projected = means @ direction
    order = np.argsort(projected, kind="stable")
    variances = np.einsum("i,kij,j->k", direction, mean_covariances, direction)
    gaps = np.diff(projected[order])
    spread = np.sqrt(variances[order][1:] + variances[order][:-1])
    return order, float(np.min(gaps / spread))


def projection_order(
    means: np.ndarray, covariances: np.ndarray, weights: np.ndarray, n_samples: float
) -> ProjectionOrder:
    """The direction along which a mixture solution's components are best separated.

    The separation of two neighbouring components along a unit vector ``v`` is the gap
    between their projected means over the approximate posterior standard deviation of
    that gap, ``(mu_j - mu_i) . v / sqrt(v' (S_i + S_j) v)`` with ``S_k = Sigma_k /
    (n w_k)`` the sampling covariance of the mean of component ``k``; the direction's
    separation is the smallest over neighbours. Candidates are, for every pair of
    components, the direction that maximises the pair's separation (Fisher's,
    ``(S_i + S_j)^{-1} (mu_j - mu_i)``), and the leading principal axis of the weighted
    means; the best candidate is returned. A constraint ``mu . v`` increasing along a
    direction of separation ``z`` cuts the posterior where it has little mass (a gap
    of ``z`` standard deviations from zero) when ``z`` is large.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    weights : ndarray of shape (n_components,)
    n_samples : float
        Number of observations (or total frequency weight) behind the solution.

    Returns
    -------
    ProjectionOrder
    """
    means = np.asarray(means, dtype=np.float64)
    k, d = means.shape
    counts = np.maximum(np.asarray(weights, dtype=np.float64) * n_samples, 1.0)
    mean_covariances = np.asarray(covariances, dtype=np.float64) / counts[:, None, None]
    centred = means - weights @ means
    candidates = [np.linalg.eigh((weights * centred.T) @ centred)[1][:, -1]]
    for i in range(k):
        for j in range(i + 1, k):
            pooled = mean_covariances[i] + mean_covariances[j]
            candidates.append(np.linalg.solve(pooled, means[j] - means[i]))
    best = None
    for v in candidates:
        norm = np.linalg.norm(v)
        if not np.isfinite(norm) or norm == 0.0:
            continue
        v = v / norm
        v = v if v[np.argmax(np.abs(v))] > 0 else -v  # a deterministic sign
        order, separation = _order_along(v, means, mean_covariances)
        if best is None or separation > best.separation:
            best = ProjectionOrder(v, order, separation)
    if best is None:
        return ProjectionOrder(np.eye(d)[0], np.arange(k), 0.0)
    return best


__all__ = [
    "ProjectionOrder",
    "RelabelingRecord",
    "align_point_estimate",
    "apply_permutations",
    "best_permutations",
    "gaussian_kl_cost",
    "identity_record",
    "projection_order",
    "relabel_to_reference",
]
