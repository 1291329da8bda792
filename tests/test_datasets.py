"""Specification tests for fairnoise.datasets."""

import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from fairnoise.datasets import (
    LazyImageArray,
    load_chexpert_style,
    load_image_csv,
    make_spurious_images,
)

# --------------------------------------------------------------------------------------
# make_spurious_images
# --------------------------------------------------------------------------------------


def test_generator_returns_documented_keys_shapes_and_dtypes():
    data = make_spurious_images(50, image_size=24, n_channels=3, random_state=0)
    assert set(data) == {"images", "oracle_images", "y", "sensitive_features", "shortcut_mask",
                         "DESCR"}
    assert data.images.shape == data.oracle_images.shape == (50, 3, 24, 24)
    assert data.images.dtype == data.oracle_images.dtype == np.float32
    assert data.y.shape == data.sensitive_features.shape == (50,)
    assert data.y.dtype == data.sensitive_features.dtype == np.int64
    assert data.shortcut_mask.shape == (50, 24, 24) and data.shortcut_mask.dtype == bool
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    np.testing.assert_array_equal(data.images[:, 0], data.images[:, 2])  # grey as RGB
    assert "'marker'" in data.DESCR


def test_generator_is_deterministic_for_fixed_random_state():
    first = make_spurious_images(40, random_state=3)
    second = make_spurious_images(40, random_state=3)
    for key in ("images", "oracle_images", "y", "sensitive_features", "shortcut_mask"):
        np.testing.assert_array_equal(first[key], second[key])
    other = make_spurious_images(40, random_state=4)
    assert not np.array_equal(first.images, other.images)


def test_marker_oracle_differs_only_inside_the_shortcut_region():
    data = make_spurious_images(60, marker_jitter=2, random_state=0)
    outside = ~data.shortcut_mask[:, None]
    np.testing.assert_array_equal(data.images[outside], data.oracle_images[outside])
    inside = data.shortcut_mask[:, None]
    assert (data.images[inside] > data.oracle_images[inside]).mean() > 0.95
    side = max(2, 32 // 8)
    assert (data.shortcut_mask.sum(axis=(1, 2)) == side * side).all()


def test_marker_corner_encodes_the_group_and_jitter_moves_it():
    data = make_spurious_images(200, n_groups=3, marker_jitter=2, random_state=1)
    rows = data.shortcut_mask.any(axis=2).argmax(axis=1)  # first marked row
    cols = data.shortcut_mask.any(axis=1).argmax(axis=1)  # first marked column
    half = 16
    corner = 2 * (rows >= half) + (cols >= half)
    np.testing.assert_array_equal(corner, data.sensitive_features)  # groups 0, 1, 2 -> TL, TR, BL
    first = data.sensitive_features == 0
    assert len(set(zip(rows[first], cols[first], strict=True))) > 4


def test_more_than_four_groups_share_corners_at_different_brightness():
    data = make_spurious_images(
        300, n_groups=6, shortcut_strength=0.4, noise_std=0.0, random_state=2
    )
    added = (data.images - data.oracle_images)[:, 0][data.shortcut_mask]
    per_image = added.reshape(300, -1).max(axis=1)
    unclipped = data.oracle_images[:, 0].max(axis=(1, 2)) < 0.5
    for group, level in [(0, 0.2), (4, 0.4)]:
        chosen = (data.sensitive_features == group) & unclipped
        np.testing.assert_allclose(per_image[chosen], level, atol=1e-6)


def test_contrast_shortcut_touches_every_pixel_by_group_gain():
    data = make_spurious_images(100, shortcut="contrast", shortcut_strength=0.4, random_state=0)
    assert data.shortcut_mask.all()
    ratio = data.images.mean(axis=(1, 2, 3)) / data.oracle_images.mean(axis=(1, 2, 3))
    assert ratio[data.sensitive_features == 0].max() < 1 < ratio[data.sensitive_features == 1].min()


def test_clean_layer_does_not_depend_on_the_shortcut_settings():
    kwargs = {"n_samples": 30, "random_state": 5}
    marker = make_spurious_images(shortcut="marker", marker_size=3, marker_jitter=3, **kwargs)
    contrast = make_spurious_images(shortcut="contrast", shortcut_strength=0.9, **kwargs)
    np.testing.assert_array_equal(marker.oracle_images, contrast.oracle_images)
    np.testing.assert_array_equal(marker.y, contrast.y)


@pytest.mark.parametrize("correlation", [0.8, 0.0, -0.6])
def test_label_prevalence_per_group_follows_correlation(correlation):
    data = make_spurious_images(4000, image_size=16, correlation=correlation, random_state=0)
    for group, tilt in [(0, -1.0), (1, 1.0)]:
        prevalence = data.y[data.sensitive_features == group].mean()
        assert prevalence == pytest.approx(0.5 * (1 + correlation * tilt), abs=0.04)


def test_three_groups_are_uniform_with_graded_prevalence():
    data = make_spurious_images(3000, image_size=16, n_groups=3, correlation=1.0, random_state=0)
    assert set(np.unique(data.sensitive_features)) == {0, 1, 2}
    assert np.bincount(data.sensitive_features).min() > 900
    assert data.y[data.sensitive_features == 0].mean() == 0.0
    assert data.y[data.sensitive_features == 1].mean() == pytest.approx(0.5, abs=0.05)
    assert data.y[data.sensitive_features == 2].mean() == 1.0


def test_group_is_linearly_decodable_from_images_but_not_from_oracle():
    data = make_spurious_images(300, image_size=16, correlation=0.0, random_state=0)
    probe = LogisticRegression(C=0.1, max_iter=2000)
    shortcut = cross_val_score(
        probe, data.images.reshape(300, -1), data.sensitive_features, cv=3, scoring="roc_auc"
    ).mean()
    oracle = cross_val_score(
        probe, data.oracle_images.reshape(300, -1), data.sensitive_features, cv=3, scoring="roc_auc"
    ).mean()
    assert shortcut > 0.95
    assert abs(oracle - 0.5) < 0.12


def test_disease_is_learnable_from_oracle_images():
    data = make_spurious_images(400, image_size=16, correlation=0.0, random_state=0)
    auc = cross_val_score(
        LogisticRegression(C=0.1, max_iter=2000),
        data.oracle_images.reshape(400, -1),
        data.y,
        cv=3,
        scoring="roc_auc",
    ).mean()
    assert auc > 0.75


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shortcut": "stripes"}, "shortcut must be one of"),
        ({"correlation": 1.5}, r"correlation must be a number in \[-1.0, 1.0\]"),
        ({"n_groups": 1}, "n_groups must be an integer >= 2"),
        ({"n_channels": 2}, "n_channels must be 1 or 3"),
        ({"image_size": 8}, "image_size must be an integer >= 16"),
        ({"marker_size": 10, "marker_jitter": 6}, "must fit in half the image"),
    ],
)
def test_generator_rejects_invalid_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_spurious_images(10, **kwargs)


