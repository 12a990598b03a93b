"""The generator's error class, apart so that the config and the registries it reads share it."""

from __future__ import annotations

from temporal_nsr.errors import UserError


class GeneratorConfigError(UserError):
    """A ``data.generator`` / ``backend`` setting the generator cannot use; the one-line message
    names the key and the fix."""
