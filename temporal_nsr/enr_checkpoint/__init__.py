"""Original ENR files (and its temporal fork's) in our terms: the ``enr`` checkpoint format.

convert   an ENR / temporal-ENR file's config and state dict in our terms (the slot mapping),
          registered with ``temporal_nsr.runs`` as ``EnrFormat``

Reading files, their formats, fitting weights and ``init_from=`` are ``temporal_nsr.runs``'s.
"""

from temporal_nsr.enr_checkpoint.convert import (
    ENR_PREFIXES,
    EnrFormat,
    EnrModel,
    enr_config,
    enr_model,
    model_overrides,
    rename_enr_key,
)

__all__ = [
    "ENR_PREFIXES",
    "EnrFormat",
    "EnrModel",
    "enr_config",
    "enr_model",
    "model_overrides",
    "rename_enr_key",
]
