"""Saved models: one folder, a versioned JSON file and (Bayesian fits) the posterior draws.

:meth:`GaussianMixture.save <bayesgmm.em.estimator.GaussianMixture.save>` and
:meth:`BayesianGaussianMixture.save <bayesgmm.bayes.estimator.BayesianGaussianMixture.save>`
write, and :func:`bayesgmm.load` reads, a folder::

    model.json       format name and version, bayesgmm version, estimator class,
                     constructor settings (get_params), fitted state (point parameters,
                     model spec with prior and standardisation, optima, diagnostics),
                     feature names, optional input scaling and free metadata
    posterior.zarr   BayesianGaussianMixture only: ``idata_`` (posterior, sample_stats,
                     log_likelihood, posterior_predictive, observed_data, ...) written by
                     xarray's DataTree.to_zarr
    .bayesgmm-output marker of a folder bayesgmm wrote (bayesgmm.core.io)

The folder is written into a temporary sibling and moved into place only when complete
(:func:`bayesgmm.core.io.atomic_directory`): a failed save leaves no half-written model
and the previous one as it was.

JSON cannot hold every value a fitted estimator has, so :func:`encode` writes the few that
need it as tagged objects: arrays (``{"__ndarray__": [...], "dtype", "shape"}``, flattened
in C order), tuples, non-finite floats (``{"__float__": "nan"}``), NumPy generators (their
bit-generator state) and the core records (``{"__class__": "MixtureParams", "fields":
{...}}`` for MixtureParams, MixturePrior, MixtureSpec, Standardization, NoiseComponent).
Floats are written with Python's shortest round-trip ``repr``, so every number reads back
bit for bit and a loaded estimator predicts exactly as the saved one. Reading rebuilds the
records through their constructors, which validate them again (finite values, shapes,
positive definite covariances).

Version policy: :data:`FORMAT_VERSION` is an integer, raised whenever a change would make a
file unreadable by an older reader or misread by a newer one; a reader accepts exactly its
own version and refuses any other with :class:`~bayesgmm.core.exceptions.ModelFormatError`
naming the version and the bayesgmm release that wrote the file. Additions that old readers
can ignore (a new key in ``metadata``) keep the version.

Every problem found while reading (no such folder, no or a truncated ``model.json``, a JSON
file from elsewhere, another format version, a missing or unreadable posterior, values that
are non-finite or of the wrong shape, a scale of 0) is a
:class:`~bayesgmm.core.exceptions.ModelFormatError` (a ``ValueError``) naming the file and
the problem.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesgmm.core.covariance import get_structure
from bayesgmm.core.exceptions import ModelFormatError
from bayesgmm.core.io import atomic_directory, write_text_atomic
from bayesgmm.core.noise import NoiseComponent
from bayesgmm.core.params import MixtureParams
from bayesgmm.core.priors import HierarchicalPrior, MixturePrior
from bayesgmm.core.spec import MixtureSpec, Standardization
from bayesgmm.core.version import __version__

if TYPE_CHECKING:
    import xarray as xr

#: ``format`` of every model file.
FORMAT_NAME = "bayesgmm-model"
#: The one format version this release reads and writes (see the version policy above).
FORMAT_VERSION = 1
#: The JSON file of a saved model.
MODEL_FILE = "model.json"
#: The posterior draws of a saved BayesianGaussianMixture (a Zarr store).
POSTERIOR_FILE = "posterior.zarr"
#: Keys every model file has.
REQUIRED_KEYS: tuple[str, ...] = (
    "format",
    "format_version",
    "bayesgmm_version",
    "estimator",
    "params",
    "state",
    "feature_names",
    "input_scaling",
    "posterior",
    "metadata",
)
#: Array dtypes a model file may hold ("str": an object array of strings).
ARRAY_DTYPES: tuple[str, ...] = ("float64", "float32", "int64", "int32", "bool", "str")


def _float(value: float) -> float | dict:
    value = float(value)
    return value if math.isfinite(value) else {"__float__": repr(value)}


def _element(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    return value


def _array(value: np.ndarray) -> dict:
    if value.dtype.kind in "UO":
        flat = [str(v) for v in value.ravel()]
        dtype = "str"
    else:
        dtype = value.dtype.name
        if dtype not in ARRAY_DTYPES:
            value = value.astype(np.float64 if value.dtype.kind == "f" else np.int64)
            dtype = value.dtype.name
        flat = [_element(v) for v in value.ravel().tolist()]
    return {"__ndarray__": flat, "dtype": dtype, "shape": list(value.shape)}


def _record(name: str, fields: dict) -> dict:
    return {"__class__": name, "fields": {k: encode(v) for k, v in fields.items()}}


def encode(value: Any) -> Any:
    """``value`` as JSON-safe data (tagged objects for arrays and core records).

    Raises
    ------
    TypeError
        A value of a type the format cannot hold (named in the message).
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _float(value)
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"cannot save a dict with non-string keys {bad[:3]}")
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, np.random.Generator):
        return {"__class__": "Generator", "fields": {"state": value.bit_generator.state}}
    if isinstance(value, MixtureSpec):
        return _record(
            "MixtureSpec",
            {
                "n_components": value.n_components,
                "covariance_type": value.covariance_type,
                "n_features": value.n_features,
                "prior": value.prior,
                "standardization": value.standardization,
                "noise": value.noise,
            },
        )
    if isinstance(value, MixtureParams | MixturePrior | Standardization | NoiseComponent):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
        return _record(type(value).__name__, fields)
    raise TypeError(
        f"cannot save a value of type {type(value).__name__} ({value!r:.80}): the model "
        "format holds numbers, strings, arrays, lists, dicts and bayesgmm's parameter records"
    )


