import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from temporal_nsr.training.losses import (
    gaussian_window_matrix,
    latent_equivariance,
    reconstruction,
    ssim,
    ssim_loss,
    temporal_smoothness,
    total_loss,
)


def test_smoothness_is_zero_for_latent_constant_across_slots() -> None:
    scene = torch.randn(2, 1, 3, 4, 4, 4)
    assert temporal_smoothness(scene.expand(2, 5, 3, 4, 4, 4)) == 0


def test_smoothness_is_mean_squared_neighbour_difference() -> None:
    latent = torch.zeros(1, 3, 1, 1, 1, 1)
    latent[0, :, 0, 0, 0, 0] = torch.tensor([0.0, 1.0, 3.0])
    assert temporal_smoothness(latent).item() == pytest.approx((1 + 4) / 2)
    assert temporal_smoothness(latent[:, :1]) == 0  # one slot: nothing to smooth


def test_reconstruction_kinds_and_bad_kind() -> None:
    a, b = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)
    assert reconstruction(a, b, "l1").item() == pytest.approx(0.5)
    assert reconstruction(a, b, "l2").item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="model.loss"):
        reconstruction(a, b, "huber")


def test_ssim_loss_is_zero_for_identical_images() -> None:
    image = torch.rand(2, 3, 32, 32)
    assert ssim_loss(image, image).item() == pytest.approx(0.0, abs=1e-5)
    assert ssim_loss(image, torch.rand(2, 3, 32, 32)).item() > 0.5


def test_total_loss_weights_terms() -> None:
    prediction, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    latent = torch.randn(2, 3, 2, 4, 4, 4)
    terms = total_loss(prediction, target, latent, "l1", ssim_weight=0.5, smoothness_weight=2.0)
    expected = terms.recon + 0.5 * terms.ssim + 2.0 * terms.smooth
    assert terms.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    off = total_loss(prediction, target, latent, "l1", ssim_weight=0.0, smoothness_weight=0.0)
    assert off.loss.item() == pytest.approx(off.recon.item())
    scenes = (torch.randn(2, 3, 4, 4, 4), torch.randn(2, 3, 4, 4, 4))
    with_eq = total_loss(prediction, target, None, "l1", 0.0, 0.0, 0.5, scenes)
    assert with_eq.loss.item() == pytest.approx(
        with_eq.recon.item() + 0.5 * with_eq.equivariance.item(), rel=1e-6
    )
    assert with_eq.equivariance.item() > 0 and off.equivariance.item() == 0


def test_latent_equivariance_is_relative_and_zero_for_equal_scenes() -> None:
    scene = torch.randn(3, 2, 4, 4, 4)
    assert latent_equivariance(scene, scene).item() == 0.0
    # moving a scene to zero costs 1 (its own size), whatever that size is
    for scale in (1e-3, 1.0, 1e3):
        assert latent_equivariance(torch.zeros_like(scene), scale * scene).item() == pytest.approx(
            1.0
        )
    moved = scene.clone().requires_grad_(True)
    target = (scene + 0.1).requires_grad_(True)
    latent_equivariance(moved, target).backward()
    assert moved.grad.abs().sum() > 0 and target.grad.abs().sum() > 0


@pytest.mark.parametrize("side", [16, 33, 64])
def test_ssim_agrees_with_torchmetrics_in_value_and_gradient(side: int) -> None:
    g = torch.Generator().manual_seed(side)
    target = torch.rand(3, 3, side, side, generator=g)
    for prediction in (
        torch.rand(3, 3, side, side, generator=g),
        target + 0.05 * torch.rand(3, 3, side, side, generator=g),
    ):
        prediction = prediction.clamp(0, 1).requires_grad_()
        ours = ssim(prediction, target)
        theirs = structural_similarity_index_measure(prediction, target, data_range=1.0)
        assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
        (grad_ours,) = torch.autograd.grad(ours, prediction)
        (grad_theirs,) = torch.autograd.grad(theirs, prediction)
        scale = grad_theirs.abs().max().item()  # float32 rounding, relative to the largest entry
        torch.testing.assert_close(grad_ours, grad_theirs, rtol=1e-4, atol=1e-4 * scale)


def test_ssim_stays_float32_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(0)
    prediction, target = (
        torch.rand(2, 3, 32, 32, generator=g),
        torch.rand(2, 3, 32, 32, generator=g),
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = ssim(prediction.bfloat16(), target)
    assert inside.dtype == torch.float32
    assert inside.item() == pytest.approx(
        ssim(prediction.bfloat16().float(), target).item(), abs=1e-6
    )


def test_gaussian_window_rows_sum_to_one_and_reflect_at_the_border() -> None:
    window = gaussian_window_matrix(12, torch.device("cpu"))
    torch.testing.assert_close(window.sum(1), torch.ones(12))
    # Row 0's taps at -1..-5 land on pixels 1..5 (reflection), so they carry twice the weight
    # of the taps at +1..+5 only through the added mirror weight.
    assert window[0, 1] == pytest.approx(2 * window[6, 7].item(), rel=1e-6)
