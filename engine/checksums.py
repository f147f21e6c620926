"""File checksums shared by the model loader, the model store, the cache and downloads."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from engine.errors import BadInputError

# (resolved path, device, inode, size, mtime in ns) -> hex digest, for files hashed in this process.
_VERIFIED: dict[tuple[str, int, int, int, int], str] = {}
_VERIFIED_LOCK = threading.Lock()


def sha256_file(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (model files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file_cached(path: str | Path) -> str:
    """:func:`sha256_file`, hashed once per process while the file's size and mtime stay the same.

    A file rewritten in place gets a new mtime (or size) and is hashed again,
    so a changed model file is never passed as the verified one.
    """
    path = Path(path)
    info = os.stat(path)
    key = (str(path.resolve()), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    with _VERIFIED_LOCK:
        known = _VERIFIED.get(key)
    if known is not None:
        return known
    digest = sha256_file(path)
    with _VERIFIED_LOCK:
        _VERIFIED[key] = digest
    return digest


def verify_card_files(folder: str | Path, card: Mapping, *, roles: tuple[str, ...] = ("G", "D")) -> None:
    """Check each file a model card (``model.json``) lists against its recorded SHA-256.

    Raises
    ------
    BadInputError
        One sentence naming the file when the card is malformed, the file is
        missing or its bytes differ from what the card records.
    """
    folder = Path(folder)
    files = card.get("files") if isinstance(card, Mapping) else None
    if not isinstance(files, Mapping):
        raise BadInputError(f"{folder / 'model.json'} lists no files.")
    for role in roles:
        record = files.get(role)
        if record is None:
            continue
        if not isinstance(record, Mapping) or not isinstance(record.get("name"), str) or not isinstance(
            record.get("sha256"), str
        ):
            raise BadInputError(f"{folder / 'model.json'}: the {role} entry needs a file name and a sha256.")
        name = record["name"]
        if Path(name).name != name:
            raise BadInputError(f"{folder / 'model.json'}: the {role} file name {name!r} is not a plain name.")
        linked_by_path = record.get("link") == "path" and isinstance(record.get("target"), str)
        path = Path(record["target"]) if linked_by_path else folder / name
        try:
            actual = sha256_file_cached(path)
        except OSError as error:
            raise BadInputError(f"{path} cannot be read ({error.strerror or error}).") from None
        if actual != record["sha256"].lower():
            raise BadInputError(
                f"{path} does not match the SHA-256 its model.json records, so it is damaged or was "
                "replaced; reinstall or re-import the model."
            )
