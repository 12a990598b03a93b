"""ENR and temporal-ENR files in our terms: their config -> our run config, their state-dict
keys -> ours.

**ENR format** (apple/ml-equivariant-neural-rendering, ``NeuralRenderer.save``; its published
chairs, cars, mugs and mountains models): ``torch.save`` of a dict ``{"config": ...,
"state_dict": ...}``. The config holds the architecture: ``img_shape`` [3, S, S],
``channels_2d``, ``strides_2d``, ``channels_3d``, ``strides_3d``,
``num_channels_inv_projection``, ``num_channels_projection``, ``mode``. Such a file becomes our
rotation-only model: max_offset = 0 and C = ``channels_3d[-1]`` (64 in every published model).
State-dict keys are renamed prefix by prefix (``ENR_PREFIXES``; inside residual blocks
``residual_layers.forward_layers`` becomes ``body``); ENR's ``spherical_mask.mask`` is checked
against our mask and dropped (ours is a non-persistent buffer).

**Temporal fork** (Goreg12345/ml-equivariant-neural-rendering): the same format, but the last
three stages of ``inv_transform_3d`` (the lift) have T times ``channels_3d[-1]`` channels, read
as T slots of C channels (channel = slot * C + c, as ours). Its ``save`` writes the same config
keys as ENR's, without ``temporal_channels`` (only the run's config.json has it), so T is read
from the weights; a ``temporal_channels`` entry, when a file has one, must agree with them.

**Slot mapping.** For a pair with dt = t_b - t_a the fork renders its slot j = dt + T // 2
(its ``int(T / 2)``). Its slots therefore hold dt = -T // 2 .. T - 1 - T // 2, one more
negative offset than positive: for T = 20, dt = -10 .. 9, and a pair with dt = 10 raised an
IndexError while dt < -10 silently read slot dt + 30 (docs/design.md §3.3, "The original
fork's defect, not reproduced"). Our latent is symmetric (slot k holds dt = k - M,
K = 2 M + 1), so the loader takes M = min(T // 2, T - 1 - T // 2) and our slot k = their
slot k + T // 2 - M:

* T = 20 (the fork's models): M = 9; our slots 0..18 (dt = -9..9) are their slots 1..19;
  their slot 0 (dt = -10) has no counterpart: the encoder still computes it (the lift's
  convolutions and GroupNorms mix all slots, so it cannot be cut from the weights) and drops
  it (``Encoder(lift_slots=20, first_slot=1)``);
* T = 40 (the fork's example config.json): M = 19, their slots 1..39, slot 0 dropped;
* odd T keeps every slot.

An offset outside [-M, M] (for T = 20: dt = -10, which its mirror dt = +10 cannot match, and
anything the fork could not represent) raises ValueError naming the bound, from
``SceneRenderer.select_slot``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from temporal_nsr.config import CONF_DIR
from temporal_nsr.model.encoder import spherical_mask
from temporal_nsr.runs import (
    FIX_FORMAT,
    CheckpointError,
    CheckpointFormat,
    StoredModel,
    register_format,
)

# ENR module prefix -> ours (as keys of TemporalNSRModule, whose network is `renderer`).
ENR_PREFIXES = (
    ("inv_transform_2d.forward_layers.", "renderer.encoder.resnet_2d.layers."),
    ("inv_projection.forward_layers.", "renderer.encoder.inverse_projection.layers."),
    ("inv_transform_3d.forward_layers.", "renderer.encoder.resnet_3d.layers."),
    ("transform_3d.forward_layers.", "renderer.decoder.resnet_3d.layers."),
    ("projection.forward_layers.", "renderer.decoder.projection.layers."),
    ("transform_2d.forward_layers.", "renderer.decoder.resnet_2d.layers."),
)
ENR_BLOCK, OUR_BLOCK = ".residual_layers.forward_layers.", ".body."
ENR_MASK = "spherical_mask.mask"
ENR_CONFIG_KEYS = (
    "img_shape",
    "channels_2d",
    "strides_2d",
    "channels_3d",
    "strides_3d",
    "num_channels_inv_projection",
    "num_channels_projection",
)
LIFT_STAGES = 3  # the fork multiplies the channels of the last three 3D stages by T


class EnrModel(NamedTuple):
    """What an ENR file describes, in our terms."""

    cfg: DictConfig  # {"model": ..., "enr": ...}: no data, the file names no dataset
    state_dict: dict[str, Tensor]  # TemporalNSRModule keys
    enr_names: dict[str, str]  # our key -> the file's key, for messages


def rename_enr_key(key: str) -> str | None:
    """ENR state-dict key -> ours, or None for a key that has no counterpart."""
    for theirs, ours in ENR_PREFIXES:
        if key.startswith(theirs):
            return ours + key[len(theirs) :].replace(ENR_BLOCK[1:], OUR_BLOCK[1:], 1)
    return None


def _int_list(config: Mapping[str, Any], key: str, path: Path) -> list[int]:
    value = config[key]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) for v in value):
        raise CheckpointError(f"{path}: config['{key}'] must be a list of integers, got {value!r}")
    return [int(v) for v in value]


def _lift_width(state: Mapping[str, Tensor], path: Path) -> int:
    """Channels of the last layer of ENR's inv_transform_3d, read from its weights."""
    prefix = ENR_PREFIXES[2][0]
    layers: dict[int, str] = {}
    for key in state:
        match = re.match(re.escape(prefix) + r"(\d+)\.", key)
        if match:
            layers[int(match.group(1))] = key  # state order: the layer's last parameter wins
    if not layers:
        raise CheckpointError(
            f"{path}: state_dict has no {prefix}* weights (the 3D encoder); {FIX_FORMAT}"
        )
    # A residual block ends with a 1x1 conv (out, hidden, 1, 1, 1); a strided stage with a
    # GroupNorm (out,): either way dim 0 counts the output channels.
    return int(state[layers[max(layers)]].shape[0])


