"""The edit file trusts nothing it reads: every malformed file is a clear ValueError."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

from fairnoise import DebiasedNoiseTransformer, load_noise
from fairnoise.edits import FittedEdit

GOOD_META = {"format": "fairnoise-noise", "format_version": 1, "fairnoise_version": "0.2",
             "estimator": "DebiasedNoiseTransformer", "edit": "masked", "input_shape": [4],
             "n_features_out": 4, "channel_shared": True, "noise_resolution": None,
             "feature_names": None}
GOOD_ARRAYS = {"noise": np.zeros(4, np.float32), "noise_param": np.zeros(4, np.float32),
               "mask": np.ones(4, np.float32)}


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_file(path, meta=GOOD_META, arrays=GOOD_ARRAYS, extra=None) -> str:
    """An .npz archive with the given metadata (any JSON value) and members."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if meta is not None:
            zf.writestr("metadata.npy", npy_bytes(np.asarray(json.dumps(meta))))
        for name, array in arrays.items():
            zf.writestr(f"{name}.npy", npy_bytes(array))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return str(path)


def header_only(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """A .npy header declaring ``shape`` with no data behind it."""
    buffer = io.BytesIO()  # the header, magic string included
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_well_formed_file_loads(tmp_path):
    t = load_noise(write_file(tmp_path / "ok.npz"))
    assert isinstance(t.edit_, FittedEdit) and t.input_shape_ == (4,)


@pytest.mark.parametrize("change, reason", [
    (dict(input_shape=None), "input_shape"),
    (dict(input_shape="64"), "input_shape"),
    (dict(input_shape=[0, 4]), "input_shape"),
    (dict(n_features_out="many"), "n_features_out"),
    (dict(n_features_out=None), "n_features_out"),
    (dict(format_version="1"), "format_version"),
    (dict(channel_shared="yes"), "channel_shared"),
    (dict(edit="blur"), "edit"),
    (dict(noise_resolution="auto"), "noise_resolution"),
    (dict(feature_names=["a"]), "feature_names"),
])
def test_malformed_metadata_is_rejected_by_name(tmp_path, change, reason):
    meta = {**GOOD_META, **change}
    meta = {k: v for k, v in meta.items() if v is not None or k in ("noise_resolution",
                                                                    "feature_names")}
    with pytest.raises(ValueError, match=f"not a valid fairnoise edit file.*{reason}"):
        load_noise(write_file(tmp_path / "bad.npz", meta=meta))


@pytest.mark.parametrize("key", ["channel_shared", "n_features_out", "input_shape", "edit"])
def test_a_missing_metadata_entry_is_named(tmp_path, key):
    meta = {k: v for k, v in GOOD_META.items() if k != key}
    with pytest.raises(ValueError, match=f"no '{key}' entry"):
        load_noise(write_file(tmp_path / "bad.npz", meta=meta))


def test_metadata_that_is_not_an_object_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="metadata is a JSON list"):
        load_noise(write_file(tmp_path / "bad.npz", meta=[1, 2]))


def test_a_plain_npy_file_is_not_an_edit_file(tmp_path):
    path = tmp_path / "noise.npy"
    np.save(path, np.zeros(4))
    with pytest.raises(ValueError, match="not a valid fairnoise edit file.*npz archive"):
        load_noise(path)


@pytest.mark.parametrize("array, reason", [
    (np.array(["a", "b", "c", "d"]), "real numbers"),
    (np.zeros(4, np.complex64), "complex"),
    (np.full(4, np.nan, np.float32), "NaN"),
    (np.zeros((2, 2), np.float32), "broadcast"),
])
def test_a_bad_noise_array_is_rejected(tmp_path, array, reason):
    arrays = {**GOOD_ARRAYS, "noise": array}
    with pytest.raises(ValueError, match=f"not a valid fairnoise edit file.*{reason}"):
        load_noise(write_file(tmp_path / "bad.npz", arrays=arrays))


def test_a_mask_outside_the_unit_interval_is_rejected(tmp_path):
    arrays = {**GOOD_ARRAYS, "mask": np.full(4, 1.5, np.float32)}
    with pytest.raises(ValueError, match=r"mask leaves \[0, 1\]"):
        load_noise(write_file(tmp_path / "bad.npz", arrays=arrays))


