"""Input validation: one place that turns user data into a finite float array.

Every entry point (estimators, the PyMC model builder, the command line) calls
:func:`check_data`, so bad input fails early with a message naming the problem
and the remedy, never deep inside NumPy or PyTensor.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bayesgmm.core.missing import MISSING_REMEDY, check_missing_rows


def _column_names(X) -> list[str] | None:
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    return None


def _describe(j: int, names: list[str] | None) -> str:
    return f"column {j} ({names[j]!r})" if names else f"column {j}"


def check_data(
    X,
    *,
    name: str = "X",
    allow_1d: bool = False,
    min_samples: int = 2,
    n_components: int | None = None,
    check_constant: bool = True,
    keep_float32: bool = False,
    allow_nan: bool = False,
) -> np.ndarray:
    """Validate data and return it as a float64 array of shape (n_samples, n_features).

    Parameters
    ----------
    X : array-like or pandas.DataFrame
        Data, one row per sample.
    name : str
        How the data are called in messages.
    allow_1d : bool
        Accept a 1-D array as one feature (else a 1-D input is an error that says how to
        reshape it, as scikit-learn does).
    min_samples : int
        Fewest rows accepted.
    n_components : int, optional
        If given, require ``n_components <= n_samples``.
    check_constant : bool
        Reject columns whose values are all equal (their variance cannot be estimated).
    keep_float32 : bool
        Return a float32 array as it is (no copy) instead of converting it; EM's kernels
        read float32 and compute in float64.
    allow_nan : bool
        Accept NaN as a missing entry (``missing="marginalize"``); infinity stays an error,
        and so does a row with every entry missing
        (:func:`bayesgmm.core.missing.check_missing_rows`; the estimators' ``fit`` also refuses
        a column with every entry missing).

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    TypeError
        Non-numeric values (the offending columns are named).
    ValueError
        Wrong number of dimensions, empty data, NaN or infinite values, too few samples,
        ``n_components`` larger than the number of samples, constant columns.
    """
    if sp.issparse(X):
        raise TypeError(
            f"A sparse matrix was passed as {name}, but dense data is required: Gaussian "
            "mixtures do not support sparse input. Use X.toarray() to convert it."
        )
    names = _column_names(X)
    if isinstance(X, pd.DataFrame):
        boolean = [str(c) for c, dt in X.dtypes.items() if pd.api.types.is_bool_dtype(dt)]
        if boolean:
            raise TypeError(_boolean_message(name, f" in columns {boolean}"))
        bad = [str(c) for c, dt in X.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
        if bad:
            raise TypeError(
                f"{name} has non-numeric columns {bad}: select numeric columns only "
                "(for example with --columns on the command line)"
            )
        X = X.to_numpy(dtype=np.float64)
    elif isinstance(X, pd.Series):
        names = [str(X.name)] if X.name is not None else None
        X = X.to_numpy()
    try:
        array = np.asarray(X)
    except ValueError as err:
        raise ValueError(f"{name} could not be read as a rectangular array: {err}") from None
    if array.dtype.kind == "b":
        raise TypeError(_boolean_message(name, ""))
    if array.dtype.kind in "OUSV":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} contains non-numeric values (dtype {array.dtype}); argument must be "
                "a string or a real number in every cell: convert or drop those columns"
            ) from None
    elif array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} is complex, mixtures need real data")
    if not (keep_float32 and array.dtype == np.float32):
        array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        if not allow_1d:
            raise ValueError(
                f"Expected 2D array, got 1D array instead: {name} has shape {array.shape}. "
                "Reshape your data either using array.reshape(-1, 1) if your data has a single "
                "feature or array.reshape(1, -1) if it contains a single sample."
            )
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got an array with {array.ndim} "
            f"dimensions and shape {array.shape}"
        )
    n_samples, n_features = array.shape
    if n_features == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={array.shape}) while a minimum of 1 is required."
        )
    if n_samples < min_samples:
        raise ValueError(
            f"{name} has n_samples={n_samples} (shape={array.shape}), but at least "
            f"{min_samples} samples are required"
        )
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.isinf(array) if allow_nan else ~finite
        if bad.any():
            cols = sorted(set(np.nonzero(bad)[1].tolist()))
            has_nan = not allow_nan and bool(np.isnan(array).any())
            kinds = {
                (True, True): "NaN and infinity",
                (True, False): "NaN",
                (False, True): "infinity",
            }[(has_nan, bool(np.isinf(array).any()))]
            remedy = MISSING_REMEDY if has_nan else "drop or impute those rows first"
            where = ", ".join(_describe(j, names) for j in cols[:5])
            raise ValueError(
                f"Input {name} contains {kinds} in {int(bad.sum())} cell(s), in {where}: {remedy}"
            )
        check_missing_rows(array, name)
    if n_components is not None and n_components > n_samples:
        raise ValueError(
            f"n_components={n_components} must be <= n_samples={n_samples}: a mixture needs at "
            "least one sample per component; decrease n_components"
        )
    if check_constant and n_samples > 1:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: NaN spread
            spread = np.nanmax(array, axis=0) - np.nanmin(array, axis=0)
        constant = np.flatnonzero(spread == 0)
        if constant.size:
            where = ", ".join(_describe(int(j), names) for j in constant[:5])
            raise ValueError(
                f"{name} has constant {where} (every value equals "
                f"{plain(np.nanmax(array[:, constant[0]]))}): "
                "its variance is zero, so no Gaussian density fits it; drop that column"
            )
    return array


def _boolean_message(name: str, where: str) -> str:
    return (
        f"{name} has boolean values{where}: a Gaussian mixture models continuous data; "
        "drop those columns, or convert them with .astype(float) if 0/1 values are meant"
    )


def plain(value) -> str:
    """A number as a user reads it (``1.5``, ``3``), anything else as its ``repr``.

    NumPy scalars print as ``np.float64(1.5)`` under ``repr``; messages use this instead.
    """
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.6g}"
    return repr(value)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``, else raise a clear error."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {plain(value)} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {plain(value)}")
    return int(value)


#: What every ``random_state`` of the package accepts (:func:`check_random_state`).
RandomState = int | np.random.Generator | np.random.BitGenerator | np.random.SeedSequence | None

RANDOM_STATE_HELP = (
    "None (fresh entropy), a non-negative integer, a numpy.random.Generator (consumed: the "
    "same generator state gives the same result) or a numpy.random.SeedSequence"
)


def check_random_state(value) -> None:
    """Raise unless ``value`` is a ``random_state`` the package accepts.

    Accepted everywhere (estimators, :func:`bayesgmm.compare`,
    :func:`bayesgmm.how_many_clusters`): ``None`` (fresh entropy), a non-negative integer,
    a :class:`numpy.random.Generator` (or :class:`~numpy.random.BitGenerator`) or a
    :class:`~numpy.random.SeedSequence`, i.e. whatever seeds :func:`numpy.random.default_rng`.

    Raises
    ------
    TypeError
        Not one of those types (a float, a string, a legacy ``RandomState``).
    ValueError
        A negative integer.
    """
    accepted = (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)
    if value is None or isinstance(value, accepted):
        return
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"random_state must be {RANDOM_STATE_HELP}; got {plain(value)} ({type(value).__name__})"
        )
    if value < 0:
        raise ValueError(f"random_state must be a non-negative integer, got {plain(value)}")


def is_random_state(value) -> bool:
    """Whether :func:`check_random_state` accepts ``value`` (for constraint tables)."""
    try:
        check_random_state(value)
    except (TypeError, ValueError):
        return False
    return True


def seed_sequence(random_state: RandomState) -> np.random.SeedSequence:
    """The :class:`numpy.random.SeedSequence` behind any accepted ``random_state``.

    An integer ``s`` gives ``SeedSequence(s)`` (so ``seed_sequence(s).generate_state(n)``
    is what ``SeedSequence(s)`` always gave); a SeedSequence is copied (spawning from the
    result leaves the caller's untouched, so the same one gives the same streams); a
    Generator or BitGenerator is consumed: one 128-bit draw seeds the sequence, so the same
    generator state gives the same sequence and the generator moves on; ``None`` draws fresh
    entropy. Split the result with ``.spawn(n)`` for independent streams.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_random_state`.
    """
    check_random_state(random_state)
    if isinstance(random_state, np.random.SeedSequence):  # a copy: spawning leaves it as it is
        return np.random.SeedSequence(
            random_state.entropy,
            spawn_key=random_state.spawn_key,
            pool_size=random_state.pool_size,
        )
    if isinstance(random_state, np.random.BitGenerator):
        random_state = np.random.Generator(random_state)
    if isinstance(random_state, np.random.Generator):
        entropy = random_state.integers(2**32, size=4, dtype=np.uint64)
        return np.random.SeedSequence([int(word) for word in entropy])
    return np.random.SeedSequence(None if random_state is None else int(random_state))


def check_feature_combination(*, noise: bool, weighted: bool, missing: bool) -> None:
    """Refuse a fit that combines a noise component, frequency weights and missing entries.

    Each works alone (:mod:`bayesgmm.core.noise`, :mod:`bayesgmm.core.weights`,
    :mod:`bayesgmm.core.missing`); their combinations are not implemented yet.

    Raises
    ------
    ValueError
        Naming the features asked for together.
    """
    used = [
        name
        for name, on in (
            ("a noise component (noise=True)", noise),
            ("sample_weight", weighted),
            ('missing entries (missing="marginalize")', missing),
        )
        if on
    ]
    if len(used) > 1:
        raise ValueError(
            f"{' and '.join(used)} cannot be combined yet: fit with one of them (e.g. "
            "replicate the rows instead of weighting them, or drop the rows with NaN)"
        )


__all__ = [
    "RANDOM_STATE_HELP",
    "RandomState",
    "check_data",
    "check_feature_combination",
    "check_positive_int",
    "check_random_state",
    "is_random_state",
    "plain",
    "seed_sequence",
]
