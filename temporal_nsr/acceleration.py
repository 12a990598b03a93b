"""Fast paths measured by ``temporal_nsr.bench``: reduced precision, memory format, allocator.

Each switch here changes only how the network runs, never what it computes beyond rounding:

* ``inference_dtype``: bfloat16 where the hardware has native bf16 (CUDA with bf16, or a CPU
  whose oneDNN build reports bf16 support, e.g. AVX512-BF16 / AMX); about 2x faster on such a
  CPU, renders within ~40 dB PSNR of float32.
* ``to_channels_last``: NHWC / NDHWC weights, which oneDNN's bf16 convolutions prefer (it pays
  in bf16 inference, not in float32 or in training; see docs/performance.md).
* ``keep_freed_memory``: stop glibc from returning large freed tensors to the OS, which is
  re-faulted page by page on the next step (docs/design.md §7).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import torch
from omegaconf import OmegaConf
from torch import nn

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively (fast), not by emulation."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    return False


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """dtype to run inference in: "fp32", "bf16", or "auto" (bf16 where it is native).

    Raises:
        ValueError: an unknown precision, or "bf16" on a device without native bf16.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: use one of {PRECISIONS}")
    if precision == "fp32" or (precision == "auto" and not bf16_native(device)):
        return torch.float32
    if not bf16_native(device):
        raise ValueError(
            f"precision=bf16: {device} has no native bfloat16 support (it would be slower "
            "than float32); use precision=fp32 or auto"
        )
    return torch.bfloat16


def to_channels_last(module: nn.Module) -> nn.Module:
    """Convert the weights of every 2D / 3D (transposed) convolution to channels-last, in place."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            layer.to(memory_format=torch.channels_last)
        elif isinstance(layer, nn.Conv3d | nn.ConvTranspose3d):
            layer.to(memory_format=torch.channels_last_3d)
    return module


def keep_freed_memory(top_pad_mb: int = 256) -> bool:
    """Keep freed tensors in the process heap instead of returning them to the OS (glibc).

    glibc serves allocations above its mmap threshold (at most 32 MB) with fresh mmaps and
    unmaps them on free, so every large activation of every training step is page-faulted
    in again. Raising the mmap and trim thresholds keeps that memory mapped and reused.
    Process-wide and irreversible; a no-op returning False where glibc is absent.

    Args:
        top_pad_mb: extra heap grown per request, so the heap grows in few large steps.
    """
    name = ctypes.util.find_library("c")
    if name is None or "libc.so" not in name:
        return False
    try:
        libc = ctypes.CDLL(name)
        done = (
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)  # 1 GiB: larger blocks still get mmaps
            and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1)
            and libc.mallopt(_M_TOP_PAD, top_pad_mb << 20)
        )
    except (OSError, AttributeError):
        return False
    log.debug("glibc heap kept across steps: %s", bool(done))
    return bool(done)


def cpu_training_precision() -> str:
    """Lightning precision for CPU training: "bf16-mixed" where bf16 is native, else "32-true".

    Registered as the config resolver ``${cpu_precision:}`` (conf/trainer/cpu.yaml).
    """
    return "bf16-mixed" if bf16_native(torch.device("cpu")) else "32-true"


OmegaConf.register_new_resolver("cpu_precision", cpu_training_precision, replace=True)
