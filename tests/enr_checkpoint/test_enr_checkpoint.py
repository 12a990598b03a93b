"""Original ENR checkpoint files: format, key and slot mapping, golden renders, CLI, fine-tuning.

The files are built here in ENR's format (``NeuralRenderer.save``: {"config", "state_dict"})
from known tensors: seeded normal draws, one key after another in sorted key order
(``known_state``). The golden values were computed ONCE with the original code, outside this
repository: the same files loaded by apple/ml-equivariant-neural-rendering's
``models.neural_renderer.load_model`` (ENR) and by the temporal fork's ``NeuralRenderer(...,
temporal_channels=4)`` + ``load_state_dict`` (Goreg12345/ml-equivariant-neural-rendering, whose
own ``load_model`` ignores the file's config), then ``inverse_render`` -> (fork: reshape to
(1, T, C, D, H, W), pick slot dt + T // 2, ``spherical_mask``) -> ``rotate_source_to_target``
-> ``render`` on ``INPUT`` at ``SOURCE_POSE`` -> ``TARGET_POSES``, with torch 2.13 on CPU.
Both strict loads succeeding is also what checks that ``enr_key`` names every layer as ENR does.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torch import Tensor

import temporal_nsr.training.fit as fit_module
from temporal_nsr.config import compose_config
from temporal_nsr.enr_checkpoint import ENR_PREFIXES, enr_config, model_overrides, rename_enr_key
from temporal_nsr.evaluate import evaluate
from temporal_nsr.inference import NovelViewRenderer
from temporal_nsr.model.encoder import Encoder, spherical_mask
from temporal_nsr.render import render
from temporal_nsr.runs import (
    RUN_CONFIG,
    CheckpointError,
    load_checkpoint,
    load_initial_weights,
    run_datamodule,
)
from temporal_nsr.training.fit import train
from temporal_nsr.training.module import TemporalNSRModule

# A 32 px ENR model: 2D 32 -> 16 -> 8 px, depth 8, scene C = 2 on 8^3 (lift: -2, 1, 1).
ENR_CONFIG = {
    "img_shape": [3, 32, 32],
    "channels_2d": [8, 8, 16],
    "strides_2d": [1, 2, 2],
    "channels_3d": [4, 8, 2, 2, 2],
    "strides_3d": [1, 2, -2, 1, 1],
    "num_channels_inv_projection": [32, 32],
    "num_channels_projection": [32, 16],
    "mode": "bilinear",
}
FORK_SLOTS = 4  # T of the temporal file: its slots hold dt = -2..1, ours -1..1
SOURCE_POSE = (30.0, 20.0)  # azimuth, elevation in degrees
TARGET_POSES = ((30.0, 20.0), (100.0, -10.0), (250.0, 45.0), (0.0, 0.0))
PIXELS = ((0, 5, 7), (1, 16, 16), (2, 30, 2))  # (channel, row, column)

# From the original ENR code (module docstring): per target pose, the pixels PIXELS and the
# sum over the whole (3, 32, 32) render.
GOLDEN_ENR = {
    "pixels": [
        [0.57385, 0.698299, 0.577509],
        [0.518977, 0.475155, 0.559027],
        [0.578766, 0.851076, 0.554049],
        [0.391508, 0.858567, 0.595822],
    ],
    "sums": [1625.5892, 1616.8256, 1616.0026, 1627.037],
}
# From the temporal fork, at TARGET_POSES[1], per dt in (-1, 0, 1): PIXELS and the sum.
GOLDEN_FORK = {
    "pixels": [
        [0.002902, 0.571796, 0.383586],
        [0.013737, 0.496238, 0.341033],
        [0.00188, 0.474924, 0.339787],
    ],
    "sums": [1037.2686, 1035.4971, 1036.4996],
}


def enr_key(ours: str) -> str:
    """Our TemporalNSRModule key -> the name ENR's NeuralRenderer gives that parameter."""
    for theirs, prefix in ENR_PREFIXES:
        if ours.startswith(prefix):
            return theirs + ours[len(prefix) :].replace("body.", "residual_layers.forward_layers.")
    raise KeyError(ours)


