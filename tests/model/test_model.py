"""Encoder, decoder and SceneRenderer: shapes, masks, slot selection, ENR sizes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_nsr.model.blocks import Conv3d, ConvTranspose3d, group_count
from temporal_nsr.model.decoder import Decoder, mirror_stages
from temporal_nsr.model.encoder import Encoder, spherical_mask
from temporal_nsr.model.renderer import RenderOutput, SceneRenderer
from temporal_nsr.model.rotation import LatentRotation

# 32 px -> 2D features 16 x 16 x 16 -> 4 x 16^3 -> 8 x 8^3 -> lift K*C x 16^3.
TINY = {
    "image_size": 32,
    "channels_2d": [8, 16, 16, 16],
    "strides_2d": [1, 2, 2, -2],
    "channels_3d": [8, 8],
    "strides_3d": [1, 2],
    "lift_strides": [-2, 1],
}
ENR_128 = {
    "image_size": 128,
    "channels_2d": [64, 64, 128, 128, 128, 128, 256, 256, 128, 128, 128],
    "strides_2d": [1, 1, 2, 1, 2, 1, 2, 1, -2, 1, 1],
    "channels_3d": [32, 32, 128, 128, 128],
    "strides_3d": [1, 1, 2, 1, 1],
    "lift_strides": [-2, 1, 1],
}
# Parameters of ENR's NeuralRenderer with the 128 px chairs config (channels_3d ending in
# 64, 64, 64), counted by instantiating the reference implementation
# (apple/ml-equivariant-neural-rendering, models/neural_renderer.py).
ENR_128_C64_PARAMETERS = 11_489_027


def build(
    sizes: dict,
    max_offset: int,
    latent_channels: int,
    inverse_projection=(32, 64),
    projection=(64, 32),
) -> SceneRenderer:
    encoder = Encoder(
        max_offset=max_offset,
        latent_channels=latent_channels,
        inverse_projection=list(inverse_projection),
        **sizes,
    )
    decoder = Decoder(latent_channels=latent_channels, projection=list(projection), **sizes)
    return SceneRenderer(encoder, LatentRotation("bilinear"), decoder)


def build_enr_128(max_offset: int, latent_channels: int) -> SceneRenderer:
    """ENR's 128 px network with its projection widths."""
    return build(
        ENR_128,
        max_offset=max_offset,
        latent_channels=latent_channels,
        inverse_projection=(256, 512, 1024),
        projection=(512, 256, 256),
    )


@pytest.fixture(scope="module")
def tiny() -> SceneRenderer:
    torch.manual_seed(0)
    return build(TINY, max_offset=2, latent_channels=3)


def test_tiny_encoder_shapes_and_mask(tiny: SceneRenderer) -> None:
    enc = tiny.encoder
    assert (enc.max_offset, enc.num_slots, enc.scene_shape) == (2, 5, (3, 16, 16, 16))
    latent = tiny.encode(torch.rand(2, 3, 32, 32))
    assert latent.shape == (2, 5, 3, 16, 16, 16)
    outside = spherical_mask(16) == 0
    assert outside.any() and (latent[..., outside] == 0).all()
    assert (latent[..., ~outside] != 0).float().mean() > 0.9


def test_spherical_mask_is_the_inscribed_ball() -> None:
    # Side 5: index offsets 0, +-1, +-2 from the centre, radius 2. Kept: offsets in
    # {0, +-1}^3 (27) and a single +-2 with zeros elsewhere (6).
    mask = spherical_mask(5)
    assert mask.sum() == 33
    assert mask[2, 2, 0] == 1 and mask[2, 1, 0] == 0 and mask[1, 1, 1] == 1
    assert torch.equal(mask, mask.flip(0)) and torch.equal(mask, mask.permute(2, 0, 1))


def test_tiny_decoder_renders_images_in_unit_range(tiny: SceneRenderer) -> None:
    image = tiny.decoder(torch.randn(4, 3, 16, 16, 16) * 10)
    assert image.shape == (4, 3, 32, 32)
    assert image.min() >= 0 and image.max() <= 1