def _check_stages(name: str, channels: list[int], strides: list[int], path: Path) -> None:
    """Reject ENR configs whose layout our blocks do not reproduce."""
    if len(channels) != len(strides) or not channels:
        raise CheckpointError(
            f"{path}: config['channels_{name}'] ({len(channels)}) and config['strides_{name}'] "
            f"({len(strides)}) must be non-empty and of equal length"
        )
    if strides[0] != 1:
        # ENR's forward renderer keeps strides[0] un-negated, ours negates it (mirror_stages).
        raise CheckpointError(
            f"{path}: config['strides_{name}'][0] = {strides[0]}; temporal_nsr loads only ENR "
            "models whose first stage has stride 1 (every published one does)"
        )
    for i in range(1, len(channels)):
        if strides[i] == 1 and channels[i] != channels[i - 1]:
            # ENR builds a residual block there whose output keeps the input's channels.
            raise CheckpointError(
                f"{path}: config['channels_{name}'][{i}] = {channels[i]} changes the width at "
                "stride 1, a layout temporal_nsr does not reproduce"
            )


def enr_config(config: Mapping[str, Any], state: Mapping[str, Tensor], path: Path) -> DictConfig:
    """Our run config for an ENR file: the model node (conf/model/enr.yaml with the file's
    sizes, image size and max_offset included) and an ``enr`` node recording the original
    config and the slot mapping (module docstring); no ``data``: the file names no dataset.

    Raises:
        CheckpointError: a missing or malformed config entry, or a layout we cannot rebuild.
    """
    missing = [key for key in ENR_CONFIG_KEYS if key not in config]
    if missing:
        raise CheckpointError(
            f"{path}: config has no {', '.join(repr(k) for k in missing)}; {FIX_FORMAT}"
        )
    shape = _int_list(config, "img_shape", path)
    if len(shape) != 3 or shape[0] != 3 or shape[1] != shape[2]:
        raise CheckpointError(
            f"{path}: config['img_shape'] = {shape}; temporal_nsr takes square RGB images [3, S, S]"
        )
    channels_2d = _int_list(config, "channels_2d", path)
    strides_2d = _int_list(config, "strides_2d", path)
    channels_3d = _int_list(config, "channels_3d", path)
    strides_3d = _int_list(config, "strides_3d", path)
    _check_stages("2d", channels_2d, strides_2d, path)
    latent_channels = channels_3d[-1]
    width = _lift_width(state, path)
    slots, remainder = divmod(width, latent_channels)
    if remainder or slots < 1:
        raise CheckpointError(
            f"{path}: the 3D encoder ends with {width} channels, not a multiple of "
            f"config['channels_3d'][-1] = {latent_channels}; the file's config and weights "
            "disagree"
        )
    declared = config.get("temporal_channels")
    if declared is not None and declared != slots:
        raise CheckpointError(
            f"{path}: config['temporal_channels'] = {declared} but the weights hold {slots} "
            f"slots of {latent_channels} channels; the file's config and weights disagree"
        )
    if slots > 1:
        if len(channels_3d) < LIFT_STAGES + 1 or len(set(channels_3d[-LIFT_STAGES:])) != 1:
            raise CheckpointError(
                f"{path}: a temporal checkpoint needs its last {LIFT_STAGES} 3D stages at "
                f"one width (the lift); config['channels_3d'] = {channels_3d}"
            )
        lift = LIFT_STAGES
    else:
        # Any trailing stages at width C can be the (one-slot) lift; the fork's three at most.
        lift = 1
        while lift < min(LIFT_STAGES, len(channels_3d) - 1) and channels_3d[-lift - 1] == (
            latent_channels
        ):
            lift += 1
    effective_3d = channels_3d[:-lift] + [width] * lift  # what the file's layers really hold
    _check_stages("3d", effective_3d, strides_3d, path)

    half = slots // 2  # the fork's slot of dt = 0 (int(T / 2))
    max_offset = min(half, slots - 1 - half)
    first_slot = half - max_offset
    kept = list(range(first_slot, first_slot + 2 * max_offset + 1))
    model = OmegaConf.load(CONF_DIR / "model" / "enr.yaml")
    model.loss = str(config.get("loss_type", "l1"))
    model.ssim_weight = float(config.get("ssim_loss_weight", 0.05))
    model.optimizer.lr = float(config.get("lr", 2.0e-4))
    encoder = model.renderer.encoder
    # The numbers conf/model/enr.yaml reads from data (${data.image_size}, ...), set here.
    encoder.image_size = model.renderer.decoder.image_size = shape[1]
    encoder.max_offset = max_offset
    encoder.latent_channels = latent_channels
    encoder.channels_2d, encoder.strides_2d = channels_2d, strides_2d
    encoder.inverse_projection = _int_list(config, "num_channels_inv_projection", path)
    encoder.channels_3d, encoder.strides_3d = channels_3d[:-lift], strides_3d[:-lift]
    encoder.lift_strides = strides_3d[-lift:]
    encoder.lift_slots = slots
    encoder.first_slot = first_slot
    model.renderer.decoder.projection = _int_list(config, "num_channels_projection", path)
    model.renderer.rotation.mode = str(config.get("mode", "bilinear"))
    original = {str(k): v for k, v in config.items() if isinstance(v, (int, float, str, list))}
    cfg = OmegaConf.create(
        {
            "model": model,
            "enr": {
                "checkpoint": str(path),
                "format": "temporal_enr" if slots > 1 else "enr",
                "config": original,
                "temporal_channels": slots,
                "their_slot_of_our_slot_0": first_slot,
                "their_slots_kept": kept,
                "their_slots_dropped": [j for j in range(slots) if j not in kept],
                "offsets": [-max_offset, max_offset],
            },
        }
    )
    OmegaConf.resolve(cfg)
    return cfg