def known_state(config: dict, slots: int = 1, seed: int = 0) -> dict[str, Tensor]:
    """ENR state dict of a model with `config` (T = `slots`) filled with known tensors."""
    architecture = {k: v for k, v in config.items() if k != "temporal_channels"}
    module = _our_module(architecture, slots)
    shapes = {enr_key(k): tuple(v.shape) for k, v in module.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key in sorted(shapes):
        shape = shapes[key]
        draw = torch.randn(shape, generator=generator)
        if len(shape) == 1:  # GroupNorm weight / bias, conv bias
            state[key] = (1.0 if key.endswith("weight") else 0.0) + 0.3 * draw
        else:  # conv weight: variance 1.5 / fan-in keeps activations of order 1
            state[key] = draw * math.sqrt(1.5 / math.prod(shape[1:]))
    side = 8
    state["spherical_mask.mask"] = spherical_mask(side).expand(
        config["channels_3d"][-1], -1, -1, -1
    )
    return state


def _our_module(config: dict, slots: int) -> TemporalNSRModule:
    """Our module of that architecture, built the way the loader builds it (no file)."""
    lift = config["channels_3d"][-1] * slots
    fake = {"inv_transform_3d.forward_layers.9.weight": torch.zeros(lift)}
    return instantiate(enr_config(config, fake, Path("known")).model)


def write_enr(path: Path, config: dict, slots: int = 1, **changes) -> Path:
    """Write an ENR-format file; `changes` replace (or, as None, delete) state-dict entries."""
    state = known_state(config, slots)
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del state[key]
        else:
            state[key] = value
    torch.save({"config": config, "state_dict": state}, path)
    return path


def input_image() -> Tensor:
    """(1, 3, 32, 32) smooth colour pattern in [0.05, 0.95], no randomness involved."""
    y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    channels = [torch.sin(x / 5 + c) * torch.cos(y / 7 - c) for c in range(3)]
    return (0.5 + 0.45 * torch.stack(channels))[None]


def _renders(run, dt: int, poses=TARGET_POSES) -> Tensor:
    net = run.renderer
    with torch.no_grad():
        latent = net.encode(input_image())[0]
        n = len(poses)
        return net.render_views(
            latent, torch.tensor(SOURCE_POSE), torch.tensor(poses), torch.full((n,), dt)
        )


def _check_golden(images: Tensor, pixels: list[list[float]], sums: list[float]) -> None:
    """PIXELS of each image within 1e-4 of `pixels`, image sums within 1e-5 relative."""
    ours = torch.tensor([[float(image[c, r, col]) for c, r, col in PIXELS] for image in images])
    torch.testing.assert_close(ours, torch.tensor(pixels), atol=1e-4, rtol=0)
    torch.testing.assert_close(images.sum((1, 2, 3)), torch.tensor(sums), atol=0, rtol=1e-5)


@pytest.fixture(scope="module")
def enr_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_enr(tmp_path_factory.mktemp("enr") / "enr.pt", ENR_CONFIG)


@pytest.fixture(scope="module")
def fork_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_enr(tmp_path_factory.mktemp("fork") / "fork.pt", ENR_CONFIG, FORK_SLOTS)


def test_keys_map_prefix_by_prefix() -> None:
    pairs = {
        "inv_transform_2d.forward_layers.1.residual_layers.forward_layers.2.weight":
            "renderer.encoder.resnet_2d.layers.1.body.2.weight",
        "inv_projection.forward_layers.0.bias": "renderer.encoder.inverse_projection.layers.0.bias",
        "inv_transform_3d.forward_layers.4.weight": "renderer.encoder.resnet_3d.layers.4.weight",
        "transform_3d.forward_layers.3.weight": "renderer.decoder.resnet_3d.layers.3.weight",
        "projection.forward_layers.1.weight": "renderer.decoder.projection.layers.1.weight",
        "transform_2d.forward_layers.6.bias": "renderer.decoder.resnet_2d.layers.6.bias",
    }  # fmt: skip
    for theirs, ours in pairs.items():
        assert rename_enr_key(theirs) == ours
        assert enr_key(ours) == theirs
    assert rename_enr_key("spherical_mask.mask") is None
    assert rename_enr_key("rotation_layer.weight") is None


def test_enr_file_loads_as_the_rotation_only_model(enr_file: Path) -> None:
    run = load_checkpoint(enr_file)
    encoder = run.cfg.model.renderer.encoder
    assert encoder.max_offset == 0 and encoder.image_size == 32
    assert run.cfg.model.renderer.decoder.image_size == 32 and encoder.latent_channels == 2
    assert "data" not in run.cfg  # the file names no dataset; the one check is where one opens
    with pytest.raises(CheckpointError, match=rf"^{enr_file} names no dataset .*image=.*data="):
        run_datamodule(run.cfg)
    assert list(encoder.channels_3d) == [4, 8] and list(encoder.lift_strides) == [-2, 1, 1]
    assert run.cfg.enr.format == "enr" and run.cfg.enr.temporal_channels == 1
    assert OmegaConf.to_container(run.cfg.enr.config) == ENR_CONFIG
    assert not run.renderer.training and run.step is None
    # Every tensor arrives unchanged under its new name; the mask is not stored.
    state = known_state(ENR_CONFIG)
    ours = {f"renderer.{k}": v for k, v in run.renderer.state_dict().items()}
    assert len(ours) == len(state) - 1
    for key, value in ours.items():
        assert torch.equal(value, state[enr_key(key)]), key


def test_enr_renders_match_the_original_code(enr_file: Path) -> None:
    images = _renders(load_checkpoint(enr_file), 0)
    assert images.shape == (4, 3, 32, 32)
    _check_golden(images, GOLDEN_ENR["pixels"], GOLDEN_ENR["sums"])


def test_fork_slots_map_onto_ours(fork_file: Path) -> None:
    run = load_checkpoint(fork_file)
    enr = run.cfg.enr
    # Their slot j holds dt = j - T // 2 = j - 2, i.e. -2..1; ours are symmetric: -1..1.
    assert enr.format == "temporal_enr" and enr.temporal_channels == FORK_SLOTS
    assert run.cfg.model.renderer.encoder.max_offset == 1 and run.renderer.max_offset == 1
    assert list(enr.their_slots_kept) == [1, 2, 3] and list(enr.their_slots_dropped) == [0]
    for i, dt in enumerate((-1, 0, 1)):
        image = _renders(run, dt, TARGET_POSES[1:2])
        _check_golden(image, GOLDEN_FORK["pixels"][i : i + 1], GOLDEN_FORK["sums"][i : i + 1])
    for dt in (-2, 2):  # -2: their never-matched slot 0; +2: beyond what they represent
        with pytest.raises(ValueError, match=r"\[-1, 1\]"):
            _renders(run, dt)


def test_latent_slots_must_fit_in_the_lift() -> None:
    sizes = {"image_size": 32, "latent_channels": 2, "channels_2d": [8], "strides_2d": [1],
             "inverse_projection": [32], "channels_3d": [4], "strides_3d": [1],
             "lift_strides": [1]}  # fmt: skip
    latent = Encoder(max_offset=1, lift_slots=4, first_slot=1, **sizes)(input_image())
    assert latent.shape == (1, 3, 2, 32, 32, 32)
    with pytest.raises(
        ValueError, match="K = 3 slots .* must fit in the lift's 4 slots from first"
    ):
        Encoder(max_offset=1, lift_slots=4, first_slot=2, **sizes)


def test_declared_slot_count_must_agree_with_the_weights(tmp_path: Path) -> None:
    config = {**ENR_CONFIG, "temporal_channels": FORK_SLOTS}
    assert load_checkpoint(write_enr(tmp_path / "a.pt", config, FORK_SLOTS)).renderer
    wrong = write_enr(tmp_path / "b.pt", {**ENR_CONFIG, "temporal_channels": 5}, FORK_SLOTS)
    with pytest.raises(CheckpointError, match="temporal_channels'] = 5 but the weights hold 4"):
        load_checkpoint(wrong)


def test_shape_mismatch_names_the_layer(tmp_path: Path) -> None:
    bad = write_enr(tmp_path / "bad.pt", ENR_CONFIG, transform_2d__forward_layers__0__weight=
                    torch.zeros(9, 16, 1, 1))  # fmt: skip
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(bad)
    message = str(error.value)
    assert str(bad) in message and "\n" not in message
    assert (
        "renderer.decoder.resnet_2d.layers.0.weight (the file's transform_2d.forward_layers"
        ".0.weight) has shape (9, 16, 1, 1) in the checkpoint but (8, 16, 1, 1)" in message
    )
    ball = write_enr(tmp_path / "ball.pt", ENR_CONFIG, spherical_mask__mask=torch.ones(2, 8, 8, 8))
    with pytest.raises(CheckpointError, match="is not the full inscribed ball of a 8\\^3 grid"):
        load_checkpoint(ball)
    missing = write_enr(
        tmp_path / "missing.pt", ENR_CONFIG, projection__forward_layers__0__bias=None
    )
    with pytest.raises(CheckpointError, match="has no renderer.decoder.projection.layers.0.bias"):
        load_checkpoint(missing)


UNKNOWN_KEY = {
    "decoder.w": torch.zeros(1),
    "inv_transform_3d.forward_layers.0.weight": torch.zeros(2),
}
BAD_FILES = [
    (b"not a torch file", "is not a torch checkpoint file"),
    ([1, 2], "holds a list, not a dict"),
    (
        {"model": {}, "weights": {}},
        r"unknown checkpoint format \(a dict with keys \[model, weights",
    ),
    ({"config": {"img_shape": [3, 32, 32]}, "state_dict": {}}, "config has no 'channels_2d'"),
    ({"config": ENR_CONFIG, "state_dict": UNKNOWN_KEY}, "'decoder.w' matches no ENR layer"),
    ({"config": {**ENR_CONFIG, "img_shape": [3, 32, 24]}, "state_dict": {}}, "square RGB"),
    ({"config": {**ENR_CONFIG, "strides_2d": [2, 2, 1]}, "state_dict": {}}, r"2d'\]\[0\] = 2"),
]


@pytest.mark.parametrize(("content", "match"), BAD_FILES)
def test_bad_files_are_one_line_errors(tmp_path: Path, content, match: str) -> None:
    path = tmp_path / "file.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=match) as error:
        NovelViewRenderer.from_checkpoint(path, device="cpu")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_our_ckpt_loads_alone_and_an_old_one_in_its_run_folder(
    tiny_run: Path, tmp_path: Path
) -> None:
    """A .ckpt stores its run's config, so the file alone is the model; one written before
    (no stored config) takes its run folder's, and outside it names the missing recipe."""
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    reference = NovelViewRenderer.from_run(tiny_run, "last", device="cpu")
    image = input_image()
    expected = reference.render(reference.encode(image), 30, 10, 1)
    alone = tmp_path / "alone.ckpt"
    alone.write_bytes(ckpt.read_bytes())
    loaded = NovelViewRenderer.from_checkpoint(alone, device="cpu")
    assert torch.equal(loaded.render(loaded.encode(image), 30, 10, 1), expected)
    assert loaded.config.model == reference.config.model  # resolved: the same tree
    assert loaded.config.data.image_size == 32 and loaded.config.data.max_offset == 2
    # An old file: the same checkpoint without its stored config.
    old = torch.load(ckpt, weights_only=True)
    del old[RUN_CONFIG]
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".hydra").symlink_to(tiny_run / ".hydra")
    torch.save(old, run / "checkpoints" / "old.ckpt")
    loaded = NovelViewRenderer.from_checkpoint(run / "checkpoints" / "old.ckpt", device="cpu")
    assert torch.equal(loaded.render(loaded.encode(image), 30, 10, 1), expected)
    torch.save(old, tmp_path / "old_alone.ckpt")
    with pytest.raises(
        CheckpointError, match=r"stores no config .*\.hydra/config\.yaml, the recipe of its model"
    ):
        load_checkpoint(tmp_path / "old_alone.ckpt")