# --------------------------------------------------------------------------------------
# LazyImageArray
# --------------------------------------------------------------------------------------


def _write_images(folder, n=4, size=(10, 12), suffix=".png"):
    paths = []
    for i in range(n):
        path = folder / f"img{i}{suffix}"
        Image.fromarray(np.full(size, 50 * i, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_lazy_array_indexes_like_numpy(tmp_path):
    images = LazyImageArray(_write_images(tmp_path), image_size=(6, 8))
    assert images.shape == (4, 1, 6, 8) and len(images) == 4 and images.ndim == 4
    assert images[0].shape == (1, 6, 8) and images[0].dtype == np.float32
    levels = np.array([50 * i / 255 for i in range(4)], dtype=np.float32)
    np.testing.assert_allclose(images[-1].mean(), levels[-1], atol=1e-6)
    np.testing.assert_allclose(images[1:3].mean(axis=(1, 2, 3)), levels[1:3], atol=1e-6)
    np.testing.assert_allclose(images[[3, 0]].mean(axis=(1, 2, 3)), levels[[3, 0]], atol=1e-6)
    mask = np.array([True, False, True, False])
    assert images[mask].shape == (2, 1, 6, 8)
    np.testing.assert_array_equal(np.asarray(images), images.to_numpy())
    assert [b.shape[0] for b in images.iter_batches(3)] == [3, 1]


def test_lazy_array_reads_rgb_and_pickles(tmp_path):
    path = tmp_path / "rgb.jpg"
    Image.fromarray(np.dstack([np.full((8, 8), v, np.uint8) for v in (255, 0, 0)])).save(path)
    images = pickle.loads(pickle.dumps(LazyImageArray([path], image_size=4, n_channels=3)))
    red, green, _ = images[0].mean(axis=(1, 2))
    assert red > 0.9 and green < 0.1


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(path)
    value = LazyImageArray([path], image_size=4)[0]
    np.testing.assert_allclose(value, 30000 / 65535, atol=1e-4)


def test_missing_image_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"1 image file\(s\) not found: .*nowhere\.png"):
        LazyImageArray([tmp_path / "nowhere.png"])


def test_lazy_array_rejects_bad_settings(tmp_path):
    paths = _write_images(tmp_path, n=1)
    with pytest.raises(ValueError, match="n_channels must be 1 or 3"):
        LazyImageArray(paths, n_channels=4)
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        LazyImageArray(paths, image_size=(4, 0))


# --------------------------------------------------------------------------------------
# CSV loaders
# --------------------------------------------------------------------------------------


def _chexpert_folder(tmp_path):
    study = tmp_path / "CheXpert-v1.0-small" / "train"
    study.mkdir(parents=True)
    _write_images(study, n=6, suffix=".jpg")
    rows = [
        ("img0.jpg", "Female", 70, "Frontal", 1.0),
        ("img1.jpg", "Male", 40, "Frontal", -1.0),
        ("img2.jpg", "Male", 65, "Lateral", None),
        ("img3.jpg", "Female", 59, "Frontal", 0.0),
        ("img4.jpg", "Unknown", 30, "Frontal", 1.0),
        ("img5.jpg", "Female", 60, "Frontal", -1.0),
    ]
    frame = pd.DataFrame(rows, columns=["Path", "Sex", "Age", "Frontal/Lateral", "Edema"])
    frame["Path"] = "CheXpert-v1.0-small/train/" + frame["Path"]
    csv = tmp_path / "CheXpert-v1.0-small" / "train.csv"
    frame.to_csv(csv, index=False)
    return csv


@pytest.mark.parametrize(
    ("uncertain", "expected_y", "expected_rows"),
    [
        ("zeros", [1, 0, 0, 0, 0], [0, 1, 2, 3, 5]),
        ("ones", [1, 1, 0, 0, 1], [0, 1, 2, 3, 5]),
        ("ignore", [1, 0, 0], [0, 2, 3]),
    ],
)
def test_chexpert_uncertain_policies(tmp_path, uncertain, expected_y, expected_rows):
    csv = _chexpert_folder(tmp_path)
    data = load_chexpert_style(csv, tmp_path, finding="Edema", uncertain=uncertain, image_size=8)
    assert data.y.tolist() == expected_y
    assert data.frame["Path"].str[-8:-4].tolist() == [f"img{i}" for i in expected_rows]
    assert "Unknown" not in set(data.sensitive_features)
    assert data.images.shape == (len(expected_rows), 1, 8, 8)
    np.testing.assert_allclose(data.images[1].mean(), 50 * expected_rows[1] / 255, atol=0.01)


def test_chexpert_age_groups_and_frontal_filter(tmp_path):
    csv = _chexpert_folder(tmp_path)
    data = load_chexpert_style(
        csv, tmp_path, finding="Edema", sensitive_column="Age", age_bins=(50, 60),
        frontal_only=True,
    )
    assert data.sensitive_features.tolist() == [">=60", "<50", "[50, 60)", "<50", ">=60"]
    assert (data.frame["Frontal/Lateral"] == "Frontal").all()


def test_chexpert_paths_default_to_the_csv_folder(tmp_path):
    csv = _chexpert_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="CheXpert-v1.0-small/CheXpert-v1.0-small"):
        load_chexpert_style(csv, finding="Edema")


