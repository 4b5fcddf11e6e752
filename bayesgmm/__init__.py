"""bayesgmm: Gaussian mixture models done the Bayesian way.

Two fitting paths for one model, ``z_n ~ Categorical(alpha)``,
``x_n | z_n = k ~ N(mu_k, Sigma_k)``:

* :class:`GaussianMixture`: EM (maximum likelihood) or MAP-EM in NumPy, with
  scikit-learn conventions.
* :class:`BayesianGaussianMixture`: the same model and priors in PyMC, with the labels
  marginalised, sampled by NUTS or fitted by variational inference.
"""

from bayesgmm.inference import BayesianGaussianMixture
from bayesgmm.mixture import GaussianMixture
from bayesgmm.params import MixtureParams
from bayesgmm.priors import MixturePrior

__version__ = "0.1.0"

__all__ = [
    "BayesianGaussianMixture",
    "GaussianMixture",
    "MixtureParams",
    "MixturePrior",
    "__version__",
]