def test_render_cli_takes_an_enr_file(enr_file: Path, tmp_path: Path) -> None:
    image = tmp_path / "input.png"
    Image.fromarray((input_image()[0].permute(1, 2, 0) * 255).byte().numpy()).save(image)
    overrides = [f"ckpt={enr_file}", "device=cpu", "turntable_views=4", "interpolation_steps=0",
                 f"paths.output_dir={tmp_path}/out"]  # fmt: skip
    written = render(compose_config([*overrides, f"image={image}"], "render"))
    assert {p.parent for p in written} == {tmp_path / "out" / "input"}
    assert {"slots.png", "turntable.gif"} <= {p.name for p in written}
    with pytest.raises(CheckpointError, match=r"names no dataset .*render it with image="):
        render(compose_config(overrides, "render"))
    with pytest.raises(CheckpointError, match="exactly one of them"):
        render(compose_config([*overrides, f"run_dir={tmp_path}"], "render"))


def test_evaluate_cli_takes_an_enr_file_and_a_dataset(
    enr_file: Path, tiny_data: Path, tmp_path: Path
) -> None:
    base = [f"ckpt={enr_file}", "device=cpu", f"paths.output_dir={tmp_path}/out"]
    with pytest.raises(CheckpointError, match=r"names no dataset .*evaluate it with data=bend"):
        evaluate(compose_config(base, "evaluate"))
    data = ["data=bend", f"data.root={tiny_data}", "data.image_size=32", "data.num_timesteps=6"]
    results = evaluate(compose_config([*base, *data, f"baseline_run_dir={enr_file}"], "evaluate"))
    assert Path(results["out_dir"]) == tmp_path / "out"
    assert (tmp_path / "out" / "results.md").is_file()
    assert results["run_dir"] is None and results["enr"]["format"] == "enr"
    same_time = results["splits"]["val"]["by_setting"]["same_time"]
    # The ENR file is both the model and the baseline: identical scores on identical pairs.
    assert same_time["model"] == same_time["baseline"]
    with pytest.raises(CheckpointError, match="data.image_size=64 but the model takes 32 px"):
        evaluate(compose_config([*base, *data, "data.image_size=64"], "evaluate"))


