"""The dt-conditioned lift: same interface as the slot lift, continuous in dt, trainable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from temporal_nsr.batch import ViewPair
from temporal_nsr.evaluation.predictors import PairBatch
from temporal_nsr.model.decoder import Decoder
from temporal_nsr.model.encoder import Encoder
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.model.rotation import LatentRotation

SIZES = dict(
    image_size=16, latent_channels=3, channels_2d=[8, 8], strides_2d=[1, 2],
    channels_3d=[8], strides_3d=[1], lift_strides=[1],
)  # fmt: skip


def conditioned_renderer(max_offset: int = 2) -> SceneRenderer:
    torch.manual_seed(0)
    encoder = Encoder(
        **SIZES, max_offset=max_offset, inverse_projection=[64], lift="conditioned", lift_width=8
    )
    with torch.no_grad():  # a trained-looking modulation, so dt matters
        encoder.lift.modulation[-1].weight.normal_(0, 0.5)
    decoder = Decoder(**SIZES, projection=[16])
    return SceneRenderer(encoder, LatentRotation(), decoder)


def test_conditioned_slots_match_scene_at_and_dt_zero_is_the_input_time() -> None:
    renderer = conditioned_renderer()
    images = torch.rand(2, 3, 16, 16)
    latent = renderer.encode(images)
    assert latent.shape == (2, 5, 3, 8, 8, 8)
    for k, dt in enumerate(range(-2, 3)):
        offsets = torch.full((2,), dt)
        scene, none = renderer.scenes(images, offsets)
        assert none is None
        assert torch.allclose(scene, latent[:, k], atol=1e-5)
    # dt = 0 is the middle slot, the input's own time, as in the slot model.
    zero, _ = renderer.scenes(images, torch.zeros(2))
    assert torch.allclose(zero, latent[:, 2], atol=1e-5)
    assert not torch.allclose(latent[:, 0], latent[:, 4], atol=1e-3)  # dt does matter


def test_conditioned_lift_is_continuous_in_dt_and_checks_the_bound() -> None:
    renderer = conditioned_renderer()
    images = torch.rand(1, 3, 16, 16)
    base, _ = renderer.scenes(images, torch.tensor([0.7]))
    gaps = []
    for eps in (1e-1, 1e-2, 1e-3):
        near, _ = renderer.scenes(images, torch.tensor([0.7 + eps]))
        gaps.append((near - base).abs().max().item())
    # Lipschitz-like: the change shrinks with the step (10x smaller steps, >= 5x smaller change)
    assert gaps[1] < gaps[0] / 5 and gaps[2] < gaps[1] / 5
    with pytest.raises(ValueError, match="max_offset"):
        renderer.scenes(images, torch.tensor([2.5]))


def test_evaluation_renders_only_the_offsets_it_needs_and_matches_the_full_latent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renderer = conditioned_renderer()
    images, pose, turned = torch.rand(3, 3, 16, 16), torch.zeros(3, 2), torch.full((3, 2), 30.0)
    offsets = (torch.tensor([2, -1, 0]), torch.zeros(3, dtype=torch.long))
    latent = renderer.encode(images)
    expected = [renderer.novel_view(latent, dt, pose, turned).clamp(0, 1) for dt in offsets]
    lifted = []
    original = renderer.encoder.lift.forward
    monkeypatch.setattr(
        renderer.encoder.lift, "forward", lambda f, dt: lifted.append(len(dt)) or original(f, dt)
    )
    time = torch.zeros(3, dtype=torch.long)
    pair = ViewPair(images, images, pose, turned, time, time, time)
    batch = PairBatch(np.zeros((3, 3), dtype=np.int64), pair, {})
    renders = [batch.render(renderer, dt) for dt in offsets]  # one encoding for both
    assert lifted == [3, 3]  # one scene per source and offset, not K = 5 per source
    for got, want in zip(renders, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_new_conditioned_lift_ignores_dt_and_trains() -> None:
    torch.manual_seed(0)
    encoder = Encoder(**SIZES, max_offset=2, inverse_projection=[64], lift="conditioned")
    renderer = SceneRenderer(encoder, LatentRotation(), Decoder(**SIZES, projection=[16]))
    images = torch.rand(2, 3, 16, 16)
    latent = renderer.encode(images)
    assert torch.allclose(latent[:, 0], latent[:, 4])  # zero-initialised modulation
    scene, _ = renderer.scenes(images, torch.tensor([1, -2]))
    pose = torch.zeros(2, 2)
    loss = renderer.render(scene, pose, pose).mean()
    loss.backward()
    grads = [p.grad for p in encoder.lift.modulation.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert grads[-1].abs().sum() > 0  # dt's modulation receives signal from every pair


def test_conditioned_lift_rejects_slot_checkpoint_options() -> None:
    with pytest.raises(ValueError, match="lift"):
        Encoder(**SIZES, max_offset=1, inverse_projection=[64], lift="bogus")
    with pytest.raises(ValueError, match="lift_slots"):
        Encoder(**SIZES, max_offset=1, inverse_projection=[64], lift="conditioned", lift_slots=5)
