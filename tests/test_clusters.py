"""how_many_clusters: K+ and the partition from one sparse-mixture fit, checked on the draws."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from bayesgmm import datasets
from bayesgmm.posterior.partitions import similarity_matrix
from bayesgmm.selection.clusters import how_many_clusters


@pytest.fixture(scope="module")
def blobs_analysis():
    X, labels, _ = datasets.make_mixture(150, 3, 2, separation=6.0, random_state=2)
    result = how_many_clusters(X, 8, draws=300, burn=200, random_state=0)
    return X, labels, result


def test_separated_clusters_are_counted_and_recovered(blobs_analysis):
    _, labels, result = blobs_analysis
    assert result.n_clusters == 3 and result.cluster_count.mode_probability > 0.8
    assert adjusted_rand_score(labels, result.partitions.partition) == 1.0
    n_clusters = result.fit.idata["posterior"]["n_clusters"].to_numpy().ravel()
    np.testing.assert_allclose(
        result.cluster_count.probabilities.to_numpy(),
        np.bincount(n_clusters, minlength=9)[1:] / n_clusters.size,
    )
    assert result.diagnostics.loc["e0", ["rhat", "ess_bulk"]].isna().all()  # e0 fixed


def test_similarity_from_parameters_matches_the_samplers_allocations():
    """The Rao-Blackwellised PSM and the co-clustering frequency of the Gibbs z agree."""
    result = how_many_clusters(datasets.load_galaxies(), draws=500, burn=300, random_state=1)
    psm = result.partitions.psm
    assert ((psm > 0.1) & (psm < 0.9)).sum() > 100  # galaxies: many uncertain pairs
    empirical = similarity_matrix(result.fit.allocations)
    assert np.abs(psm - empirical).max() < 0.06


def test_record_prints_answer_first_and_states_the_prior(blobs_analysis):
    _, _, result = blobs_analysis
    text = str(result)
    lines = text.splitlines()
    assert lines[0] == result.answer()
    assert lines[0].startswith("K+ = 3 with posterior probability")
    assert "credible ball radius" in lines[0]
    assert "full covariances" in text and "e0 = 0.01" in text and "K_max = 8" in text
    assert "P(K+ = k | X)" in lines[1]
    frame = result.partition_frame()
    assert list(frame.columns) == ["cluster", "certainty"] and len(frame) == 150


def test_same_seed_same_answer_and_gamma_prior_is_stated():
    X = datasets.load_galaxies()
    first = how_many_clusters(X, 6, e0=None, draws=150, burn=100, random_state=5)
    again = how_many_clusters(X, 6, e0=None, draws=150, burn=100, random_state=5)
    np.testing.assert_array_equal(first.partitions.partition, again.partitions.partition)
    assert first.answer() == again.answer()
    assert "e0 ~ Gamma(10, 60)" in first.priors()


def test_a_generator_seeds_reproducibly_and_ci_prob_sizes_the_ball():
    X = datasets.load_galaxies()
    settings = dict(draws=150, burn=100)
    rng = np.random.default_rng(5)
    by_rng = how_many_clusters(X, 6, random_state=rng, ci_prob=0.5, **settings)
    twin = how_many_clusters(X, 6, random_state=np.random.default_rng(5), ci_prob=0.5, **settings)
    np.testing.assert_array_equal(by_rng.partitions.partition, twin.partitions.partition)
    assert by_rng.answer() == twin.answer()
    assert by_rng.partitions.credible_ball.ci_prob == 0.5 and "50% credible ball" in by_rng.answer()
    seq = np.random.SeedSequence(5)
    first = how_many_clusters(X, 6, random_state=seq, **settings)
    again = how_many_clusters(X, 6, random_state=seq, **settings)
    assert first.answer() == again.answer()


def test_the_stored_rhat_of_kplus_is_the_diagnostics_one(blobs_analysis):
    _, _, result = blobs_analysis
    stored = result.cluster_count.rhat
    expected = result.diagnostics.loc["n_clusters", "rhat"]
    assert (np.isnan(stored) and np.isnan(expected)) or stored == pytest.approx(expected)
    assert result.cluster_count.reliability == ""  # converged: nothing in the headline


def test_an_unconverged_kplus_is_marked_in_the_headline_itself(blobs_analysis):
    import dataclasses

    from bayesgmm.selection.ranking import cluster_count_sentence

    _, _, result = blobs_analysis
    shaky = dataclasses.replace(result.cluster_count, rhat=1.304)
    assert not shaky.converged
    assert shaky.answer().startswith("unreliable: R-hat of K+ 1.30; K+ = 3 with posterior")
    unconverged = dataclasses.replace(result, cluster_count=shaky)
    assert str(unconverged).splitlines()[0].startswith("unreliable: R-hat of K+ 1.30")
    # compare's recommendation sentence says it where it quotes the probability
    assert "unreliable: R-hat of K+ 1.30" in cluster_count_sentence(shaky, 3)
    assert "unreliable" not in cluster_count_sentence(result.cluster_count, 3)


def test_a_cluster_of_one_point_is_named_as_such():
    X, _, _ = datasets.make_mixture(120, 2, 2, separation=6.0, random_state=3)
    X = np.vstack([X, [[60.0, -60.0]]])  # one far point: its own cluster in the partition
    result = how_many_clusters(X, 6, draws=300, burn=200, random_state=0)
    sizes = np.bincount(result.partitions.partition)
    assert 1 in sizes.tolist()
    single = int(np.flatnonzero(sizes == 1)[0])
    assert f"cluster {single} is a single point" in result.answer()
    assert "too few to call a cluster" in result.answer()
