"""The ``.npz`` file of a learned edit: numeric arrays and JSON metadata, nothing executable.

An archive holds ``metadata`` (a JSON string) and the arrays of
:meth:`FittedEdit.arrays <fairnoise.edits.FittedEdit.arrays>`. ``format_version`` is 1
for an edit without optional parts (what every fairnoise can read) and 2 for one with a
standardisation or an eraser: a reader of version 1 reads only the members it knows, so
it must refuse such a file rather than silently drop its parts. Reading trusts nothing in
the file: only the known members are read, each member's declared dtype and shape are
checked against the metadata *before* its data is read (so a small file cannot make the
reader allocate gigabytes), and every violation is a ``ValueError`` that says the file is
not a valid fairnoise edit and why.
"""

from __future__ import annotations

import json
import numbers
import os
import zipfile
from typing import IO, Any

import numpy as np

from ._fitted import KINDS, PARTS, FittedEdit

FORMAT = "fairnoise-noise"
#: the newest format version written and read; an edit without parts is written as 1
FORMAT_VERSION = 2
#: the longest metadata string read (feature names included), in characters
_MAX_METADATA_CHARS = 10_000_000
_ARRAYS = ("noise", "noise_param", "mask")
#: the optional parts' members (format version 2): float64 where the part computes in it
_PART_ARRAYS = tuple(prefix + name for prefix, _, names in PARTS.values() for name in names)


class InvalidEditFile(ValueError):
    """The file is not a valid fairnoise edit; the message says why."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} is not a valid fairnoise edit file: {why}.")


def save_edit(path: str | os.PathLike, edit: FittedEdit, metadata: dict[str, Any]) -> str:
    """Write ``edit`` and ``metadata`` to ``path`` (``.npz`` appended if missing)."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = edit.arrays()
    version = 2 if any(k in arrays for k in _PART_ARRAYS) else 1
    meta = {"format": FORMAT, "format_version": version, **metadata,
            "edit": edit.kind, "input_shape": list(edit.input_shape)}
    with open(path, "wb") as fh:
        np.savez(fh, metadata=np.asarray(json.dumps(meta)),
                 **{k: np.asarray(v) if k in _PART_ARRAYS else np.asarray(v, np.float32)
                    for k, v in arrays.items()})
    return path


def load_edit(path: str | os.PathLike) -> tuple[FittedEdit, dict[str, Any]]:
    """Read a file written by :func:`save_edit`: the edit and the checked metadata."""
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise InvalidEditFile(path, f"it cannot be read as an .npz archive ({exc})") from exc
    with archive:
        members = {name[:-4]: name for name in archive.namelist() if name.endswith(".npy")}
        if "metadata" not in members:
            raise InvalidEditFile(path, "it has no metadata entry")
        text = _read_member(archive, members["metadata"], path, "metadata", kind="U",
                            max_elements=1, max_itemsize=4 * _MAX_METADATA_CHARS)
        meta = _check_metadata(path, text)
        shape = tuple(meta["input_shape"])
        size = int(np.prod(shape))
        width = meta["n_features_out"]
        limits = {**dict.fromkeys(_ARRAYS, size), **dict.fromkeys(_PART_ARRAYS, size),
                  "eraser_mean": width, "eraser_left": width * width,
                  "eraser_right": width * width}
        arrays = {}
        for name, limit in limits.items():
            if name not in members:
                continue
            if name in _PART_ARRAYS and meta["format_version"] < 2:
                raise InvalidEditFile(path, f"its {name!r} entry needs format_version 2, "
                                      f"not {meta['format_version']}")
            arrays[name] = _read_member(archive, members[name], path, name, kind="fc",
                                        max_elements=limit)
    try:
        edit = FittedEdit.from_arrays(meta["edit"], shape, arrays)
    except (TypeError, ValueError) as exc:
        raise InvalidEditFile(path, str(exc).rstrip(".")) from exc
    if edit.eraser is not None and edit.eraser.mean.shape[0] != width:
        raise InvalidEditFile(path, f"its eraser is for embeddings of "
                              f"{edit.eraser.mean.shape[0]} features, but n_features_out is "
                              f"{width}")
    return edit, meta


