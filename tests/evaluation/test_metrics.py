"""Per-image metrics: silhouette IoU on a white background (``temporal_nsr.silhouettes``)."""

from pathlib import Path

import pytest
import torch

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.evaluation.metrics import WHITE
from temporal_nsr.silhouettes import foreground, silhouette_iou


def test_silhouette_iou_of_ground_truth_is_one_and_of_a_blank_image_zero(tiny_data: Path) -> None:
    views = RenderedViews(tiny_data / "val", 32, 6)
    target = torch.stack([views.image(i) for i in range(len(views))])
    assert foreground(target, WHITE, 0.1).flatten(1).any(1).all()  # every view shows the bar
    assert torch.equal(silhouette_iou(target, target, WHITE, 0.1), torch.ones(len(views)))
    blank = torch.ones_like(target)
    assert torch.equal(silhouette_iou(blank, target, WHITE, 0.1), torch.zeros(len(views)))
    # A model's near-white background (247 / 255) is background within the tolerance.
    grey = torch.where(target == 1.0, torch.tensor(247 / 255), target)
    assert torch.equal(silhouette_iou(grey, target, WHITE, 0.1), torch.ones(len(views)))


def test_silhouette_iou_counts_overlap_per_image() -> None:
    target = torch.ones(2, 3, 8, 8)
    target[:, :, 2:6, 2:6] = 0.0  # a 4 x 4 square
    shifted = torch.ones(2, 3, 8, 8)
    shifted[0, :, 2:6, 4:8] = 0.0  # half of it: 8 / (16 + 16 - 8)
    shifted[1, :, 2:6, 2:6] = 0.5
    iou = silhouette_iou(shifted, target, WHITE, 0.1)
    assert torch.allclose(iou, torch.tensor([8 / 24, 1.0]))


def test_one_silhouette_iou_convention_two_empty_masks_agree() -> None:
    # evaluation and compare_backends once disagreed here (0 vs 1): both are this function now.
    blank = torch.ones(2, 3, 8, 8)
    drawn = blank.clone()
    drawn[1, :, 3:5, 3:5] = 0.0
    iou = silhouette_iou(blank, drawn, WHITE, 0.1)
    assert iou.dtype == torch.float32 and iou.tolist() == [1.0, 0.0]  # both empty; one empty


def test_uint8_silhouettes_are_the_pixels_off_the_background_level() -> None:
    import numpy as np

    from temporal_nsr.silhouettes import UINT8_LEVEL, uint8_images

    rng = np.random.default_rng(0)
    background = (1.0, 1.0, 1.0)
    pixels = np.full((3, 6, 6, 3), 255, dtype=np.uint8)
    pixels[rng.random((3, 6, 6)) < 0.3] = (254, 255, 255)  # one level off in one channel
    pixels[2] = 255  # empty
    masks = foreground(uint8_images(pixels), background, UINT8_LEVEL)
    assert torch.equal(masks, torch.from_numpy((pixels != 255).any(-1)))
    iou = silhouette_iou(uint8_images(pixels), uint8_images(pixels[[1, 0, 2]]), background,
                         UINT8_LEVEL)  # fmt: skip
    ma, mb = (pixels != 255).any(-1), (pixels[[1, 0, 2]] != 255).any(-1)
    expected = (ma & mb).sum((1, 2)) / (ma | mb).sum((1, 2)).clip(1)
    assert iou[:2].tolist() == pytest.approx(expected[:2].tolist()) and iou[2] == 1.0
