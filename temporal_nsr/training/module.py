"""TemporalNSRModule: training, validation and test steps around a SceneRenderer."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import lightning as L
import torch
from torch import Tensor
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from temporal_nsr.batch import ViewPair
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.training.losses import RECONSTRUCTION_LOSSES, LossTerms, total_loss

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class PairRenders(NamedTuple):
    """Both directions of a batch of pairs, stacked: first a -> b, then b -> a."""

    prediction: Tensor  # (2B, 3, S, S) rendered images
    truth: Tensor  # (2B, 3, S, S) the images they should match
    latent: Tensor | None  # (2B, K, C, D, H, W) latents of the inputs; None: not a slot lift
    dt: Tensor  # (2B,) time offset rendered


class TemporalNSRModule(L.LightningModule):
    """Learns a temporally equivariant scene representation from image pairs.

    Args:
        renderer: the network (encoder, rotation, decoder).
        optimizer: a factory taking the parameters (Hydra `_partial_: true`).
        scheduler: optional factory taking the optimizer; stepped every epoch.
        loss: reconstruction loss, "l1" (ENR) or "l2".
        ssim_weight: weight of 1 - SSIM (0.05 in ENR).
        smoothness_weight: weight of the mean squared difference of neighbouring slots.
        cross_targets: in training, each image of the batch is also rendered at up to this
            many other images of the batch (same object, |dt| <= max_offset, not its own
            pair), from the state its encoder pass already made (``Encoder.state``): more
            supervision per encoder pass (``cross_pairs``). 0: only the pairs (the faithful
            objective).
    """

    def __init__(
        self,
        renderer: SceneRenderer,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        loss: str = "l1",
        ssim_weight: float = 0.05,
        smoothness_weight: float = 0.0,
        cross_targets: int = 0,
    ) -> None:
        super().__init__()
        if cross_targets < 0:
            raise ValueError(f"model.cross_targets must be >= 0, got {cross_targets}")
        if smoothness_weight and not renderer.encoder.slotted:
            raise ValueError(
                "model.smoothness_weight needs slots (model.renderer.encoder.lift=slots); a "
                "conditioned lift or a time operator is smooth in dt by construction: set it to 0"
            )
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"model.loss={loss!r}: use one of {RECONSTRUCTION_LOSSES}")
        # logger=False: train() logs the whole run config once, nested; these flat keys
        # would duplicate parts of it at the top level.
        self.save_hyperparameters(ignore=["renderer", "optimizer", "scheduler"], logger=False)
        self.renderer = renderer
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.loss_kind = loss
        self.ssim_weight = ssim_weight
        self.smoothness_weight = smoothness_weight
        self.cross_targets = cross_targets
        # One metric object per stage so validation and test never share state.
        self.psnr = torch.nn.ModuleDict(
            {s: PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3)) for s in ("val", "test")}
        )
        self.ssim = torch.nn.ModuleDict(
            {s: StructuralSimilarityIndexMeasure(data_range=1.0) for s in ("val", "test")}
        )

    def render_pairs(self, batch: ViewPair, cross_targets: int = 0) -> PairRenders:
        """Render each pair in both directions (docs/design.md §3, "Temporal lift").

        a -> b takes slot dt = t_b - t_a of a's latent, rotates it to b's pose and decodes it;
        b -> a takes slot -dt of b's latent at a's pose. Both run as one batch of 2B. With
        ``cross_targets`` > 0, the states of the 2B images (``SceneRenderer.encode_state``)
        are also rendered at other images of the batch (``cross_pairs``), appended after the
        2B pair renders.
        """
        images = torch.cat([batch.source, batch.target])  # (2B, 3, S, S)
        from_pose = torch.cat([batch.source_pose, batch.target_pose])  # (2B, 2) degrees
        if not cross_targets:
            truth = torch.cat([batch.target, batch.source])
            to_pose = torch.cat([batch.target_pose, batch.source_pose])
            dt = torch.cat([batch.dt, -batch.dt])  # (2B,)
            out = self.renderer(images, from_pose, to_pose, dt)  # latent (2B, K, ...) or None
            return PairRenders(out.image, truth, out.latent, dt)
        times = torch.cat([batch.source_time, batch.target_time])  # (2B,)
        source, target = cross_pairs(
            torch.cat([batch.object_id, batch.object_id]),
            times,
            self.renderer.max_offset,
            cross_targets,
        )
        n = images.shape[0]
        pairs = torch.arange(n, device=images.device)
        source = torch.cat([pairs, source])  # (2B + X,) image index of each render's input
        target = torch.cat([pairs.roll(n // 2), target])  # its truth: a -> b, b -> a, cross
        dt = times[target] - times[source]
        state = self.renderer.encode_state(images)  # (2B, ...), once per image
        # (2B, ...) -> (2B + X, ...): each render's input state, moved by its dt
        scenes = self.renderer.move(state[source], dt)
        prediction = self.renderer.render(scenes, from_pose[source], from_pose[target])
        latent = state if self.renderer.encoder.slotted else None
        return PairRenders(prediction, images[target], latent, dt)

    def _loss(self, renders: PairRenders) -> LossTerms:
        return total_loss(
            renders.prediction,
            renders.truth,
            renders.latent,
            self.loss_kind,
            self.ssim_weight,
            self.smoothness_weight,
        )

    def training_step(self, batch: ViewPair, batch_idx: int) -> Tensor:
        terms = self._loss(self.render_pairs(batch, self.cross_targets))
        n = batch.source.shape[0]
        parts = {f"train/{k}": v for k, v in terms._asdict().items() if k != "loss"}
        self.log_dict(parts, batch_size=n)
        self.log("train/loss", terms.loss, prog_bar=True, batch_size=n)
        return terms.loss

    def _evaluation_step(self, batch: ViewPair, stage: str) -> None:
        renders = self.render_pairs(batch)
        terms = self._loss(renders)
        prediction = renders.prediction.float().clamp(0, 1)
        self.psnr[stage](prediction, renders.truth)
        self.ssim[stage](prediction, renders.truth)
        n = batch.source.shape[0]
        self.log(f"{stage}/loss", terms.loss, sync_dist=True, batch_size=n)
        self.log(f"{stage}/psnr", self.psnr[stage], prog_bar=True, batch_size=n)
        self.log(f"{stage}/ssim", self.ssim[stage], batch_size=n)

    def validation_step(self, batch: ViewPair, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: ViewPair, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}


def cross_pairs(
    object_id: Tensor, time: Tensor, max_offset: int, per_image: int
) -> tuple[Tensor, Tensor]:
    """Extra (input, truth) renders within a batch of 2B images stacked as sources, targets.

    Image i may be rendered at image j when both show the same object, |t_j - t_i| <=
    max_offset, and j is neither i nor i's pair partner (i + B mod 2B, which the pair
    renders cover). Each image takes up to ``per_image`` such j at random (torch's global
    generator, so a seeded run repeats); an image with fewer candidates takes them all.

    Args:
        object_id: (2B,) object of each image.
        time: (2B,) timestep of each image.
        max_offset: largest |dt| the latent represents.
        per_image: extra renders wanted per image.

    Returns:
        (X,) input indices and (X,) truth indices, X <= 2B * per_image.
    """
    n = time.shape[0]
    index = torch.arange(n, device=time.device)
    allowed = (object_id[:, None] == object_id[None, :]) & (
        (time[None, :] - time[:, None]).abs() <= max_offset
    )  # (2B, 2B): row i may render at column j
    allowed[index, index] = False
    allowed[index, index.roll(n // 2)] = False
    # Random scores, -1 where not allowed: the top per_image of a row are a random allowed
    # subset (rows with fewer allowed columns also pick some -1s, dropped below).
    scores = torch.where(allowed, torch.rand(n, n, device=time.device), -1.0)
    picked = scores.topk(min(per_image, n), dim=1)
    keep = picked.values >= 0  # (2B, per_image)
    rows = index[:, None].expand_as(keep)
    return rows[keep], picked.indices[keep]
