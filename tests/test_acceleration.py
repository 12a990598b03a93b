"""The fast paths change speed and memory, not the maths: same losses, close renders."""

from __future__ import annotations

import copy
import resource
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import temporal_nsr.acceleration as acceleration
from temporal_nsr.acceleration import (
    bf16_pays,
    bf16_speedup,
    inference_dtype,
    to_channels_last,
    training_precision,
)
from temporal_nsr.benchmarks.training import synthetic_pairs
from temporal_nsr.config import compose_config
from temporal_nsr.inference import NovelViewRenderer
from temporal_nsr.model.blocks import ResNet

CPU = torch.device("cpu")


def _tiny_model(*overrides: str):
    cfg = compose_config(["experiment=tiny", "logger=none", "paths.output_dir=/tmp", *overrides])
    torch.manual_seed(0)
    return instantiate(cfg.model), cfg


def _loss_curve(model, cfg, steps: int, bf16: bool = False) -> list[float]:
    batch = synthetic_pairs(4, cfg.data.image_size, cfg.data.max_offset)
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_activation_checkpointing_gives_the_same_loss_curve_and_weights() -> None:
    plain, cfg = _tiny_model()
    checkpointed, _ = _tiny_model("model.renderer.encoder.activation_checkpointing=true")
    stacks = [m for m in checkpointed.modules() if isinstance(m, ResNet)]
    assert len(stacks) >= 4 and all(stack.checkpoint_blocks for stack in stacks)  # both halves
    assert _loss_curve(checkpointed, cfg, 4) == pytest.approx(_loss_curve(plain, cfg, 4), abs=1e-6)
    pairs = zip(plain.state_dict().items(), checkpointed.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


# A training step in miniature: a 40 MiB activation (above glibc's 32 MiB mmap ceiling) is
# allocated, written and freed again and again; each line prints the page faults of one step.
_HEAP_STEPS = """
import resource, torch
from temporal_nsr.acceleration import keep_freed_memory

def steps(n):
    for _ in range(n):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        activation = torch.ones(10 << 20)
        del activation
        yield resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(*steps(4))
print(keep_freed_memory())
print(*list(steps(24))[-4:])  # the heap settles within a few steps, then is reused
"""


def test_kept_heap_reuses_freed_activations_without_page_faults() -> None:
    # In a fresh process: the setting is process-wide and cannot be undone.
    done = subprocess.run(
        [sys.executable, "-c", _HEAP_STEPS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    plain, kept, settled = done.stdout.split("\n")[:3]
    pages = (40 << 20) // resource.getpagesize()
    assert kept == "True"  # glibc on Linux
    assert all(int(n) >= 0.9 * pages for n in plain.split())  # mapped afresh every step
    assert all(int(n) < 0.05 * pages for n in settled.split()), settled  # kept and reused


def test_bf16_training_stays_finite_and_close_to_fp32() -> None:
    fp32, cfg = _tiny_model()
    bf16, _ = _tiny_model()
    reference = _loss_curve(fp32, cfg, 5)
    losses = _loss_curve(bf16, cfg, 5, bf16=True)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses == pytest.approx(reference, rel=0.05)
    assert losses[-1] < losses[0]  # it still learns the repeated batch


def _renderer(**options) -> NovelViewRenderer:
    model, _ = _tiny_model()
    return NovelViewRenderer(copy.deepcopy(model.renderer), device="cpu", **options)


def test_bf16_and_channels_last_inference_stay_close_to_fp32() -> None:
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    poses = dict(azimuth=[0.0, 40.0, 200.0], elevation=[0.0, -30.0, 60.0], dt=[0, 1, -0.5])
    eager = _renderer()
    reference = eager.render(eager.encode(image), **poses)
    fp32_cl = _renderer(channels_last=True)
    torch.testing.assert_close(
        fp32_cl.render(fp32_cl.encode(image), **poses), reference, atol=1e-5, rtol=0
    )
    bf16 = _renderer(precision="bf16")
    assert bf16.dtype == torch.bfloat16 and bf16.channels_last
    latent = bf16.encode(image)
    assert latent.dtype == torch.bfloat16
    views = bf16.render(latent, **poses)
    assert views.dtype == torch.float32
    mse = ((views - reference) ** 2).mean()
    assert 10 * torch.log10(1 / mse) > 30  # dB
    # a float32 latent given to a bf16 renderer is converted, not refused
    torch.testing.assert_close(bf16.render(latent.float(), **poses), views)


def test_fp32_cpu_default_runs_the_decoders_2d_convolutions_channels_last() -> None:
    """The fp32 CPU default converts only the decoder's 2D convolutions, and renders what the
    all-contiguous renderer renders."""
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    poses = dict(azimuth=[0.0, 40.0, 200.0], elevation=[0.0, -30.0, 60.0], dt=[0, 1, -0.5])
    default, plain = _renderer(), _renderer(channels_last=False)
    assert not default.channels_last
    for name, layer in default.renderer.named_modules():
        if (
            isinstance(layer, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
            and layer.kernel_size[0] > 1
        ):
            wanted = name.startswith("decoder.")
            assert layer.weight.is_contiguous(memory_format=torch.channels_last) == wanted, name
    latent = default.encode(image)
    torch.testing.assert_close(latent, plain.encode(image), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        default.render(latent, **poses), plain.render(latent, **poses), atol=1e-5, rtol=0
    )


def _no_probe(dtype: torch.dtype, rounds: int) -> list[float]:
    raise AssertionError("the bf16 probe ran where nothing needs measuring")


def test_precision_choices_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acceleration, "_probe_seconds", _no_probe)
    bf16_speedup.cache_clear()
    try:
        assert inference_dtype("fp32", CPU) == torch.float32
        with pytest.raises(ValueError, match="use one of"):
            inference_dtype("fp16", CPU)
        kept = training_precision("32-true", "cpu")  # a setting other than auto is kept as is
        assert kept.record() == {"setting": "32-true", "precision": "32-true", "bf16_speedup": None}
        # Native bf16 on a GPU is enough: nothing is measured there.
        monkeypatch.setattr(acceleration, "bf16_native", lambda device: True)
        gpu = training_precision("auto", "cuda")
        assert gpu.record() == {"setting": "auto", "precision": "bf16-mixed", "bf16_speedup": None}
        # Without native bf16 (it would be emulated): float32, unmeasured; bf16 is refused.
        monkeypatch.setattr(acceleration, "bf16_native", lambda device: False)
        assert inference_dtype("auto", CPU) == torch.float32
        assert training_precision("auto", "cpu") == ("auto", "32-true", None)
        with pytest.raises(ValueError, match="no native bfloat16 support"):
            inference_dtype("bf16", CPU)
    finally:
        bf16_speedup.cache_clear()


def test_composing_a_config_measures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CPU trainer's precision is decided where the trainer is built, not while the config
    # resolves: composing (and resolving) never runs the probe.
    def probe(dtype, rounds):
        raise AssertionError("the bf16 probe ran while a config resolved")

    monkeypatch.setattr(acceleration, "_probe_seconds", probe)
    bf16_speedup.cache_clear()
    try:
        cfg = compose_config(["experiment=bend_20t_cpu", "paths.output_dir=/tmp"])
        resolved = OmegaConf.to_container(cfg.trainer, resolve=True)
        assert resolved["precision"] == "auto"
    finally:
        bf16_speedup.cache_clear()


@pytest.mark.parametrize(
    ("fp32_s", "bf16_s", "chosen"),
    [(1.0, 0.5, True), (1.0, 0.9, False), (1.0, 1.3, False)],  # 2x, 1.1x (a tie), 0.77x
)
def test_auto_precision_picks_bf16_only_where_it_measures_faster(
    monkeypatch: pytest.MonkeyPatch, fp32_s: float, bf16_s: float, chosen: bool
) -> None:
    # Native bf16 that runs slower than float32 (an Intel Xeon without AMX) must not be picked.
    monkeypatch.setattr(acceleration, "bf16_native", lambda device: True)
    seconds = {torch.float32: fp32_s, torch.bfloat16: bf16_s}
    monkeypatch.setattr(acceleration, "_probe_seconds", lambda dtype, rounds: [seconds[dtype]])
    bf16_speedup.cache_clear()
    try:
        assert bf16_pays("cpu") is chosen
        choice = training_precision("auto", "cpu")
        assert choice.precision == ("bf16-mixed" if chosen else "32-true")
        assert choice.record()["bf16_speedup"] == round(fp32_s / bf16_s, 3)
        assert inference_dtype("auto", CPU) == (torch.bfloat16 if chosen else torch.float32)
    finally:
        bf16_speedup.cache_clear()


def test_the_probe_interleaves_the_dtypes_and_measures_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A load spike slows whichever dtype runs during it; the best interleaved round of each
    # dtype is compared, so one slow round (5 s, 3 s below) does not decide the choice.
    seconds = {torch.float32: iter([1.0, 5.0, 1.0]), torch.bfloat16: iter([0.5, 0.5, 3.0])}
    order = []

    def probe(dtype: torch.dtype, rounds: int) -> list[float]:
        order.append(dtype)
        return [next(seconds[dtype]) for _ in range(rounds)]

    monkeypatch.setattr(acceleration, "bf16_native", lambda device: True)
    monkeypatch.setattr(acceleration, "_probe_seconds", probe)
    bf16_speedup.cache_clear()
    try:
        assert bf16_speedup("cpu") == pytest.approx(2.0)
        assert order == [torch.float32, torch.bfloat16] * 3  # a busy spell slows both alike
        assert bf16_pays("cpu") and bf16_speedup("cpu") == pytest.approx(2.0)
        assert len(order) == 6  # measured once per process
        assert bf16_speedup("cuda") is None  # no probe off the CPU
    finally:
        bf16_speedup.cache_clear()


def test_channels_last_converts_every_convolution() -> None:
    model, _ = _tiny_model()
    to_channels_last(model)
    for layer in model.modules():
        if isinstance(layer, torch.nn.Conv3d):
            assert layer.weight.is_contiguous(memory_format=torch.channels_last_3d)
        elif isinstance(layer, torch.nn.Conv2d) and layer.weight.shape[-1] > 1:
            assert layer.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_compiled_renderer_matches_eager() -> None:
    image = torch.rand(1, 3, 32, 32)
    eager, compiled = _renderer(), _renderer(compile=True)
    torch.testing.assert_close(
        compiled.render(compiled.encode(image), 30.0, 10.0, 1),
        eager.render(eager.encode(image), 30.0, 10.0, 1),
        atol=1e-4,
        rtol=0,
    )


def test_few_channel_group_norm_gives_the_same_result_on_channels_last_input() -> None:
    from temporal_nsr.model.blocks import GroupNorm

    x = torch.randn(2, 3, 6, 6, 6)
    norm = GroupNorm(1, 3)
    expected = torch.nn.functional.group_norm(x, 1, norm.weight, norm.bias, norm.eps)
    out = norm(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, expected)
    assert set(norm.state_dict()) == {"weight", "bias"}  # checkpoints keep their keys


def test_matrix_ssim_gives_the_loss_curve_of_torchmetrics_ssim(monkeypatch) -> None:
    from torchmetrics.functional.image import structural_similarity_index_measure

    from temporal_nsr.training import losses

    ours, cfg = _tiny_model("model.ssim_weight=0.5")
    theirs = copy.deepcopy(ours)
    curve = _loss_curve(ours, cfg, 4)
    monkeypatch.setattr(
        losses, "ssim", lambda p, t: structural_similarity_index_measure(p, t, data_range=1.0)
    )
    assert curve == pytest.approx(_loss_curve(theirs, cfg, 4), abs=1e-5)