def test_chexpert_missing_column_is_named(tmp_path):
    csv = _chexpert_folder(tmp_path)
    with pytest.raises(ValueError, match=r"Column\(s\) \['Cardiomegaly'\] not found"):
        load_chexpert_style(csv, tmp_path, finding="Cardiomegaly")


def test_chexpert_rejects_unknown_label_values_and_policies(tmp_path):
    csv = _chexpert_folder(tmp_path)
    frame = pd.read_csv(csv)
    frame.loc[0, "Edema"] = 2
    frame.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"Column 'Edema' must hold 1, 0, -1 or blank"):
        load_chexpert_style(csv, tmp_path, finding="Edema")
    with pytest.raises(ValueError, match="uncertain must be 'zeros', 'ones' or 'ignore'"):
        load_chexpert_style(csv, tmp_path, finding="Edema", uncertain="drop")


def test_generic_csv_loader_reads_paths_labels_and_groups(tmp_path):
    paths = _write_images(tmp_path, n=3)
    frame = pd.DataFrame(
        {"file": [p.name for p in paths], "dx": [0, 1, 1], "site": ["A", "B", "A"]}
    )
    frame.to_csv(tmp_path / "index.csv", index=False)
    data = load_image_csv(
        tmp_path / "index.csv",
        path_column="file",
        label_column="dx",
        sensitive_column="site",
        image_size=5,
        n_channels=3,
    )
    assert data.images.shape == (3, 3, 5, 5)
    assert data.y.tolist() == [0, 1, 1] and data.sensitive_features.tolist() == ["A", "B", "A"]
    pd.testing.assert_frame_equal(data.frame, frame)