def _read_member(archive: zipfile.ZipFile, member: str, path: str, name: str, *,
                 kind: str, max_elements: int, max_itemsize: int = 8) -> np.ndarray:
    """One ``.npy`` member, its header checked before any of its data is read."""
    try:
        with archive.open(member) as fh:
            dtype, shape = _header(fh)
            n = int(np.prod(shape, dtype=np.float64))  # a float: a huge shape cannot wrap
            if dtype.kind not in kind or dtype.hasobject:
                what = "a string" if kind == "U" else "real numbers"
                raise InvalidEditFile(path, f"its {name!r} entry holds dtype {dtype}, not {what}")
            if dtype.kind == "c":
                raise InvalidEditFile(path, f"its {name!r} array is complex, not real")
            if n > max_elements or dtype.itemsize > max_itemsize:
                raise InvalidEditFile(
                    path, f"its {name!r} entry declares shape {shape} of {dtype}, larger than "
                    f"its metadata allows (at most {max_elements} elements)")
            data = fh.read(n * dtype.itemsize)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        if isinstance(exc, InvalidEditFile):
            raise
        raise InvalidEditFile(path, f"its {name!r} entry cannot be read ({exc})") from exc
    if len(data) != n * dtype.itemsize:
        raise InvalidEditFile(path, f"its {name!r} entry is truncated")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array[()] if kind == "U" else array


def _header(fh: IO[bytes]) -> tuple[np.dtype, tuple[int, ...]]:
    version = np.lib.format.read_magic(fh)
    reader = {(1, 0): np.lib.format.read_array_header_1_0,
              (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if reader is None:
        raise ValueError(f"unknown .npy format version {version}")
    shape, fortran_order, dtype = reader(fh)
    if fortran_order and len(shape) > 1:
        raise ValueError("Fortran-ordered arrays are not written by fairnoise")
    return np.dtype(dtype), tuple(shape)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_metadata(path: str, text: Any) -> dict[str, Any]:
    """The metadata as a dict, each entry checked; raises :class:`InvalidEditFile`."""
    try:
        meta = json.loads(str(text))
    except json.JSONDecodeError as exc:
        raise InvalidEditFile(path, "its metadata is not JSON") from exc
    if not isinstance(meta, dict):
        raise InvalidEditFile(path, f"its metadata is a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise InvalidEditFile(path, f"format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("format_version")
    if not _is_int(version) or version < 1:
        raise InvalidEditFile(path, f"format_version must be a positive integer; got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} was written in format version {version} by fairnoise "
                         f"{meta.get('fairnoise_version')}; upgrade fairnoise to read it.")
    for key in ("edit", "input_shape", "n_features_out", "channel_shared"):
        if key not in meta:
            raise InvalidEditFile(path, f"its metadata has no {key!r} entry")
    if meta["edit"] not in KINDS:
        raise InvalidEditFile(path, f"edit is {meta['edit']!r}, not one of {KINDS}")
    shape = meta["input_shape"]
    if not (isinstance(shape, list) and 1 <= len(shape) <= 3
            and all(_is_int(s) and s >= 1 for s in shape)):
        raise InvalidEditFile(path, f"input_shape must be a list of 1 to 3 positive integers; "
                              f"got {shape!r}")
    if not _is_int(meta["n_features_out"]) or meta["n_features_out"] < 1:
        raise InvalidEditFile(path, "n_features_out must be a positive integer; got "
                              f"{meta['n_features_out']!r}")
    if not isinstance(meta["channel_shared"], bool):
        raise InvalidEditFile(path, "channel_shared must be true or false; got "
                              f"{meta['channel_shared']!r}")
    res = meta.get("noise_resolution")
    if not (res is None or (_is_int(res) and res >= 1)
            or (isinstance(res, list) and len(res) == 2 and all(_is_int(r) and r >= 1
                                                                for r in res))):
        raise InvalidEditFile(path, f"noise_resolution must be null, a positive integer or two; "
                              f"got {res!r}")
    names = meta.get("feature_names")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(n, str) for n in names)
                                  and len(names) == int(np.prod(shape))):
        raise InvalidEditFile(path, "feature_names must be null or one string per input feature")
    return meta
