"""User errors: the one base class of what a command reports in one line, and the one place
that turns such an error (or a full disk) into that line.

Every error a user can fix (a setting, a file, a folder, a checkpoint) is a ``UserError``
subclass named for what it is about (``CheckpointError``, ``DatasetError``, ``FolderError``,
...) whose message is one line naming the thing and the fix. An entry point runs its work
inside ``one_line_errors("<command>")``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class UserError(ValueError):
    """Something the user can fix; the message is one line naming it and the fix.

    A ValueError, as every error class of the package was before this base existed, so code
    that catches ValueError around a setting keeps working.
    """


def disk_full(error: BaseException) -> str | None:
    """One line for a full disk (``ENOSPC``, ``EDQUOT``): the file and the space left; else None."""
    if not isinstance(error, OSError) or error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    where = Path(error.filename) if error.filename else None
    free = ""
    if where is not None:
        probe = next((p for p in (where, *where.parents) if p.exists()), None)
        if probe is not None:
            free = f", {shutil.disk_usage(probe).free / 2**20:.0f} MB free there"
    return (
        f"no space left on the device writing {where or 'a file'}{free}: free some space or "
        "point the output somewhere else; nothing half-written was left behind"
    )


@contextmanager
def one_line_errors(command: str) -> Iterator[None]:
    """Exit with ``<command>: <message>`` (status 1, no traceback) on a ``UserError`` or a full
    disk raised inside the block; every other exception passes unchanged."""
    try:
        yield
    except UserError as error:
        raise SystemExit(f"{command}: {error}") from None
    except OSError as error:
        if (line := disk_full(error)) is None:
            raise
        raise SystemExit(f"{command}: {line}") from None
