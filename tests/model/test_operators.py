"""Time operators: dt = 0 is the input time, continuity in dt, composition, and every registered
operator through the encoder and renderer (training steps: tests/training/test_module.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.evaluation.equivariance import _split_offsets, draw_pairs, temporal_equivariance
from temporal_nsr.evaluation.estimator import ParameterEstimator
from temporal_nsr.evaluation.protocol import object_names
from temporal_nsr.model.decoder import Decoder
from temporal_nsr.model.encoder import Encoder
from temporal_nsr.model.operators import TIME_OPERATORS, TimeOperator, build_operator
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.model.rotation import LatentRotation, rotate_volume, source_to_target

SIZES = dict(
    image_size=16, latent_channels=4, channels_2d=[8, 8], strides_2d=[1, 2],
    channels_3d=[8], strides_3d=[1], lift_strides=[1],
)  # fmt: skip
OPERATORS = sorted(TIME_OPERATORS)


def moving_operator(name: str, channels: int = 4, max_offset: int = 3) -> TimeOperator:
    """A registered operator with every parameter nudged: operators may start as the identity
    (the warp's last layer is zero) and these tests need one that moves."""
    torch.manual_seed(0)
    operator = build_operator(name, channels, max_offset)
    with torch.no_grad():
        for parameter in operator.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return operator


def operator_renderer(name: str, max_offset: int = 2, image_size: int = 16) -> SceneRenderer:
    torch.manual_seed(0)
    sizes = {**SIZES, "image_size": image_size}
    encoder = Encoder(
        **sizes, max_offset=max_offset, inverse_projection=[64], lift=name, lift_width=8
    )
    return SceneRenderer(encoder, LatentRotation(), Decoder(**sizes, projection=[16]))


@pytest.mark.parametrize("name", OPERATORS)
def test_dt_zero_is_the_scene_and_dt_matters(name: str) -> None:
    operator = moving_operator(name)
    scene = torch.randn(2, 4, 6, 6, 6)
    assert torch.equal(operator(scene, torch.zeros(2)), scene)
    assert torch.equal(operator(scene, torch.zeros(2, dtype=torch.long)), scene)
    assert not torch.allclose(operator(scene, torch.full((2,), 2.0)), scene, atol=1e-3)


@pytest.mark.parametrize("name", OPERATORS)
def test_operator_is_continuous_and_defined_beyond_the_training_offsets(name: str) -> None:
    operator = moving_operator(name)
    scene = torch.randn(1, 4, 6, 6, 6)
    base = operator(scene, torch.tensor([0.7]))
    gaps = [(operator(scene, torch.tensor([0.7 + e])) - base).abs().max().item()
            for e in (1e-1, 1e-2, 1e-3)]  # fmt: skip
    assert gaps[1] < gaps[0] / 5 and gaps[2] < gaps[1] / 5
    far = operator(scene, torch.tensor([25.5]))  # 8.5 times max_offset
    assert torch.isfinite(far).all()


@settings(max_examples=25, deadline=None)
@given(a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_composing_operators_form_a_one_parameter_group(a: float, b: float) -> None:
    torch.manual_seed(0)
    scene = torch.randn(1, 4, 5, 5, 5, dtype=torch.float64)
    for name in OPERATORS:
        operator = build_operator(name, 4, 3)
        if not operator.composes:
            continue
        twice = operator(operator(scene, torch.tensor([a])), torch.tensor([b]))
        once = operator(scene, torch.tensor([a + b]))
        assert torch.allclose(twice.double(), once.double(), atol=1e-4)


def test_skew_flow_keeps_every_voxel_norm_for_any_offset() -> None:
    operator = build_operator("flow", 6, 2, {"generator": "skew"})
    scene = torch.randn(3, 6, 4, 4, 4)
    moved = operator(scene, torch.tensor([0.3, -7.0, 40.0]))
    assert torch.allclose(moved.norm(dim=1), scene.norm(dim=1), rtol=1e-4)


def test_bad_operator_names_and_options_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="unknown time operator 'warpish'; registered"):
        build_operator("warpish", 4, 2)
    with pytest.raises(ValueError, match="lift_options for the 'flow' operator"):
        build_operator("flow", 4, 2, {"bogus": 1})
    with pytest.raises(ValueError, match="generator must be one of"):
        build_operator("flow", 4, 2, {"generator": "diagonal"})
    with pytest.raises(ValueError, match="lift_options configure a time operator"):
        Encoder(**SIZES, max_offset=1, inverse_projection=[64], lift_options={"generator": "skew"})


@pytest.mark.parametrize("name", OPERATORS)
def test_operator_encoder_slots_are_the_operator_at_integer_offsets(name: str) -> None:
    renderer = operator_renderer(name)
    images = torch.rand(2, 3, 16, 16)
    latent = renderer.encode(images)  # (2, 5, C, D, H, W)
    assert latent.shape == (2, 5, 4, 8, 8, 8)
    state = renderer.encode_state(images)  # one scene per image
    assert state.shape == (2, 4, 8, 8, 8)
    for k, dt in enumerate(range(-2, 3)):
        scene, none = renderer.scenes(images, torch.full((2,), dt))
        assert none is None
        assert torch.allclose(scene, latent[:, k], atol=1e-5)
    assert torch.equal(renderer.move(state, torch.zeros(2)), state)  # dt = 0: the input time
    outside = renderer.encoder.mask == 0
    assert latent[..., outside].abs().max() == 0  # still cut to the sphere
    with pytest.raises(ValueError, match="max_offset"):
        renderer.scenes(images, torch.tensor([2.5, 0.0]))


def test_equivariance_offsets_land_on_timesteps_and_split_into_steps(tiny_data: Path) -> None:
    views = RenderedViews(tiny_data / "val", 32, 6)
    records, offsets = draw_pairs(views, steps=6, max_offset=3, count=50, seed=0)
    times = views.original_timestep[records] + offsets
    assert (offsets != 0).all() and (np.abs(offsets) <= 3).all()
    assert ((times >= 0) & (times < 6)).all()
    rng = np.random.default_rng(0)
    total = np.array([-3, -1, 1, 2, 3, 0])
    first, again = _split_offsets(total, 3, rng)
    assert np.array_equal(again, total)
    assert (np.abs(first) <= 3).all() and (np.abs(total - first) <= 3).all()


def test_an_operator_that_does_not_move_scores_ratio_one(tiny_data: Path) -> None:
    """A flow with G = 0 leaves every scene where it is: the moved scene IS the unmoved one,
    so the ratio is exactly 1, and composition is exact."""
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    estimator = ParameterEstimator(manifest, 32)
    views = RenderedViews(tiny_data / "val", 32, 6)
    assert len(set(object_names(views))) == 2
    renderer = operator_renderer("flow", max_offset=3, image_size=32).eval()
    with torch.no_grad():
        renderer.encoder.time_operator.weight.zero_()
    scores = temporal_equivariance(renderer, estimator, views, 6, 0, "cpu", batch_size=4)
    overall = scores["by_abs_dt"]["all"]
    assert overall["pairs"] == 6
    assert overall["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert overall["moved_distance"] == pytest.approx(overall["static_distance"], abs=1e-6)
    assert scores["composition"]["distance"] == pytest.approx(0.0, abs=1e-6)
    assert scores["composition"]["render_psnr"] >= 90


def blob(side: int = 12, centre: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Tensor:
    """(1, 1, side, side, side) Gaussian blob at ``centre`` (grid_sample's (w, h, d) units)."""
    axis = (2 * torch.arange(side, dtype=torch.float32) + 1) / side - 1
    d, h, w = torch.meshgrid(axis, axis, axis, indexing="ij")
    cw, ch, cd = centre
    return torch.exp(-((w - cw) ** 2 + (h - ch) ** 2 + (d - cd) ** 2) / 0.05)[None, None]


def centre_of_mass(volume: Tensor) -> Tensor:
    """(1, 1, D, H, W) non-negative volume -> (3,) centre in (w, h, d) grid units."""
    side = volume.shape[-1]
    axis = (2 * torch.arange(side, dtype=torch.float64) + 1) / side - 1
    v = volume[0, 0].double()
    return torch.stack([(v.sum((0, 1)) * axis).sum(), (v.sum((0, 2)) * axis).sum(),
                        (v.sum((1, 2)) * axis).sum()]) / v.sum()  # fmt: skip


def translating_warp(shift_w: float) -> TimeOperator:
    """A warp whose displacement is the constant ``shift_w`` along w for saturated dt."""
    warp = build_operator("warp", 1, 3, {"residual": False, "max_displacement": 0.5})
    with torch.no_grad():
        warp.net[-1].bias.copy_(torch.tensor([math.atanh(shift_w / 0.5), 0.0, 0.0]))
    return warp


def test_warp_moves_content_by_its_displacement_and_bounds_it() -> None:
    warp = translating_warp(0.25)
    scene = blob()
    dt = torch.tensor([1e6])  # gate = 1
    moved = warp(scene, dt)  # out(q) = S(q + u): content moves by -u
    assert torch.allclose(centre_of_mass(moved), torch.tensor([-0.25, 0, 0]).double(), atol=0.02)
    with torch.no_grad():
        for parameter in warp.parameters():
            parameter.normal_(0, 50.0)
    fields = warp.fields(torch.randn(2, 1, 6, 6, 6), torch.tensor([3.0, -400.0]))
    assert fields[:, :3].abs().max() <= 0.5 + 1e-6  # bounded for any dt and weights


@settings(max_examples=10, deadline=None)
@given(azimuth=st.floats(-180, 180), elevation=st.floats(-60, 60))
def test_warp_reads_moved_and_rotated_scenes_once(azimuth: float, elevation: float) -> None:
    """move_rotated = the warp then the rotation, as one resampling: the content lands where
    the two steps put it, no blurrier than they leave it, and dt = 0 is the rotation."""
    warp = translating_warp(0.2)
    scene = blob(side=16, centre=(0.1, -0.1, 0.05))
    mask = torch.ones(16, 16, 16)
    rotation = source_to_target(torch.zeros(1, 2), torch.tensor([[azimuth, elevation]]))
    dt = torch.tensor([1e6])
    once = warp.move_rotated(scene, dt, rotation, "bilinear", mask)
    twice = rotate_volume(warp(scene, dt), rotation)
    assert torch.allclose(centre_of_mass(once), centre_of_mass(twice), atol=0.02)
    assert once.max() >= twice.max() - 1e-6  # one trilinear read blurs less than two
    zero = warp.move_rotated(scene, torch.zeros(1), rotation, "bilinear", mask)
    assert torch.allclose(zero, rotate_volume(scene, rotation), atol=1e-6)


def test_warp_renderer_renders_through_the_one_read() -> None:
    """SceneRenderer.move_rotate: slots and flow rotate the moved scene; the warp reads once
    (at the source pose the two agree, as the rotation is then the identity)."""
    renderer = operator_renderer("warp")
    operator = renderer.encoder.time_operator
    with torch.no_grad():
        operator.net[-1].weight.normal_(0, 0.5)
    state = renderer.encode_state(torch.rand(2, 3, 16, 16))
    dt, pose = torch.tensor([1.0, -2.0]), torch.tensor([[0.0, 0.0], [30.0, 10.0]])
    same = renderer.move_rotate(state, dt, pose, pose)
    assert torch.allclose(same, renderer.move(state, dt), atol=1e-5)
    turned = renderer.move_rotate(state, dt, pose, pose.flip(0))
    assert turned.shape == state.shape and torch.isfinite(turned).all()
    assert turned[..., renderer.encoder.mask == 0].abs().max() == 0
