import pytest
import torch

from temporal_nsr.training.losses import reconstruction, ssim_loss, temporal_smoothness, total_loss


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