def _decode_array(tagged: dict) -> np.ndarray:
    dtype, shape, flat = tagged.get("dtype"), tagged.get("shape"), tagged["__ndarray__"]
    if dtype not in ARRAY_DTYPES:
        raise ValueError(f"array of unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"array with a bad shape {shape!r}")
    if not isinstance(flat, list) or len(flat) != math.prod(shape):
        size = len(flat) if isinstance(flat, list) else type(flat).__name__
        raise ValueError(f"array of shape {tuple(shape)} holds {size} values")
    if dtype == "str":
        return np.array([str(v) for v in flat], dtype=object).reshape(shape)
    values = [float(v) if isinstance(v, str) else v for v in flat]
    return np.array(values, dtype=dtype).reshape(shape)


def _decode_record(name: str, fields: dict):
    if not isinstance(fields, dict):
        raise ValueError(f"record {name!r} without fields")
    fields = {k: decode(v) for k, v in fields.items()}
    if name == "Generator":
        bit_generator = getattr(np.random, str(fields["state"].get("bit_generator")), None)
        if not isinstance(bit_generator, type) or not issubclass(
            bit_generator, np.random.BitGenerator
        ):
            raise ValueError(f"unknown bit generator {fields['state'].get('bit_generator')!r}")
        generator = np.random.Generator(bit_generator())
        generator.bit_generator.state = fields["state"]
        return generator
    if name == "MixtureParams":
        return MixtureParams(**fields)
    if name == "MixturePrior":
        return MixturePrior(**fields)
    if name == "HierarchicalPrior":
        return HierarchicalPrior(**fields)
    if name == "Standardization":
        return check_scaling(Standardization(**fields), "standardization")
    if name == "NoiseComponent":
        volume = float(fields["volume"])
        lower, upper = (np.asarray(fields[k], dtype=np.float64) for k in ("lower", "upper"))
        if not (math.isfinite(volume) and volume > 0):
            raise ValueError(f"noise volume must be positive and finite, got {volume}")
        if lower.ndim != 1 or lower.shape != upper.shape or not np.all(np.isfinite(lower)):
            raise ValueError("noise region lower/upper must be finite vectors of one length")
        if not np.all(np.isfinite(upper)) or np.any(upper < lower):
            raise ValueError("noise region must have finite upper >= lower bounds")
        return NoiseComponent(volume, lower, upper)
    if name == "MixtureSpec":
        spec = MixtureSpec(
            int(fields["n_components"]),
            get_structure(fields["covariance_type"]),
            int(fields["n_features"]),
            fields["prior"],
            fields["standardization"],
            fields["noise"],
        )
        d = spec.n_features
        if spec.standardization.location.shape != (d,):
            raise ValueError(f"standardization for {spec.standardization.location.shape} features")
        if spec.prior is not None and spec.prior.n_features != d:
            raise ValueError(f"prior for {spec.prior.n_features} features, model has {d}")
        if spec.noise is not None and spec.noise.n_features != d:
            raise ValueError(f"noise region for {spec.noise.n_features} features, model has {d}")
        return spec
    raise ValueError(f"unknown record {name!r}")


def decode(value: Any) -> Any:
    """Inverse of :func:`encode` (records rebuilt by their validating constructors).

    Raises
    ------
    ValueError, TypeError, KeyError
        A malformed tagged object or a record its constructor refuses.
    """
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        return _decode_array(value)
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__float__" in value:
        return float(value["__float__"])
    if "__class__" in value:
        return _decode_record(str(value["__class__"]), value.get("fields"))
    return {k: decode(v) for k, v in value.items()}


def check_scaling(scaling: Standardization, name: str, n_features: int | None = None):
    """``scaling`` with finite locations and positive finite scales of one length.

    Raises
    ------
    ValueError
        Naming ``name`` and the first offending value.
    """
    location = np.asarray(scaling.location, dtype=np.float64)
    scale = np.asarray(scaling.scale, dtype=np.float64)
    if location.ndim != 1 or location.shape != scale.shape:
        raise ValueError(
            f"{name}: location {location.shape} and scale {scale.shape} must be vectors of "
            "one length"
        )
    if n_features is not None and location.shape[0] != n_features:
        raise ValueError(f"{name} has {location.shape[0]} features, the model {n_features}")
    if not np.all(np.isfinite(location)):
        raise ValueError(f"{name}: location contains NaN or infinity")
    bad = np.flatnonzero(~(np.isfinite(scale) & (scale > 0)))
    if bad.size:
        raise ValueError(
            f"{name}: scale[{int(bad[0])}] is {scale[bad[0]]}; every scale must be positive "
            "and finite"
        )
    return Standardization(location, scale)


@dataclass(frozen=True)
class SavedModel:
    """What a model folder holds, read and checked by :func:`read_model`.

    Attributes
    ----------
    path : Path
        The model folder.
    estimator : str
        Class name of the estimator (``"GaussianMixture"``, ``"BayesianGaussianMixture"``).
    params : dict
        Constructor settings (``get_params()``).
    state : dict
        The fitted state (the estimator's ``_get_state``).
    posterior : xarray.DataTree or None
        The posterior draws, loaded into memory (Bayesian fits).
    feature_names : list of str or None
        ``feature_names_in_`` of the fit.
    input_scaling : Standardization or None
        An affine map the data went through before ``fit`` (e.g. the command line's
        ``--scale``): raw data ``x`` are predicted as ``input_scaling.to_working(x)``.
    metadata : dict
        Free JSON data given to ``save`` (the command line: its command and data).
    bayesgmm_version : str
        The release that wrote the folder.
    """

    path: Path
    estimator: str
    params: dict
    state: dict
    posterior: xr.DataTree | None
    feature_names: list[str] | None
    input_scaling: Standardization | None
    metadata: dict
    bayesgmm_version: str

    @property
    def model_file(self) -> Path:
        """The JSON file."""
        return self.path / MODEL_FILE


def write_model(
    estimator,
    folder: Path | str,
    *,
    input_scaling: Standardization | None = None,
    metadata: Mapping | None = None,
) -> Path:
    """Write a fitted estimator's model files into an existing ``folder``; return it.

    ``estimator`` implements ``_get_state() -> (state dict, posterior DataTree or None)``.
    The posterior is written first and ``model.json`` last, so a folder with a
    ``model.json`` is complete. :func:`save_estimator` wraps this in an atomic folder;
    the command line calls it inside its own.

    Raises
    ------
    TypeError
        A setting or metadata value the format cannot hold.
    ValueError
        ``input_scaling`` with a non-positive or non-finite scale, or of the wrong length.
    """
    folder = Path(folder)
    state, posterior = estimator._get_state()
    names = getattr(estimator, "feature_names_in_", None)
    if input_scaling is not None:
        input_scaling = check_scaling(input_scaling, "input_scaling", int(estimator.n_features_in_))
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bayesgmm_version": __version__,
        "estimator": type(estimator).__name__,
        "params": encode(estimator.get_params(deep=False)),
        "feature_names": None if names is None else [str(n) for n in names],
        "input_scaling": encode(input_scaling),
        "posterior": None if posterior is None else POSTERIOR_FILE,
        "metadata": encode(dict(metadata or {})),
        "state": encode(state),
    }
    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    if posterior is not None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            posterior.to_zarr(folder / POSTERIOR_FILE, mode="w")
    write_text_atomic(folder / MODEL_FILE, text)
    return folder