# -- the old names of the groups (fairnoise 0.1), deprecated ------------------------------------
def test_the_bunch_still_reads_sensitive_with_a_future_warning():
    data = make_spurious_images(20, random_state=0)
    with pytest.warns(FutureWarning, match="read 'sensitive_features' instead") as record:
        old = data.sensitive
    assert record[0].filename == __file__  # the warning points at the caller's line
    with pytest.warns(FutureWarning):
        np.testing.assert_array_equal(data["sensitive"], data.sensitive_features)
    assert old is data.sensitive_features
    assert "sensitive" not in data  # not a key: set(data) lists the new name only
    with pytest.raises(AttributeError):
        data.no_such_key  # noqa: B018


def test_the_bunch_with_the_old_key_pickles(tmp_path):
    data = pickle.loads(pickle.dumps(make_spurious_images(10, random_state=0)))
    with pytest.warns(FutureWarning):
        assert data.sensitive is data.sensitive_features


def test_loaders_accept_their_old_group_parameters_with_a_future_warning(tmp_path):
    csv = _chexpert_folder(tmp_path)
    with pytest.warns(FutureWarning, match=r"load_chexpert_style\(sensitive=...\) is "
                      "deprecated.*use sensitive_column="):
        old = load_chexpert_style(csv, tmp_path, finding="Edema", sensitive="Age")
    new = load_chexpert_style(csv, tmp_path, finding="Edema", sensitive_column="Age")
    assert old.sensitive_features.tolist() == new.sensitive_features.tolist()
    with pytest.raises(TypeError, match="got both sensitive_column= and its deprecated"):
        load_chexpert_style(csv, tmp_path, finding="Edema", sensitive="Age",
                            sensitive_column="Age")

    paths = _write_images(tmp_path, n=2)
    pd.DataFrame({"path": [p.name for p in paths], "label": [0, 1], "site": ["A", "B"]}
                 ).to_csv(tmp_path / "index.csv", index=False)
    with pytest.warns(FutureWarning, match=r"load_image_csv\(group_column=...\)"):
        data = load_image_csv(tmp_path / "index.csv", group_column="site", image_size=4)
    assert data.sensitive_features.tolist() == ["A", "B"]


