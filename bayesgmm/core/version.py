"""The package's version, defined once (``bayesgmm.__version__`` and saved models read it)."""

__version__ = "0.1.0"