def save_estimator(
    estimator,
    path: Path | str,
    *,
    overwrite: bool = False,
    input_scaling: Standardization | None = None,
    metadata: Mapping | None = None,
) -> Path:
    """Save a fitted estimator to the folder ``path`` atomically; return ``path``.

    A folder bayesgmm wrote is replaced whole; a non-empty folder of the user's only with
    ``overwrite=True`` (:func:`bayesgmm.core.io.atomic_directory`).
    """
    path = Path(path)
    estimator._get_state()  # not fitted: fail before touching the file system
    with atomic_directory(path, overwrite=overwrite) as tmp:
        write_model(estimator, tmp, input_scaling=input_scaling, metadata=metadata)
    return path


def _read_json(file: Path) -> dict:
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(file, "not a text file (UTF-8 JSON expected)") from None
    except OSError as err:
        raise ModelFormatError(file, f"cannot be read: {err.strerror or err}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelFormatError(
            file, f"not valid JSON (truncated or edited?): {err.msg} at line {err.lineno}"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ModelFormatError(
            file, f'not a bayesgmm model file (it has no "format": "{FORMAT_NAME}")'
        )
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            file,
            f"model format version {version!r} (written by bayesgmm "
            f"{document.get('bayesgmm_version', '?')}), but bayesgmm {__version__} reads "
            f"version {FORMAT_VERSION} only: load it with the release that wrote it, or refit",
        )
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise ModelFormatError(file, f"incomplete model file: missing key(s) {missing}")
    return document


