import math

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from temporal_nsr.batch import ViewPair
from temporal_nsr.model.encoder import lift_kinds
from temporal_nsr.training.module import cross_pairs


def _batch(datamodule) -> ViewPair:
    datamodule.setup("fit")
    return next(iter(datamodule.train_dataloader()))


def test_training_step_is_finite_and_learns_a_repeated_batch(cfg_train: DictConfig) -> None:
    torch.manual_seed(0)
    model = instantiate(cfg_train.model)
    batch = _batch(instantiate(cfg_train.data))
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(15):
        loss = model.training_step(batch, 0)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_render_pairs_renders_both_directions(cfg_train: DictConfig) -> None:
    model = instantiate(cfg_train.model)
    batch = _batch(instantiate(cfg_train.data))
    b = batch.source.shape[0]
    renders = model.render_pairs(batch)
    assert renders.prediction.shape == (2 * b, *batch.source.shape[1:])
    assert torch.equal(renders.truth[:b], batch.target)
    assert torch.equal(renders.truth[b:], batch.source)
    assert torch.equal(renders.dt, torch.cat([batch.dt, -batch.dt]))


def test_overfitting_one_pair_reaches_25_db(cfg_train: DictConfig) -> None:
    """The tiny model can memorise one pair: the whole pipeline passes gradients usefully."""
    torch.manual_seed(0)
    cfg_train.model.optimizer.lr = 3e-3
    cfg_train.model.ssim_weight = 0.0
    model = instantiate(cfg_train.model)
    batch = ViewPair(*(f[:1] for f in _batch(instantiate(cfg_train.data))))
    optimizer = model.configure_optimizers()
    psnr = 0.0
    for _ in range(400):
        renders = model.render_pairs(batch)
        mse = (renders.prediction - renders.truth).pow(2).mean()
        psnr = -10 * math.log10(mse.item())
        if psnr > 25:
            break
        optimizer.zero_grad()
        mse.backward()
        optimizer.step()
    assert psnr > 25


def test_cross_pairs_respect_object_offset_and_skip_the_pair() -> None:
    torch.manual_seed(0)
    b = 6
    object_id = torch.tensor([0, 0, 1, 1, 0, 1] * 2)
    time = torch.tensor([0, 3, 5, 19, 12, 7, 2, 3, 6, 0, 1, 9])
    source, target = cross_pairs(object_id, time, max_offset=4, per_image=3)
    assert len(source) > 0
    assert torch.equal(object_id[source], object_id[target])
    assert bool(((time[target] - time[source]).abs() <= 4).all())
    assert bool((source != target).all())
    assert bool((target != (source + b) % (2 * b)).all())
    assert int(torch.bincount(source, minlength=2 * b).max()) <= 3
    assert len(set(zip(source.tolist(), target.tolist(), strict=True))) == len(source)
    # image 3 (object 1, t = 19) has no partner within 4 steps: it gets no cross render
    assert 3 not in source.tolist()


def test_cross_pairs_take_every_candidate_when_fewer_than_asked() -> None:
    object_id = torch.zeros(4, dtype=torch.long)
    time = torch.tensor([0, 1, 2, 3])
    source, target = cross_pairs(object_id, time, max_offset=10, per_image=5)
    # 4 images, each allowed 2 others (not itself, not its partner i + 2 mod 4)
    assert len(source) == 8


def test_cross_targets_add_renders_from_the_same_latents(cfg_train: DictConfig) -> None:
    torch.manual_seed(0)
    model = instantiate(cfg_train.model, cross_targets=2)
    batch = _batch(instantiate(cfg_train.data))
    # one object at one time: every other image but the partner is a candidate
    zeros = torch.zeros_like(batch.object_id)
    batch = batch._replace(object_id=zeros, source_time=zeros, target_time=zeros)
    b = batch.source.shape[0]
    plain = model.render_pairs(batch)
    renders = model.render_pairs(batch, cross_targets=2)
    assert renders.prediction.shape[0] > 2 * b
    assert renders.prediction.shape[0] == renders.truth.shape[0] == renders.dt.shape[0]
    # the first 2B renders are the pair renders, unchanged
    assert torch.allclose(renders.prediction[: 2 * b], plain.prediction, atol=1e-6)
    assert torch.equal(renders.truth[: 2 * b], plain.truth)
    assert torch.equal(renders.dt[: 2 * b], plain.dt)
    loss = model.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)


def test_cross_targets_need_a_count(cfg_train: DictConfig) -> None:
    with pytest.raises(InstantiationException, match="cross_targets must be >= 0"):
        instantiate(cfg_train.model, cross_targets=-1)


@pytest.mark.parametrize("lift", lift_kinds())
def test_cross_renders_of_every_lift_match_the_pair_path(cfg_train: DictConfig, lift) -> None:
    """The cross path (one state per image, moved per render) renders the pairs as the plain
    path does, for slots, the conditioned lift and every time operator."""
    torch.manual_seed(0)
    cfg_train.model.renderer.encoder.lift = lift
    model = instantiate(cfg_train.model, cross_targets=2)
    batch = _batch(instantiate(cfg_train.data))
    plain = model.render_pairs(batch)
    renders = model.render_pairs(batch, cross_targets=2)
    b = batch.source.shape[0]
    assert torch.allclose(renders.prediction[: 2 * b], plain.prediction, atol=1e-5)
    assert (renders.latent is None) == (lift != "slots")
    loss = model.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)


def test_equivariance_term_compares_the_moved_scene_with_the_targets_own(
    cfg_train: DictConfig,
) -> None:
    torch.manual_seed(0)
    cfg_train.model.renderer.encoder.lift = "flow"
    model = instantiate(cfg_train.model, equivariance_weight=0.1)
    batch = _batch(instantiate(cfg_train.data))
    renders = model.render_pairs(batch, cross_targets=1)
    moved, own = renders.scenes
    assert moved.shape == own.shape and moved.shape[0] == renders.prediction.shape[0]
    terms = model._loss(renders)
    assert terms.equivariance > 0
    assert torch.allclose(terms.loss, terms.recon + 0.05 * terms.ssim + 0.1 * terms.equivariance)
    # pairs at dt = 0 and one pose: the moved scene is the source's own, so a batch whose
    # source and target are the same image scores 0
    same = batch._replace(target=batch.source, target_pose=batch.source_pose,
                          target_time=batch.source_time)  # fmt: skip
    zero = model._loss(model.render_pairs(same)).equivariance
    assert zero.item() == pytest.approx(0.0, abs=1e-5)
    assert model.render_pairs(batch).scenes is not None
    plain = instantiate(cfg_train.model)
    assert plain.render_pairs(batch).scenes is None  # off: nothing extra computed
    with pytest.raises(InstantiationException, match="equivariance_weight must be >= 0"):
        instantiate(cfg_train.model, equivariance_weight=-1.0)