def test_forward_and_backward(tiny: SceneRenderer) -> None:
    images = torch.rand(3, 3, 32, 32)
    poses = torch.tensor([[0.0, 0.0], [90.0, 30.0], [-45.0, -60.0]])
    out = tiny(images, poses, poses.flip(0), torch.tensor([0, 2, -1]))
    assert isinstance(out, RenderOutput)
    assert out.image.shape == (3, 3, 32, 32) and out.latent.shape == (3, 5, 3, 16, 16, 16)
    (out.image - images).abs().mean().backward()
    grads = [p.grad for p in tiny.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    tiny.zero_grad(set_to_none=True)


def test_select_slot_integer_offsets(tiny: SceneRenderer) -> None:
    latent = torch.randn(5, 5, 3, 16, 16, 16)
    dt = torch.tensor([0, -2, -1, 1, 2])
    picked = tiny.select_slot(latent, dt)
    for b in range(5):
        assert torch.equal(picked[b], latent[b, int(dt[b]) + 2])
    assert torch.equal(tiny.select_slot(latent, torch.zeros(5, dtype=torch.long)), latent[:, 2])


@settings(max_examples=25, deadline=None)
@given(dt=st.floats(-2, 2))
def test_select_slot_fractional_interpolates(tiny: SceneRenderer, dt: float) -> None:
    latent = torch.randn(1, 5, 3, 16, 16, 16, dtype=torch.float64)
    got = tiny.select_slot(latent, torch.tensor([dt], dtype=torch.float64))
    lower = min(int(torch.floor(torch.tensor(dt))) + 2, 3)
    w = dt + 2 - lower
    expected = (1 - w) * latent[0, lower] + w * latent[0, lower + 1]
    assert torch.allclose(got[0], expected, atol=1e-12)


def test_select_slot_integral_float_is_exact(tiny: SceneRenderer) -> None:
    latent = torch.randn(5, 5, 3, 16, 16, 16)
    dt = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert torch.equal(tiny.select_slot(latent, dt), latent[torch.arange(5), torch.arange(5)])


@pytest.mark.parametrize("bad", [3, -3, 2.5, float("nan")])
def test_select_slot_rejects_out_of_range(tiny: SceneRenderer, bad: float) -> None:
    latent = torch.randn(2, 5, 3, 16, 16, 16)
    dt = torch.tensor([0, bad]) if isinstance(bad, int) else torch.tensor([0.0, bad])
    with pytest.raises(ValueError, match=r"\[-2, 2\]"):
        tiny.select_slot(latent, dt)
    with pytest.raises(ValueError, match="max_offset"):
        tiny(torch.rand(2, 3, 32, 32), torch.zeros(2, 2), torch.zeros(2, 2), dt)


def test_render_views_matches_forward(tiny: SceneRenderer) -> None:
    tiny.eval()
    image = torch.rand(1, 3, 32, 32)
    source = torch.tensor([20.0, 10.0])
    targets = torch.tensor([[20.0, 10.0], [110.0, -30.0], [-70.0, 60.0], [0.0, 0.0]])
    dt = torch.tensor([0.0, 1.5, -2.0, 1.0])
    with torch.no_grad():
        latent = tiny.encode(image)[0]
        views = tiny.render_views(latent, source, targets, dt)
        chunked = tiny.render_views(latent, source, targets, dt, chunk_size=3)
        single = [
            tiny(image, source[None], targets[i : i + 1], dt[i : i + 1]).image[0] for i in range(4)
        ]
    tiny.train()
    assert views.shape == (4, 3, 32, 32)
    assert torch.allclose(views, torch.stack(single), atol=1e-5)
    assert torch.allclose(chunked, views, atol=1e-6)


def test_original_model_is_a_special_case() -> None:
    renderer = build(TINY, max_offset=0, latent_channels=4)
    latent = renderer.encode(torch.rand(2, 3, 32, 32))
    assert latent.shape == (2, 1, 4, 16, 16, 16)
    assert torch.equal(renderer.select_slot(latent, torch.zeros(2, dtype=torch.long)), latent[:, 0])


def test_mirror_stages_transposes_enr_lists() -> None:
    channels, strides = mirror_stages(ENR_128["channels_2d"], ENR_128["strides_2d"])
    assert channels == [128, 128, 256, 256, 128, 128, 128, 128, 64, 64, 64]
    assert strides == [1, 1, 2, 1, -2, 1, -2, 1, -2, 1, 1]


def test_group_count_follows_enr_and_divides() -> None:
    assert [group_count(c) for c in (3, 8, 32, 64, 128, 256, 1024)] == [1, 2, 4, 8, 16, 32, 32]
    assert group_count(63) == 3  # ENR's table says 4, which does not divide 63
    assert group_count(64, cap=6) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_size": 30}, "odd"),
        ({"strides_2d": [1, 2, 3, -2]}, "strides"),
        ({"channels_2d": [8, 16]}, "equal length"),
        ({"lift_strides": []}, "lift_strides"),
    ],
)
def test_invalid_sizes_raise(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Encoder(max_offset=1, latent_channels=2, inverse_projection=[32, 64], **{**TINY, **change})


def test_inverse_projection_must_divide_by_feature_side() -> None:
    with pytest.raises(ValueError, match="divisible"):
        Encoder(max_offset=1, latent_channels=2, inverse_projection=[32, 60], **TINY)


def test_enr_128_sizes_round_trip() -> None:
    torch.manual_seed(0)
    renderer = build_enr_128(max_offset=1, latent_channels=3).eval()
    assert renderer.encoder.scene_shape == (3, 32, 32, 32)
    with torch.no_grad():
        out = renderer(
            torch.rand(1, 3, 128, 128), torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([1])
        )
    assert out.latent.shape == (1, 3, 3, 32, 32, 32)
    assert out.image.shape == (1, 3, 128, 128)


def test_enr_128_c64_parameter_count_matches_reference() -> None:
    renderer = build_enr_128(max_offset=0, latent_channels=64)
    assert sum(p.numel() for p in renderer.parameters()) == ENR_128_C64_PARAMETERS


@pytest.mark.parametrize("channels", [3, 63])
def test_float32_inference_convolutions_match_pytorch(channels: int) -> None:
    """The layers' own CPU inference paths (oneDNN for few channels, a channels-last
    transposed convolution for odd channel counts) compute what PyTorch's layers compute."""
    torch.manual_seed(0)
    conv = Conv3d(channels, channels, kernel_size=3, padding=1, bias=False)
    up = ConvTranspose3d(16, channels, kernel_size=4, stride=2, padding=1)
    volume, small = torch.randn(1, channels, 8, 8, 8), torch.randn(2, 16, 4, 4, 4)
    with torch.no_grad():
        fast = conv(volume), up(small)
    with torch.enable_grad():  # gradients on: PyTorch's own path
        reference = conv(volume).detach(), up(small).detach()
    for ours, theirs in zip(fast, reference, strict=True):
        assert ours.is_contiguous() and ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