def test_a_declared_shape_larger_than_the_input_is_refused_before_reading(tmp_path):
    path = write_file(tmp_path / "huge.npz", arrays={k: v for k, v in GOOD_ARRAYS.items()
                                                    if k != "noise"},
                      extra={"noise.npy": header_only((10**12,))})
    tracemalloc.start()
    with pytest.raises(ValueError, match="larger than its metadata allows"):
        load_noise(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_unknown_members_are_never_read(tmp_path):
    path = tmp_path / "bomb.npz"
    write_file(path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("payload.npy", "w", force_zip64=True) as member:
            member.write(header_only((200 * 2**20,), "|u1"))
            zeros = bytes(2**24)
            for _ in range(200 * 2**20 // len(zeros)):
                member.write(zeros)
    del zeros
    assert path.stat().st_size < 2 * 2**20  # 200 MB of zeros, compressed
    tracemalloc.start()
    load_noise(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_transform_checks_the_encoder_is_the_one_the_edit_was_learned_for(tmp_path, images,
                                                                         encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, max_epochs=1, random_state=0)
    path = t.fit(X, y, sensitive_features=a).export_noise(tmp_path / "edit")
    narrow = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 5))
    loaded = load_noise(path, encoder=narrow)
    with pytest.raises(ValueError, match="5 features.*fitted for 64"):
        loaded.transform(X)


# -- format version 2: the optional standardisation and eraser -------------------------------
def read_metadata(path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(str(archive["metadata"]))


def with_parts(t, X, y, a) -> FittedEdit:
    from fairnoise.edits import fit_conditional_eraser, fit_standardization

    edit = t.edit_
    edit = FittedEdit(edit.kind, edit.input_shape, edit.param, noise=edit.noise,
                      mask=edit.mask, fill=edit.fill, standardization=fit_standardization(X))
    t.edit_ = edit
    eraser = fit_conditional_eraser(t.transform(X), a, y)
    return FittedEdit(edit.kind, edit.input_shape, edit.param, noise=edit.noise,
                      mask=edit.mask, fill=edit.fill, standardization=edit.standardization,
                      eraser=eraser)


def test_an_edit_with_a_standardisation_and_an_eraser_round_trips_exactly(tmp_path, images,
                                                                           encoder):
    X, y, a = images
    t = DebiasedNoiseTransformer(encoder=encoder, max_epochs=1, random_state=0)
    t = t.fit(X, y, sensitive_features=a)
    t.edit_ = with_parts(t, X, y, a)
    path = t.export_noise(tmp_path / "edit")
    assert read_metadata(path)["format_version"] == 2
    loaded = load_noise(path, encoder=encoder)
    for name in ("standardization", "eraser"):
        for key, value in getattr(t.edit_, name).arrays().items():
            stored = getattr(loaded.edit_, name).arrays()[key]
            assert stored.dtype == value.dtype and np.array_equal(stored, value), (name, key)
    np.testing.assert_array_equal(loaded.transform(X), t.transform(X))  # standardised first
    Z = t.transform(X)
    np.testing.assert_array_equal(loaded.edit_.apply_embeddings(Z), t.edit_.apply_embeddings(Z))


def test_an_edit_without_parts_is_still_written_in_format_version_1(tmp_path, features):
    X, y, a = features
    path = DebiasedNoiseTransformer(max_epochs=1, random_state=0, erase=False).fit(
        X, y, sensitive_features=a).export_noise(tmp_path / "edit")
    assert read_metadata(path)["format_version"] == 1


def test_a_version_1_file_loads_bit_identically(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"noise": rng.normal(size=4).astype(np.float32),
              "noise_param": rng.uniform(size=4).astype(np.float32),
              "mask": rng.uniform(size=4).astype(np.float32)}
    edit = load_noise(write_file(tmp_path / "v1.npz", arrays=arrays)).edit_
    assert edit.standardization is None and edit.eraser is None
    for name, value in arrays.items():
        assert np.array_equal(edit.arrays()[name], value)
    assert set(edit.arrays()) == set(arrays)


IMAGE_META = {**GOOD_META, "format_version": 2, "input_shape": [2, 2, 2], "n_features_out": 3}
PART_ARRAYS = {"noise": np.zeros((2, 2, 2), np.float32),
               "noise_param": np.zeros((2, 2, 2), np.float32),
               "mask": np.ones((2, 2, 2), np.float32),
               "standardize_mean": np.full(2, 0.5, np.float32),
               "standardize_std": np.full(2, 0.2, np.float32),
               "standardize_eps": np.asarray(1e-6),
               "eraser_mean": np.zeros(3), "eraser_left": np.eye(3)[:, :1],
               "eraser_right": np.eye(3)[:, :1]}


def test_a_well_formed_version_2_file_loads(tmp_path):
    edit = load_noise(write_file(tmp_path / "ok.npz", IMAGE_META, PART_ARRAYS)).edit_
    assert edit.eraser.rank == 1 and edit.standardization.n_channels == 2


@pytest.mark.parametrize("change, reason", [
    (dict(eraser_left=np.eye(3)), r"left .* and right .* must have the same shape"),
    (dict(eraser_left=np.eye(2)[:, :1], eraser_right=np.eye(2)[:, :1],
          eraser_mean=np.zeros(2)), "eraser is for embeddings of 2 features, but "
                                    "n_features_out is 3"),
    (dict(eraser_mean=np.full(3, np.nan)), "eraser's mean holds NaN"),
    (dict(eraser_right=2 * np.eye(3)[:, :1]), "must be the identity"),
    (dict(eraser_right=None), "'eraser_right' array is missing"),
    (dict(eraser_left=np.zeros((3, 3, 3))), "larger than its metadata allows"),
    (dict(standardize_std=np.full(2, -1.0, np.float32)), "std must be non-negative"),
    (dict(standardize_mean=np.zeros(1), standardize_std=np.ones(1)),
     r"1 channel\(s\), but inputs of shape \(2, 2, 2\) have 2"),
    (dict(standardize_eps=np.zeros(2)), "eps must be one number"),
    (dict(standardize_eps=np.asarray(np.inf)), "eps must be a positive number"),
])
def test_malformed_part_arrays_are_rejected(tmp_path, change, reason):
    arrays = {k: v for k, v in {**PART_ARRAYS, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=f"not a valid fairnoise edit file.*{reason}"):
        load_noise(write_file(tmp_path / "bad.npz", IMAGE_META, arrays))


def test_part_arrays_in_a_version_1_file_are_refused(tmp_path):
    meta = {**IMAGE_META, "format_version": 1}
    with pytest.raises(ValueError, match="'standardize_mean' entry needs format_version 2"):
        load_noise(write_file(tmp_path / "bad.npz", meta, PART_ARRAYS))


def test_a_newer_format_version_asks_for_an_upgrade(tmp_path):
    meta = {**IMAGE_META, "format_version": 3}
    with pytest.raises(ValueError, match="format version 3.*upgrade fairnoise"):
        load_noise(write_file(tmp_path / "new.npz", meta, PART_ARRAYS))
