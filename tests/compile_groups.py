"""Tests that share compiled code run in one worker process (``pytest -n 2 --dist loadgroup``).

Numba compiles each PyTensor graph once per process (10-60 s with empty caches; the
structure's :class:`bayesgmm.bayes.compiled.CompiledMixture` is kept for the process) and
another process loads it from the disk cache only once that compilation has finished: two
workers that compile the same graph at the same time both pay for it. Each mark below names
what its tests share; pytest-xdist's ``loadgroup`` sends a group to one worker (without
``--dist loadgroup``, or without ``-n``, the marks change nothing).
"""

import pytest

#: Old Faithful K=2, full covariances: the PyTensor graph behind the hand-written kernel
#: (``compiled_mixture(...).graph``, compiled on first use).
FAITHFUL_FULL_GRAPH = pytest.mark.xdist_group("graph faithful K=2 full")
#: The same for tied, diag and spherical covariances.
FAITHFUL_TIED_GRAPH = pytest.mark.xdist_group("graph faithful K=2 tied")
FAITHFUL_DIAG_GRAPH = pytest.mark.xdist_group("graph faithful K=2 diag")
FAITHFUL_SPHERICAL_GRAPH = pytest.mark.xdist_group("graph faithful K=2 spherical")
#: One feature, K=2, full (galaxies, Old Faithful's first column): the graph.
ONE_D_FULL_GRAPH = pytest.mark.xdist_group("graph 1-d K=2 full")
#: Two features, K=2, full, ordered projection (no kernel: the graph is the NUTS target).
ORDERED_PROJECTION = pytest.mark.xdist_group("ordered projection 2-d K=2 full")
#: Old Faithful K=2 ADVI and full-rank ADVI step functions (and test_vi's NUTS reference and
#: fits, kept per module and process).
VI_FAITHFUL = pytest.mark.xdist_group("vi faithful K=2")
#: Galaxies K=3 ADVI and full-rank ADVI step functions (and test_vi's reference and fits).
VI_GALAXIES = pytest.mark.xdist_group("vi galaxies K=3")
#: Minibatch ADVI on the same rows and batch size (the rows are constants of the graph).
MINIBATCH_ADVI = pytest.mark.xdist_group("minibatch advi")