def _train_cfg(tiny_data: Path, tmp_path: Path, *extra: str):
    return compose_config(
        ["experiment=tiny", "logger=none", "callbacks=none", f"data.root={tiny_data}",
         f"paths.output_dir={tmp_path}", f"hydra.run.dir={tmp_path}", "+trainer.fast_dev_run=1",
         *extra]
    )  # fmt: skip


def test_fine_tune_from_an_enr_file(
    enr_file: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = []

    def spy(module, path):
        load_initial_weights(module, path)
        loaded.append({k: v.clone() for k, v in module.state_dict().items()})

    monkeypatch.setattr(fit_module, "load_initial_weights", spy)
    architecture = model_overrides(load_checkpoint(enr_file).cfg)
    metrics = train(_train_cfg(tiny_data, tmp_path, *architecture, f"init_from={enr_file}"))
    assert math.isfinite(metrics["train/loss"])
    state = known_state(ENR_CONFIG)
    assert all(torch.equal(v, state[enr_key(k)]) for k, v in loaded[0].items())


def test_fine_tune_shape_mismatch_names_the_first_layer(
    enr_file: Path, fork_file: Path, tiny_data: Path, tmp_path: Path
) -> None:
    # experiment=tiny builds another architecture than the file's.
    with pytest.raises(CheckpointError) as error:
        train(_train_cfg(tiny_data, tmp_path, f"init_from={enr_file}"))
    message = str(error.value)
    assert message.startswith(f"init_from={enr_file} does not fit the model: ")
    assert "renderer.encoder.resnet_3d.layers.2.weight (the file's inv_transform_3d" in message
    assert "build the file's architecture with data.image_size=32 data.max_offset=0" in message
    # The fork's file needs its 4 lift slots; the overrides say so and then fit.
    fork = model_overrides(load_checkpoint(fork_file).cfg)
    assert "+model.renderer.encoder.lift_slots=4" in fork
    assert "+model.renderer.encoder.first_slot=1" in fork
    module = instantiate(load_checkpoint(fork_file).cfg.model)
    load_initial_weights(module, fork_file)


def test_fine_tune_from_our_ckpt(tiny_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    metrics = train(_train_cfg(tiny_data, tmp_path, f"init_from={ckpt}"))
    assert math.isfinite(metrics["train/loss"])
    with pytest.raises(CheckpointError, match="train with the config of the run that wrote it"):
        train(_train_cfg(tiny_data, tmp_path / "b", f"init_from={ckpt}", "data.max_offset=1"))


def test_an_enr_file_cannot_run_code(enr_file: Path, tmp_path: Path) -> None:
    from tests.test_inference import malicious_checkpoint

    marker = tmp_path / "marker"
    state = torch.load(enr_file, weights_only=True)
    bad = malicious_checkpoint(tmp_path / "chairs.pt", marker, state)
    for load in (load_checkpoint, NovelViewRenderer.from_checkpoint):
        with pytest.raises(CheckpointError, match="could run code") as error:
            load(bad)
        assert str(bad) in str(error.value) and "\n" not in str(error.value)
    module = TemporalNSRModule.__new__(TemporalNSRModule)
    with pytest.raises(CheckpointError, match="could run code"):
        load_initial_weights(module, bad)  # init_from=
    assert not marker.exists()