def _check_mask(mask: Tensor, path: Path) -> None:
    """ENR's stored mask must be the full inscribed ball that our encoder applies."""
    side = mask.shape[-1]
    if mask.dim() < 3 or not torch.equal(mask.float(), spherical_mask(side).expand_as(mask)):
        raise CheckpointError(
            f"{path}: {ENR_MASK} is not the full inscribed ball of a {side}^3 grid (was the "
            "model built with radius_fraction < 1?); temporal_nsr masks with the full ball"
        )


def enr_model(checkpoint: Mapping[str, Any], path: str | Path) -> EnrModel:
    """Translate a loaded ENR file: our config, and its weights under our keys.

    Raises:
        CheckpointError: a malformed config, a key no part of our model matches, a mask we do
            not apply, or weights whose shapes disagree with their own config.
    """
    path = Path(path)
    state = checkpoint["state_dict"]
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if len(tensors) != len(state):
        bad = next(k for k, v in state.items() if not isinstance(v, Tensor))
        raise CheckpointError(f"{path}: state_dict[{bad!r}] is not a tensor; {FIX_FORMAT}")
    cfg = enr_config(checkpoint["config"], tensors, path)
    ours: dict[str, Tensor] = {}
    names: dict[str, str] = {}
    for key, value in tensors.items():
        if key == ENR_MASK:
            _check_mask(value, path)
            continue
        renamed = rename_enr_key(key)
        if renamed is None:
            raise CheckpointError(
                f"{path}: state_dict key {key!r} matches no ENR layer (expected prefixes "
                f"{', '.join(p for p, _ in ENR_PREFIXES)} or {ENR_MASK}); {FIX_FORMAT}"
            )
        ours[renamed], names[renamed] = value, key
    return EnrModel(cfg, ours, names)


def model_overrides(cfg: DictConfig) -> list[str]:
    """Command-line overrides that make ``train`` build the architecture of an ENR file."""
    encoder = cfg.model.renderer.encoder

    def listed(values: Any) -> str:
        return "[" + ",".join(str(v) for v in values) + "]"

    out = [
        f"data.image_size={encoder.image_size}",
        f"data.max_offset={encoder.max_offset}",
        f"model.renderer.encoder.latent_channels={encoder.latent_channels}",
    ]
    for key in ("channels_2d", "strides_2d", "inverse_projection", "channels_3d", "strides_3d",
                "lift_strides"):  # fmt: skip
        out.append(f"model.renderer.encoder.{key}={listed(encoder[key])}")
    out.append(f"model.renderer.decoder.projection={listed(cfg.model.renderer.decoder.projection)}")
    if encoder.lift_slots != 2 * encoder.max_offset + 1:
        out.append(f"+model.renderer.encoder.lift_slots={encoder.lift_slots}")
        out.append(f"+model.renderer.encoder.first_slot={encoder.first_slot}")
    return out


@register_format
class EnrFormat(CheckpointFormat):
    """An original ENR or temporal-ENR file: ``{"config": ..., "state_dict": ...}``."""

    name = "enr"

    def recognises(self, checkpoint: Mapping[str, Any]) -> bool:
        return isinstance(checkpoint.get("config"), Mapping) and isinstance(
            checkpoint.get("state_dict"), Mapping
        )

    def read(self, checkpoint: Mapping[str, Any], path: Path) -> StoredModel:
        enr = enr_model(checkpoint, path)
        rebuild = "build the file's architecture with " + " ".join(model_overrides(enr.cfg))
        return StoredModel(enr.cfg, enr.state_dict, enr.enr_names, None, rebuild)
