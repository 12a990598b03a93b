"""The dataset error class, apart from the dataset reader so that what only names folders
(`temporal_nsr.data.folders`, the ``generate`` command) needs no torch."""

from __future__ import annotations

from temporal_nsr.errors import UserError


class DatasetError(UserError):
    """A dataset on disk does not match the format; the message names the file and the fix."""