def _read_posterior(file: Path) -> xr.DataTree:
    import xarray as xr

    if not file.exists():
        raise ModelFormatError(file, "missing: the model's posterior draws are not there")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            tree = xr.open_datatree(file, engine="zarr")
            loaded = tree.load()  # into memory: the folder may be replaced afterwards
            tree.close()
    except Exception as err:  # any failure of a damaged store
        raise ModelFormatError(file, f"cannot be read: {type(err).__name__}: {err}") from None
    for group, names in (("posterior", ("weights", "means", "covariances")), ("observed_data", ())):
        if group not in loaded.children:
            raise ModelFormatError(file, f"no {group!r} group")
        absent = [n for n in names if n not in loaded[group].data_vars]
        if absent:
            raise ModelFormatError(file, f"the posterior has no variable(s) {absent}")
    return loaded


def read_model(path: Path | str) -> SavedModel:
    """Read and check a model folder written by ``save`` (or ``bayesgmm fit``).

    Raises
    ------
    ModelFormatError
        Naming the file and the problem (see the module docstring).
    """
    folder = Path(path)
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "no such folder"
        raise ModelFormatError(folder, f"{problem} (a saved model is a folder)")
    file = folder / MODEL_FILE
    if not file.is_file():
        raise ModelFormatError(
            file,
            f"missing: {str(folder)!r} is not a saved bayesgmm model (write one with "
            "est.save(path) or 'bayesgmm fit')",
        )
    document = _read_json(file)
    try:
        params, state = decode(document["params"]), decode(document["state"])
        scaling = decode(document["input_scaling"])
        metadata = decode(document["metadata"])
        names = document["feature_names"]
        if not isinstance(params, dict) or not isinstance(state, dict):
            raise ValueError("params and state must be JSON objects")
        if not isinstance(metadata, dict):
            raise ValueError("metadata must be a JSON object")
        if names is not None and not (
            isinstance(names, list) and all(isinstance(n, str) for n in names)
        ):
            raise ValueError("feature_names must be a list of strings or null")
        if scaling is not None:
            if not isinstance(scaling, Standardization):
                raise ValueError("input_scaling must be a Standardization record or null")
            scaling = check_scaling(scaling, "input_scaling")
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ModelFormatError(file, f"bad value: {err}") from None
    posterior = None
    if document["posterior"] is not None:
        if document["posterior"] != POSTERIOR_FILE:
            raise ModelFormatError(
                file, f"posterior must be {POSTERIOR_FILE!r}, got {document['posterior']!r}"
            )
        posterior = _read_posterior(folder / POSTERIOR_FILE)
    return SavedModel(
        path=folder,
        estimator=str(document["estimator"]),
        params=params,
        state=state,
        posterior=posterior,
        feature_names=names,
        input_scaling=scaling,
        metadata=metadata,
        bayesgmm_version=str(document["bayesgmm_version"]),
    )


def restore(record: SavedModel, cls: type | None, *, known: tuple[str, ...] = ()):
    """The fitted estimator of ``record``: ``cls(**params)`` then ``_set_state``.

    Parameters
    ----------
    record : SavedModel
    cls : estimator class or None
        The class ``record.estimator`` names; ``None`` when it is not one bayesgmm loads.
    known : tuple of str
        The class names that can be loaded (for the message).

    Raises
    ------
    ModelFormatError
        An unknown class, settings the class refuses, or a fitted state that is
        inconsistent (shapes, non-finite values, a scale of 0, ...).
    """
    if cls is None:
        raise ModelFormatError(
            record.model_file,
            f"unknown estimator {record.estimator!r}; bayesgmm loads {sorted(known)}",
        )
    try:
        estimator = cls(**record.params)
        estimator._set_state(record.state, record.posterior)
    except ModelFormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        where = record.path / POSTERIOR_FILE if "posterior" in str(err) else record.model_file
        raise ModelFormatError(
            where, f"inconsistent saved {record.estimator}: {' '.join(str(err).split())}"
        ) from None
    if record.feature_names is not None:
        if len(record.feature_names) != estimator.n_features_in_:
            raise ModelFormatError(
                record.model_file,
                f"{len(record.feature_names)} feature names for {estimator.n_features_in_} "
                "features",
            )
        estimator.feature_names_in_ = np.asarray(record.feature_names, dtype=object)
    return estimator


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "POSTERIOR_FILE",
    "ModelFormatError",
    "SavedModel",
    "check_scaling",
    "decode",
    "encode",
    "read_model",
    "restore",
    "save_estimator",
    "write_model",
]
