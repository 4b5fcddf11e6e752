"""Shared type aliases (the covariance registry is the source of the names)."""

from bayesgmm.covariance import CovarianceType, covariance_types

COVARIANCE_TYPES: tuple[str, ...] = covariance_types()

__all__ = ["COVARIANCE_TYPES", "CovarianceType"]
