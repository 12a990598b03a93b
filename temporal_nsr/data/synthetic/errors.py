"""The generator's error class, apart so that the config and the registries it reads share it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from temporal_nsr.errors import UserError

T = TypeVar("T")


class GeneratorConfigError(UserError):
    """A ``data.generator`` / ``backend`` setting the generator cannot use; the one-line message
    names the key and the fix."""


def registered(registry: Mapping[str, T], name: str, key: str) -> T:
    """``registry[name]`` (a family, a profile), or a one-line error naming ``key`` and the
    registered names."""
    if name not in registry:
        raise GeneratorConfigError(
            f"Generator key '{key}' is {name!r}; choose one of {sorted(registry)}."
        )
    return registry[name]
