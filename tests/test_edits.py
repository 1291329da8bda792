"""Specification tests for fairnoise.edits: the edit's parameter space, its upsampling,
projection, regulariser and application."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fairnoise.edits import NoiseSpace, apply_numpy, input_mean


def _rand(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input_shape", "resolution", "shared", "full", "param"),
    [
        ((5,), None, True, (5,), (5,)),
        ((5,), (2, 2), False, (5,), (5,)),  # vectors have no grid: resolution is moot
        ((8, 6), None, True, (8, 6), (8, 6)),
        ((8, 6), (2, 3), False, (8, 6), (2, 3)),
        ((3, 8, 6), None, True, (1, 8, 6), (1, 8, 6)),
        ((3, 8, 6), None, False, (3, 8, 6), (3, 8, 6)),
        ((3, 8, 6), (2, 3), True, (1, 8, 6), (1, 2, 3)),
        ((3, 8, 6), (2, 3), False, (3, 8, 6), (3, 2, 3)),
    ],
)
def test_full_and_param_shapes(input_shape, resolution, shared, full, param):
    space = NoiseSpace(input_shape, "additive", resolution, shared)
    assert space.full_shape == full
    assert space.param_shape == param
    assert space.n_params == int(np.prod(param))
    assert space.is_image == (len(input_shape) >= 2)


@pytest.mark.parametrize("edit", ["additive", "masked"])
@pytest.mark.parametrize(
    ("input_shape", "resolution"), [((5,), None), ((8, 6), (2, 3)), ((3, 8, 6), (2, 3))]
)
def test_init_param_is_the_identity_edit(edit, input_shape, resolution):
    space = NoiseSpace(input_shape, edit, resolution, channel_shared=True)
    theta = space.init_param()
    assert theta.shape == space.param_shape and theta.dtype == torch.float32
    x = _rand(4, *input_shape) * 10 - 5
    fill = torch.full(space.full_shape if len(input_shape) != 3 else (3, 1, 1), 0.7)
    assert torch.equal(space.apply(x, theta, fill), x)


# --------------------------------------------------------------------------------------
# Upsampling
# --------------------------------------------------------------------------------------


def test_upsample_keeps_a_constant_constant():
    space = NoiseSpace((3, 10, 7), "additive", (3, 2), channel_shared=False)
    theta = torch.full(space.param_shape, 0.37)
    up = space.upsample(theta)
    assert up.shape == (3, 10, 7)
    torch.testing.assert_close(up, torch.full((3, 10, 7), 0.37), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shared", [True, False])
def test_upsample_is_bilinear_interpolation_without_corner_alignment(shared):
    space = NoiseSpace((3, 10, 7), "additive", (3, 2), channel_shared=shared)
    theta = _rand(*space.param_shape)
    expected = F.interpolate(theta[None], size=(10, 7), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(space.upsample(theta), expected, rtol=0, atol=0)


@pytest.mark.parametrize("shared", [True, False])
def test_nearest_upsampling_gives_each_grid_value_its_block_of_pixels(shared):
    space = NoiseSpace((3, 8, 6), "additive", (2, 3), channel_shared=shared,
                       upsampling="nearest")
    theta = _rand(*space.param_shape)
    up = space.upsample(theta)
    assert up.shape == space.full_shape
    expected = theta.repeat_interleave(4, dim=-2).repeat_interleave(2, dim=-1)
    torch.testing.assert_close(up, expected, rtol=0, atol=0)


def test_a_mask_cell_at_its_bound_replaces_its_block_by_the_fill_and_nothing_else():
    space = NoiseSpace((1, 8, 8), "masked", (4, 4), channel_shared=True, upsampling="nearest")
    theta = torch.zeros(space.param_shape)
    theta[0, 0, 0] = 1.0  # the top-left cell: pixels [0, 2) x [0, 2)
    x, fill = _rand(5, 1, 8, 8), torch.full((1, 8, 8), 0.5)
    out = space.apply(x, theta, fill)
    assert torch.equal(out[..., :2, :2], torch.full((5, 1, 2, 2), 0.5))
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[:2, :2] = False
    assert torch.equal(out[..., outside], x[..., outside])
    # bilinear, the same cell only dims its block and bleeds into the neighbours
    smooth = NoiseSpace((1, 8, 8), "masked", (4, 4), channel_shared=True)
    blended = smooth.apply(x, theta, fill)
    assert not torch.equal(blended[..., outside], x[..., outside])


def test_an_unknown_upsampling_is_refused():
    with pytest.raises(ValueError, match="upsampling must be one of"):
        NoiseSpace((1, 8, 8), "masked", (4, 4), True, "bicubic")


def test_upsample_of_a_two_dimensional_input():
    space = NoiseSpace((9, 4), "additive", (3, 2), channel_shared=True)
    theta = _rand(3, 2)
    expected = F.interpolate(theta[None, None], size=(9, 4), mode="bilinear",
                             align_corners=False)[0, 0]
    torch.testing.assert_close(space.upsample(theta), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("input_shape", "shared"), [((9, 4), True), ((3, 9, 4), True), ((3, 9, 4), False)]
)
def test_upsample_of_a_stack_upsamples_each_member(input_shape, shared):
    space = NoiseSpace(input_shape, "additive", (3, 2), channel_shared=shared)
    stack = _rand(2, 5, *space.param_shape)
    up = space.upsample(stack)
    assert up.shape == (2, 5, *space.full_shape)
    for i in range(2):
        for j in range(5):
            torch.testing.assert_close(up[i, j], space.upsample(stack[i, j]), rtol=0, atol=0)


def test_upsample_at_full_resolution_leaves_the_parameter_as_it_is():
    space = NoiseSpace((3, 8, 6), "additive", None, channel_shared=False)
    theta = _rand(*space.param_shape)
    assert torch.equal(space.upsample(theta), theta)


# --------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------


def test_project_clamps_the_mask_parameter_to_the_unit_interval_in_place():
    space = NoiseSpace((1, 4, 4), "masked", (2, 2), channel_shared=True)
    theta = torch.tensor([[[-0.5, 0.25], [0.75, 1.5]]])
    out = space.project(theta, max_norm=None)
    assert out.data_ptr() == theta.data_ptr()
    torch.testing.assert_close(theta, torch.tensor([[[0.0, 0.25], [0.75, 1.0]]]))


def test_project_puts_additive_noise_on_the_max_norm_ball_at_full_resolution():
    space = NoiseSpace((1, 12, 9), "additive", (3, 2), channel_shared=True)
    theta = _rand(*space.param_shape) * 4 - 2
    before = theta.clone()
    # the low-resolution norm differs from the full-resolution one: the test can tell them apart
    assert abs(float(torch.linalg.vector_norm(space.upsample(theta)))
               - float(torch.linalg.vector_norm(theta))) > 1.0
    out = space.project(theta, max_norm=1.5)
    assert out.data_ptr() == theta.data_ptr()
    norm = float(torch.linalg.vector_norm(space.upsample(theta)))
    assert norm == pytest.approx(1.5, rel=1e-5)
    # a radial projection: same direction as before
    torch.testing.assert_close(theta / theta.norm(), before / before.norm())


def test_project_leaves_additive_noise_inside_the_ball_unchanged():
    space = NoiseSpace((1, 12, 9), "additive", (3, 2), channel_shared=True)
    theta = _rand(*space.param_shape) * 0.1
    before = theta.clone()
    assert float(torch.linalg.vector_norm(space.upsample(theta))) < 5.0
    space.project(theta, max_norm=5.0)
    assert torch.equal(theta, before)


def test_project_without_max_norm_leaves_additive_noise_unchanged():
    space = NoiseSpace((6,), "additive", None, channel_shared=True)
    theta = torch.arange(6.0) * 100
    before = theta.clone()
    assert torch.equal(space.project(theta, max_norm=None), before)


# --------------------------------------------------------------------------------------
# Regulariser
# --------------------------------------------------------------------------------------


def test_masked_penalty_is_the_masked_fraction_at_full_resolution():
    space = NoiseSpace((1, 7, 7), "masked", (3, 3), channel_shared=True)
    theta = torch.zeros(1, 3, 3)
    theta[0, 1, 1] = 1.0
    up = space.upsample(theta)
    assert abs(float(up.mean()) - float(theta.mean())) > 1e-3  # the two means differ
    _, mask = space.full_arrays(theta, np.zeros((1, 1, 1), np.float32))
    assert float(space.penalty(theta)) == pytest.approx(float((1 - mask).mean()), abs=1e-6)


def test_additive_penalty_is_the_euclidean_norm_at_full_resolution():
    space = NoiseSpace((1, 7, 7), "additive", (2, 2), channel_shared=True)
    theta = torch.tensor([[[1.0, -2.0], [0.5, 0.0]]])
    noise, _ = space.full_arrays(theta, np.zeros((1, 1, 1), np.float32))
    assert float(space.penalty(theta)) == pytest.approx(float(np.linalg.norm(noise)), rel=1e-6)
    assert float(space.penalty(theta)) != pytest.approx(float(theta.norm()), rel=1e-2)


# --------------------------------------------------------------------------------------
# Applying the edit
# --------------------------------------------------------------------------------------


def test_masked_edit_blends_input_and_fill_by_the_mask():
    space = NoiseSpace((3, 6, 5), "masked", (2, 2), channel_shared=True)
    theta = _rand(*space.param_shape, seed=1)
    x = _rand(4, 3, 6, 5, seed=2)
    fill = torch.tensor([0.1, 0.5, 0.9]).reshape(3, 1, 1)
    m = 1 - space.upsample(theta)  # 1×H×W, shared by the channels
    expected = m * x + (1 - m) * fill
    torch.testing.assert_close(space.apply(x, theta, fill), expected, rtol=0, atol=1e-6)


def test_additive_edit_adds_the_noise_to_every_image_and_channel():
    space = NoiseSpace((3, 6, 5), "additive", (2, 2), channel_shared=True)
    theta = _rand(*space.param_shape, seed=1) - 0.5
    x = _rand(4, 3, 6, 5, seed=2)
    eps = space.upsample(theta)[0]
    out = space.apply(x, theta, torch.zeros(3, 1, 1))
    for i in range(4):
        for c in range(3):
            torch.testing.assert_close(out[i, c], x[i, c] + eps, rtol=0, atol=0)


def test_unshared_additive_edit_gives_each_channel_its_own_noise():
    space = NoiseSpace((2, 4, 4), "additive", None, channel_shared=False)
    theta = torch.stack([torch.ones(4, 4), -torch.ones(4, 4)])
    out = space.apply(torch.zeros(3, 2, 4, 4), theta, torch.zeros(2, 1, 1))
    assert (out[:, 0] == 1).all() and (out[:, 1] == -1).all()


def test_masked_edit_of_feature_vectors_fills_per_feature():
    space = NoiseSpace((3,), "masked", None, channel_shared=True)
    theta = torch.tensor([0.0, 1.0, 0.5])
    x = torch.tensor([[2.0, 2.0, 2.0], [4.0, 4.0, 4.0]])
    fill = torch.tensor([10.0, 20.0, 30.0])
    out = space.apply(x, theta, fill)
    torch.testing.assert_close(out, torch.tensor([[2.0, 20.0, 16.0], [4.0, 20.0, 17.0]]))


@pytest.mark.parametrize("edit", ["additive", "masked"])
@pytest.mark.parametrize("shared", [True, False])
def test_apply_numpy_agrees_with_the_torch_edit(edit, shared):
    space = NoiseSpace((3, 9, 7), edit, (3, 2), channel_shared=shared)
    theta = _rand(*space.param_shape, seed=3)
    x = _rand(5, 3, 9, 7, seed=4)
    fill = np.array([0.2, 0.4, 0.6], np.float32).reshape(3, 1, 1)
    noise, mask = space.full_arrays(theta, fill)
    assert (mask is None) == (edit == "additive")
    assert noise.dtype == np.float32 and (mask is None or mask.dtype == np.float32)
    expected = space.apply(x, theta, torch.from_numpy(fill)).numpy()
    got = apply_numpy(x.numpy(), noise, mask)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_full_arrays_of_the_masked_edit_are_the_fill_and_the_mask():
    space = NoiseSpace((3, 4, 4), "masked", (2, 2), channel_shared=True)
    theta = _rand(*space.param_shape, seed=5)
    fill = np.array([0.2, 0.4, 0.6], np.float32).reshape(3, 1, 1)
    noise, mask = space.full_arrays(theta, fill)
    assert noise.shape == (3, 4, 4) and mask.shape == (1, 4, 4)
    np.testing.assert_array_equal(noise, np.broadcast_to(fill, (3, 4, 4)))
    np.testing.assert_allclose(mask, 1 - space.upsample(theta).numpy(), atol=1e-7)


@pytest.mark.parametrize(("mask", "expected"), [(None, 1.5), (np.zeros(3, np.float32), 0.5)])
def test_apply_numpy_keeps_the_input_dtype(mask, expected):
    X = np.ones((2, 3), np.float64)
    out = apply_numpy(X, np.full(3, 0.5, np.float32), mask)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.full((2, 3), expected))


# --------------------------------------------------------------------------------------
# The masked edit's fill
# --------------------------------------------------------------------------------------


def test_input_mean_of_colour_images_is_per_channel():
    mean_image = np.stack([np.full((4, 5), 0.1), np.arange(20.0).reshape(4, 5),
                           np.full((4, 5), 0.9)])
    fill = input_mean(mean_image.reshape(-1), (3, 4, 5))
    assert fill.shape == (3, 1, 1) and fill.dtype == np.float32
    np.testing.assert_allclose(fill.ravel(), [0.1, 9.5, 0.9], rtol=1e-6)


def test_input_mean_of_grey_images_is_one_value():
    fill = input_mean(np.arange(12.0), (3, 4))
    assert fill.shape == (1, 1) and fill.dtype == np.float32
    assert fill.item() == pytest.approx(5.5)


def test_input_mean_of_feature_vectors_is_per_feature():
    fill = input_mean(np.array([1.0, 2.0, 3.0]), (3,))
    assert fill.dtype == np.float32
    np.testing.assert_array_equal(fill, [1.0, 2.0, 3.0])
