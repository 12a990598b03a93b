import math

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from temporal_nsr.batch import ViewPair


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