def test_generic_csv_loader_validates_columns_and_files(tmp_path):
    _write_images(tmp_path, n=1)
    pd.DataFrame({"path": ["img0.png"], "label": [1]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ValueError, match=r"Column\(s\) \['group'\] not found"):
        load_image_csv(tmp_path / "a.csv")
    pd.DataFrame({"path": ["img0.png", "img0.png"], "label": [1, None], "group": [0, 1]}).to_csv(
        tmp_path / "b.csv", index=False
    )
    with pytest.raises(ValueError, match="Column 'label' has 1 missing value"):
        load_image_csv(tmp_path / "b.csv")
    pd.DataFrame({"path": ["gone.png"], "label": [1], "group": [0]}).to_csv(
        tmp_path / "c.csv", index=False
    )
    with pytest.raises(FileNotFoundError, match="gone.png"):
        load_image_csv(tmp_path / "c.csv")


# --------------------------------------------------------------------------------------
# CSV loaders: malformed tables are refused with the column, row and value named
# --------------------------------------------------------------------------------------


def _write_csv(folder, text, name="table.csv"):
    path = folder / name
    path.write_text(text)
    return path


_CHEXPERT_HEADER = "Path,Sex,Age,Edema\n"


@pytest.mark.parametrize(("age", "shown"), [("seventy", "'seventy'"), ("inf", "inf")])
def test_chexpert_age_that_is_not_a_finite_number_is_named(tmp_path, age, shown):
    _write_images(tmp_path, n=2, suffix=".jpg")
    csv = _write_csv(tmp_path, _CHEXPERT_HEADER + f"img0.jpg,Male,40,1\nimg1.jpg,Female,{age},0\n")
    with pytest.raises(ValueError, match=rf"Column 'Age' must hold finite numbers \(years\) or "
                       rf"be blank; got {shown} in row 1 \(rows count from 0 after the header\)"):
        load_chexpert_style(csv, finding="Edema", sensitive_column="Age")


def test_chexpert_text_age_is_no_error_when_age_is_not_used(tmp_path):
    _write_images(tmp_path, n=1, suffix=".jpg")
    csv = _write_csv(tmp_path, _CHEXPERT_HEADER + "img0.jpg,Male,unknown,1\n")
    assert load_chexpert_style(csv, finding="Edema").sensitive_features.tolist() == ["Male"]


def test_chexpert_blank_path_is_named(tmp_path):
    _write_images(tmp_path, n=3, suffix=".jpg")
    csv = _write_csv(tmp_path, _CHEXPERT_HEADER + "img0.jpg,Male,40,1\n,Female,70,0\n"
                     "  ,Male,50,0\nimg2.jpg,Male,60,1\n")
    with pytest.raises(ValueError, match=r"Column 'Path' is blank in 2 row\(s\): rows 1, 2 "):
        load_chexpert_style(csv, finding="Edema")


def test_chexpert_blank_path_of_a_dropped_row_is_no_error(tmp_path):
    _write_images(tmp_path, n=1, suffix=".jpg")
    csv = _write_csv(tmp_path, _CHEXPERT_HEADER + "img0.jpg,Male,40,1\n,Unknown,70,0\n")
    assert len(load_chexpert_style(csv, finding="Edema").images) == 1


def test_chexpert_label_text_is_named_with_its_row(tmp_path):
    _write_images(tmp_path, n=3, suffix=".jpg")
    csv = _write_csv(tmp_path, _CHEXPERT_HEADER + "img0.jpg,Male,40,1\nimg1.jpg,Male,40,0\n"
                     "img2.jpg,Female,70,yes\n")
    with pytest.raises(ValueError, match=r"Column 'Edema' must hold 1, 0, -1 or blank; "
                       r"got 'yes' in row 2 "):
        load_chexpert_style(csv, finding="Edema")


@pytest.mark.parametrize("loader", [load_chexpert_style, load_image_csv])
def test_empty_csv_is_named(tmp_path, loader):
    csv = _write_csv(tmp_path, "")
    with pytest.raises(ValueError, match=r"table\.csv is empty: expected a header row with "
                       r"the column\(s\) \["):
        loader(csv)


@pytest.mark.parametrize(
    ("loader", "header"),
    [(load_chexpert_style, "Path,Sex,Pleural Effusion\n"), (load_image_csv, "path,label,group\n")],
)
def test_csv_with_a_header_and_no_rows_is_refused(tmp_path, loader, header):
    csv = _write_csv(tmp_path, header)
    with pytest.raises(ValueError, match=r"table\.csv has a header but no rows"):
        loader(csv)


def test_chexpert_with_every_row_dropped_says_why(tmp_path):
    _write_images(tmp_path, n=2, suffix=".jpg")
    csv = _write_csv(tmp_path, "Path,Sex,Frontal/Lateral,Edema\nimg0.jpg,Unknown,Frontal,1\n"
                     "img1.jpg,Male,frontal,0\n")
    with pytest.raises(ValueError, match=r"No row of .*table\.csv is left \(of 2\): rows "
                       r"with a blank or 'Unknown' 'Sex' and rows whose 'Frontal/Lateral' is "
                       r"not 'Frontal' were dropped"):
        load_chexpert_style(csv, finding="Edema", frontal_only=True)


@pytest.mark.parametrize(
    ("loader", "text"),
    [(load_chexpert_style, "Path,Sex,Pleural Effusion\nimg0.png,Male,1\n"),
     (load_image_csv, "path,label,group\nimg0.png,1,A\n")],
)
def test_image_root_that_is_not_a_directory_is_named(tmp_path, loader, text):
    _write_images(tmp_path, n=1)
    csv = _write_csv(tmp_path, text)
    with pytest.raises(FileNotFoundError, match=r"image_root .*nowhere' is not an existing "
                       r"directory"):
        loader(csv, image_root=tmp_path / "nowhere")


def test_generic_csv_blank_path_is_named(tmp_path):
    _write_images(tmp_path, n=1)
    csv = _write_csv(tmp_path, "file,label,group\nimg0.png,1,A\n,0,B\n")
    with pytest.raises(ValueError, match=r"Column 'file' is blank in 1 row\(s\): row 1 "):
        load_image_csv(csv, path_column="file")


def test_generic_csv_missing_groups_are_named_with_their_rows(tmp_path):
    _write_images(tmp_path, n=1)
    csv = _write_csv(tmp_path, "path,label,group\nimg0.png,1,\nimg0.png,0,A\nimg0.png,0, \n")
    with pytest.raises(ValueError, match=r"Column 'group' has 2 missing value\(s\): rows 0, 2 "):
        load_image_csv(csv)


def test_generic_csv_numeric_file_names_keep_their_leading_zeros(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "007", format="PNG")
    csv = _write_csv(tmp_path, "path,label,group\n007,1,A\n")
    assert load_image_csv(csv, image_size=4).images.paths == [str(tmp_path / "007")]

# make_spurious_images: shortcut kinds (text, intensity, texture) and pinned images
# --------------------------------------------------------------------------------------

_NEW_KINDS = ("text", "intensity", "texture")


def _pixel_fingerprint(data):
    """Float sums that move if any pixel, label, group or mask of a generated set moves."""
    images = data.images.astype(np.float64)
    weights = np.arange(images.size).reshape(images.shape) % 97
    cols = np.arange(data.shortcut_mask.shape[-1])
    return (images.sum(), (images * weights).sum(), data.oracle_images.astype(np.float64).sum(),
            int(data.shortcut_mask.sum()), int((data.shortcut_mask * cols).sum()),
            int(data.y.sum()), int((data.sensitive_features * np.arange(len(data.y))).sum()))


@pytest.mark.parametrize(
    ("shortcut", "expected"),
    [
        ("marker", (22659.17607355077, 1089025.942054051, 22147.176073129813, 1024, 11744,
                    29, 1549)),
        ("contrast", (21044.580077791703, 1011251.6759564725, 22147.176073129813, 65536,
                      1015808, 29, 1549)),
    ],
)
def test_marker_and_contrast_images_are_pinned_for_a_fixed_seed(shortcut, expected):
    # pinned before the text, intensity and texture kinds were added
    data = make_spurious_images(64, shortcut=shortcut, n_groups=3, marker_jitter=2,
                                random_state=7)
    got = _pixel_fingerprint(data)
    assert got[:3] == pytest.approx(expected[:3], rel=1e-9)
    assert got[3:] == expected[3:]


@pytest.mark.parametrize("n_groups", [2, 3])
@pytest.mark.parametrize("shortcut", _NEW_KINDS)
def test_new_kinds_differ_from_oracle_only_inside_the_shortcut_mask(shortcut, n_groups):
    data = make_spurious_images(80, shortcut=shortcut, n_groups=n_groups, random_state=0)
    outside = np.broadcast_to(~data.shortcut_mask[:, None], data.images.shape)
    np.testing.assert_array_equal(data.images[outside], data.oracle_images[outside])
    changed = (data.images != data.oracle_images).any(axis=1)
    assert changed.any()
    assert (changed <= data.shortcut_mask).all()
    if shortcut == "text":
        assert 0 < data.shortcut_mask.mean() < 0.1  # localized
    else:
        assert data.shortcut_mask.all()  # non-local: every pixel


@pytest.mark.parametrize("shortcut", _NEW_KINDS)
def test_new_kinds_are_deterministic_and_keep_the_clean_layer(shortcut):
    kwargs = {"n_samples": 40, "n_groups": 3, "random_state": 5}
    first = make_spurious_images(shortcut=shortcut, **kwargs)
    second = make_spurious_images(shortcut=shortcut, **kwargs)
    for key in ("images", "oracle_images", "y", "sensitive_features", "shortcut_mask"):
        np.testing.assert_array_equal(first[key], second[key])
    marker = make_spurious_images(shortcut="marker", **kwargs)
    np.testing.assert_array_equal(first.oracle_images, marker.oracle_images)
    np.testing.assert_array_equal(first.y, marker.y)
    other = make_spurious_images(shortcut=shortcut, **{**kwargs, "random_state": 6})
    assert not np.array_equal(first.images, other.images)


@pytest.mark.parametrize("shortcut", _NEW_KINDS)
def test_new_kinds_at_zero_strength_are_the_oracle(shortcut):
    data = make_spurious_images(30, shortcut=shortcut, shortcut_strength=0.0, random_state=0)
    np.testing.assert_array_equal(data.images, data.oracle_images)


def test_text_stripe_is_graded_by_group_and_jitters_near_the_bottom_edge():
    data = make_spurious_images(300, shortcut="text", n_groups=3, shortcut_strength=0.6,
                                noise_std=0.0, random_state=1)
    lit = data.shortcut_mask.sum(axis=(1, 2))
    assert (lit[data.sensitive_features == 0] == 0).all()  # group 0 carries no text
    assert (lit[data.sensitive_features > 0] > 0).all()
    rows = np.flatnonzero(data.shortcut_mask.any(axis=(0, 2)))
    assert rows.min() >= 32 - 1 - 5 - 2 and rows.max() <= 30  # a stripe above the edge
    added = (data.images - data.oracle_images)[:, 0]
    unclipped = data.oracle_images[:, 0].max(axis=(1, 2)) < 0.4
    for group, level in [(1, 0.3), (2, 0.6)]:
        chosen = (data.sensitive_features == group) & unclipped
        np.testing.assert_allclose(added[chosen][data.shortcut_mask[chosen]], level, atol=1e-6)
    # the characters and their position change from image to image
    marked = data.shortcut_mask[data.sensitive_features == 2]
    assert len({m.tobytes() for m in marked}) == len(marked)
    first_row = marked.any(axis=2).argmax(axis=1)
    first_col = marked.any(axis=1).argmax(axis=1)
    assert len(set(first_row)) > 1 and len(set(first_col)) > 1


def test_intensity_offset_is_graded_by_group():
    data = make_spurious_images(300, shortcut="intensity", n_groups=3, shortcut_strength=0.5,
                                random_state=0)
    shift = (data.images - data.oracle_images)[:, 0]
    unclipped = (data.oracle_images[:, 0] > 0.15) & (data.oracle_images[:, 0] < 0.85)
    for group, offset in [(0, -0.1), (1, 0.0), (2, 0.1)]:
        chosen = data.sensitive_features == group
        np.testing.assert_allclose(shift[chosen][unclipped[chosen]], offset, atol=1e-6)


def test_texture_site_is_blurrier_and_noisier_by_group():
    data = make_spurious_images(300, shortcut="texture", n_groups=3, shortcut_strength=0.5,
                                random_state=0)
    sharp = data.sensitive_features == 0
    np.testing.assert_array_equal(data.images[sharp], data.oracle_images[sharp])
    residual = (data.images - data.oracle_images).std(axis=(1, 2, 3))
    spread = [residual[data.sensitive_features == g].mean() for g in range(3)]
    assert spread[0] == 0 < spread[1] < spread[2]

    # the blur removes the clean layer's fine detail: the part of the oracle's high-pass
    # that survives in the image (the extra noise is independent of it) shrinks by group
    def high_pass(x):
        return x[..., 1:-1, 1:-1] - 0.25 * (x[..., :-2, 1:-1] + x[..., 2:, 1:-1]
                                            + x[..., 1:-1, :-2] + x[..., 1:-1, 2:])

    hp_image, hp_oracle = high_pass(data.images), high_pass(data.oracle_images)
    kept = (hp_image * hp_oracle).sum(axis=(1, 2, 3)) / (hp_oracle**2).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(kept[sharp], 1.0)
    kept_by_group = [kept[data.sensitive_features == g].mean() for g in (1, 2)]
    assert 0.5 > kept_by_group[0] > kept_by_group[1]


def test_unknown_shortcut_error_names_every_kind():
    with pytest.raises(ValueError, match="'marker', 'contrast', 'text', 'intensity', 'texture'"):
        make_spurious_images(10, shortcut="site")
