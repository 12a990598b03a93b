"""TemporalNSRModule: training, validation and test steps around a SceneRenderer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import lightning as L
import torch
from torch import Tensor
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from temporal_nsr.batch import ViewPair
from temporal_nsr.model.renderer import SceneRenderer
from temporal_nsr.runs import RUN_CONFIG
from temporal_nsr.training.losses import RECONSTRUCTION_LOSSES, LossTerms, total_loss

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class PairRenders(NamedTuple):
    """Both directions of a batch of pairs, stacked: first a -> b, then b -> a."""

    prediction: Tensor  # (2B, 3, S, S) rendered images
    truth: Tensor  # (2B, 3, S, S) the images they should match
    latent: Tensor | None  # (2B, K, C, D, H, W) latents of the inputs; None: not a slot lift
    dt: Tensor  # (2B,) time offset rendered
    scenes: tuple[Tensor, Tensor] | None  # (moved and rotated, the target's own) scenes, or None


class TemporalNSRModule(L.LightningModule):
    """Learns a temporally equivariant scene representation from image pairs.

    Args:
        renderer: the network (encoder, rotation, decoder).
        optimizer: a factory taking the parameters (Hydra `_partial_: true`); its learning
            rate is the peak that ``callbacks.lr_schedule`` (``training.budget``) scales, if set.
        loss: reconstruction loss, "l1" (ENR) or "l2".
        ssim_weight: weight of 1 - SSIM (0.05 in ENR).
        smoothness_weight: weight of the mean squared difference of neighbouring slots.
        equivariance_weight: weight of the latent equivariance term (``losses.
            latent_equivariance``): each render's moved, rotated scene against the scene its
            target image encodes to. 0: off (the faithful objective).
        cross_targets: in training, each image of the batch is also rendered at up to this
            many other images of the batch (same object, |dt| <= max_offset, not its own
            pair), from the state its encoder pass already made (``Encoder.state``): more
            supervision per encoder pass (``cross_pairs``). 0: only the pairs (the faithful
            objective).

    Attributes:
        run_config: the run's config as plain containers, resolved (``.hydra/config.yaml``
            without Hydra's own settings), stored in every checkpoint under
            ``runs.RUN_CONFIG`` so that one .ckpt file is a whole model
            (``runs.load_checkpoint``); ``train`` sets it. None: nothing stored.
    """

    def __init__(
        self,
        renderer: SceneRenderer,
        optimizer: OptimizerFactory,
        loss: str = "l1",
        ssim_weight: float = 0.05,
        smoothness_weight: float = 0.0,
        cross_targets: int = 0,
        equivariance_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if cross_targets < 0:
            raise ValueError(f"model.cross_targets must be >= 0, got {cross_targets}")
        if not equivariance_weight >= 0:
            raise ValueError(f"model.equivariance_weight must be >= 0, got {equivariance_weight}")
        if smoothness_weight and not renderer.encoder.slotted:
            raise ValueError(
                "model.smoothness_weight needs slots (model.renderer.encoder.lift=slots); a "
                "conditioned lift or a time operator is smooth in dt by construction: set it to 0"
            )
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"model.loss={loss!r}: use one of {RECONSTRUCTION_LOSSES}")
        # logger=False: train() logs the whole run config once, nested; these flat keys
        # would duplicate parts of it at the top level.
        self.save_hyperparameters(ignore=["renderer", "optimizer"], logger=False)
        self.run_config: Mapping[str, Any] | None = None
        self.renderer = renderer
        self.optimizer_factory = optimizer
        self.loss_kind = loss
        self.ssim_weight = ssim_weight
        self.smoothness_weight = smoothness_weight
        self.cross_targets = cross_targets
        self.equivariance_weight = equivariance_weight
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
        b -> a takes slot -dt of b's latent at a's pose. Both run as one batch of 2B: each
        image is encoded once (``SceneRenderer.encode_state``) and its state moved per render
        (``SceneRenderer.move_rotate``). With ``cross_targets`` > 0, the states are also rendered at
        other images of the batch (``cross_pairs``), appended after the 2B pair renders.

        Raises:
            ValueError: a pair's |dt| beyond max_offset.
        """
        images = torch.cat([batch.source, batch.target])  # (2B, 3, S, S)
        from_pose = torch.cat([batch.source_pose, batch.target_pose])  # (2B, 2) degrees
        times = torch.cat([batch.source_time, batch.target_time])  # (2B,)
        n = images.shape[0]
        source = torch.arange(n, device=images.device)  # (2B,) image index of each render's input
        target = source.roll(n // 2)  # its truth: a -> b, then b -> a
        self.renderer.check_offsets(times[target] - times[source])
        if cross_targets:
            extra = cross_pairs(
                torch.cat([batch.object_id, batch.object_id]),
                times,
                self.renderer.max_offset,
                cross_targets,
            )
            source, target = torch.cat([source, extra[0]]), torch.cat([target, extra[1]])
        dt = times[target] - times[source]  # (2B + X,)
        state = self.renderer.encode_state(images)  # (2B, ...), once per image
        # (2B, ...) -> (2B + X, ...): each render's input state (without cross renders the
        # inputs are the 2B states in order: no copy), moved by its dt
        rotated = self.renderer.move_rotate(
            state[source] if cross_targets else state, dt, from_pose[source], from_pose[target]
        )
        prediction = self.renderer.decoder(rotated)
        scenes = None
        if self.equivariance_weight > 0:
            # each target image's own scene at dt = 0, in its own pose's frame
            own = self.renderer.move(state, torch.zeros_like(times))  # (2B, C, D, H, W)
            scenes = (rotated, own[target])
        latent = state if self.renderer.encoder.slotted else None
        return PairRenders(prediction, images[target], latent, dt, scenes)

    def _loss(self, renders: PairRenders) -> LossTerms:
        return total_loss(
            renders.prediction,
            renders.truth,
            renders.latent,
            self.loss_kind,
            self.ssim_weight,
            self.smoothness_weight,
            self.equivariance_weight,
            renders.scenes,
        )

    def training_loss(self, batch: ViewPair) -> LossTerms:
        """The training objective of one batch: its renders (with cross renders) and loss terms.

        ``training_step`` is this plus logging; the benchmarks time and compile this alone.
        """
        return self._loss(self.render_pairs(batch, self.cross_targets))

    def training_step(self, batch: ViewPair, batch_idx: int) -> Tensor:
        terms = self.training_loss(batch)
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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint[RUN_CONFIG] = self.run_config

    def configure_optimizers(self):
        return self.optimizer_factory(params=self.parameters())


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
