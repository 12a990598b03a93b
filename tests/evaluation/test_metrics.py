"""Per-image metrics: silhouette IoU on a white background."""

from pathlib import Path

import torch

from temporal_nsr.data.dataset import RenderedViews
from temporal_nsr.evaluation.metrics import WHITE, foreground, silhouette_iou


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
