"""Decoder: the widened, clamped sigmoid reaches white and black; memory formats agree."""

from __future__ import annotations

import pytest
import torch

from temporal_nsr.acceleration import to_channels_last
from temporal_nsr.model.decoder import Decoder

TINY = dict(
    image_size=16, latent_channels=3, channels_2d=[8, 8], strides_2d=[1, 2], projection=[16],
    channels_3d=[8], strides_3d=[1], lift_strides=[1],
)  # fmt: skip


def test_output_margin_reaches_white_and_black_and_zero_is_plain_sigmoid() -> None:
    torch.manual_seed(0)
    plain = Decoder(**TINY)
    wide = Decoder(**TINY, output_margin=0.02)
    wide.load_state_dict(plain.state_dict())
    scene = torch.randn(2, 3, 8, 8, 8)
    last = plain.resnet_2d.layers[-1]
    with torch.no_grad():
        for bias in (8.0, -8.0):
            for model in (plain, wide):
                model.resnet_2d.layers[-1].bias.fill_(bias)
            assert (wide(scene) == float(bias > 0)).all()
            assert not (plain(scene) == float(bias > 0)).all()
        last.bias.zero_()
        wide.resnet_2d.layers[-1].bias.zero_()
        x = plain(scene)
        assert torch.allclose(wide(scene), (1.04 * x - 0.02).clamp(0, 1))
    with pytest.raises(ValueError, match="output_margin"):
        Decoder(**TINY, output_margin=0.6)


def test_channels_last_decoder_renders_what_the_contiguous_one_does() -> None:
    """In bf16 (where oneDNN keeps the volume channels-last) the volume goes to the projection
    without the NCHW detour, and the images agree with the contiguous decoder's."""
    torch.manual_seed(0)
    plain = Decoder(**TINY).to(torch.bfloat16)
    fast = Decoder(**TINY).to(torch.bfloat16)
    fast.load_state_dict(plain.state_dict())
    to_channels_last(fast)
    scene = torch.randn(2, 3, 8, 8, 8, dtype=torch.bfloat16)
    scene_cl = scene.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        volume = fast.resnet_3d(scene_cl)
        assert volume.is_contiguous(memory_format=torch.channels_last_3d)
        assert not volume.is_contiguous()
        expected, got = plain(scene).float(), fast(scene_cl).float()
    torch.testing.assert_close(got, expected, atol=1e-2, rtol=0)
