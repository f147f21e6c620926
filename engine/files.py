"""Putting finished files into place without clobbering what the user has (torch-free)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import BadInputError


def move_into_place(temporary: Path, path: Path, *, overwrite: bool) -> None:
    """Rename a finished temporary file (same folder) to ``path``.

    Without ``overwrite`` the file is hard-linked into place, which fails if
    the name appeared meanwhile, so nothing is overwritten even in a race; on
    filesystems without hard links the caller's earlier existence check has
    to do.
    """
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError as error:
        raise BadInputError(f"{path} already exists and overwriting was not requested.") from error
    except OSError:
        if path.exists():
            raise BadInputError(f"{path} already exists and overwriting was not requested.") from None
        os.replace(temporary, path)
    else:
        temporary.unlink(missing_ok=True)
