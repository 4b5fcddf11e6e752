"""Shared type aliases."""

from typing import Literal

CovarianceType = Literal["full", "tied", "diag", "spherical"]
COVARIANCE_TYPES: tuple[str, ...] = ("full", "tied", "diag", "spherical")

__all__ = ["COVARIANCE_TYPES", "CovarianceType"]
