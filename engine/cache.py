"""A disk cache of finished restores, keyed by a hash of everything that made them.

A restore takes minutes; the same photo, task, preset, settings, class, seed
and model give the same result, so the app keeps finished results in a
per-user cache folder (the app passes platformdirs' ``user_cache_dir``; the
engine only sees a path) and reopens them instantly.

Layout: one folder per entry, named by its 64-hex-digit key::

    <root>/<key>/state.safetensors   GeneratorState, weight delta in fp16
    <root>/<key>/image.png           G*(z*) at model resolution
    <root>/<key>/composite.png       the full-resolution result, when the run had one
    <root>/<key>/entry.json          sidecar: what made it, when, sizes, SHA-256 of every file

An entry is written into a hidden temporary folder inside ``root`` and moved
into place with one ``os.replace``, so a crash leaves either the whole entry
or nothing under its key (stale temporary folders are swept later). The
sidecar's modification time is the entry's last-used time: ``get`` touches
it and eviction removes the least recently used entries first.

Several processes (two app windows, the app and a script) may share one
cache folder. Every operation that reads or changes entries holds an
exclusive lock on ``<root>/.lock`` (``filelock``: ``fcntl.flock`` on POSIX,
``LockFileEx`` on Windows; the operating system releases it when a process
dies, so a crash never leaves the cache locked). A lock rather than
write-once entries named by content, because a key names its inputs, not its
result: two runs of one key may differ (cancelled, another device), and the
later must replace the earlier without a reader ever seeing half of each.
The sidecar carries the SHA-256 of its own canonical JSON, so an edited
``entry.json`` (a class index, a file checksum) is a miss, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock, Timeout
from PIL import Image

from engine.checksums import sha256_file
from engine.errors import BadInputError
from engine.files import describe_os_error, fsync_folder, write_bytes_atomically
from engine.state import GeneratorState, RestoreResult

logger = logging.getLogger(__name__)

ENTRY_FORMAT = "dgp-studio-cache-entry"
ENTRY_FORMAT_VERSION = 2          # 2: the sidecar's own checksum
LOCK_FILE = ".lock"
LOCK_TIMEOUT_SECONDS = 120.0
KEY_ENCODING_VERSION = 1   # bump when cache_key's encoding changes: old keys then simply miss

STATE_FILE = "state.safetensors"
IMAGE_FILE = "image.png"
COMPOSITE_FILE = "composite.png"
SIDECAR_FILE = "entry.json"

_KEY_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_TEMPORARY_PREFIX = ".tmp-"
_DISCARD_PREFIX = ".discard-"


class CacheEntryDroppedWarning(UserWarning):
    """A cache entry was unreadable or failed its checksum and has been deleted."""


# --------------------------------------------------------------------------
# Keys


def _array_record(name: str, array: np.ndarray | None) -> tuple[dict, bytes]:
    if array is None:
        return {"name": name, "present": False}, b""
    if not isinstance(array, np.ndarray):
        raise BadInputError(f"cache key: {name} must be a NumPy array, not {type(array).__name__}.")
    contiguous = np.ascontiguousarray(array)
    # dtype.str carries the byte order ("<f4"), so the same values hash alike on every machine
    # only after normalising to little endian.
    if contiguous.dtype.byteorder == ">":
        contiguous = contiguous.astype(contiguous.dtype.newbyteorder("<"))
    header = {"name": name, "present": True, "shape": list(contiguous.shape), "dtype": contiguous.dtype.str}
    return header, contiguous.tobytes()


def _canonical_json(value: object, *, what: str) -> str:
    def refuse(item: object) -> object:
        if isinstance(item, (np.integer, np.floating, np.bool_)):
            return item.item()
        if isinstance(item, (tuple, set, frozenset)):
            return sorted(item) if isinstance(item, (set, frozenset)) else list(item)
        if isinstance(item, Path):
            return str(item)
        raise BadInputError(
            f"cache key: {what} holds a {type(item).__name__}, which has no stable text form; "
            f"pass numbers, strings, booleans, lists or dicts."
        )

    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=True, default=refuse)
    except TypeError as error:   # e.g. dict keys that are not strings
        raise BadInputError(f"cache key: {what} cannot be encoded ({error}).") from None


def cache_key(
    *,
    input_rgb_model: np.ndarray,
    mask: np.ndarray | None,
    task: str,
    preset: str | None,
    settings: Mapping[str, object],
    class_index: int | None,
    seed: int,
    model_identity: str,
    engine_version: str,
) -> str:
    """The cache key of a restore: SHA-256 over a canonical encoding of its inputs.

    Parameters
    ----------
    input_rgb_model : numpy.ndarray
        The image the model is asked to match, usually the model-resolution
        crop (R x R x 3 uint8). Its shape, dtype and every byte are hashed,
        so any change to the photo, its region or its resizing misses.
    mask : numpy.ndarray or None
        Inpainting mask in the same frame (any shape/dtype, hashed exactly);
        None and "no mask" are distinct from an all-zero mask.
    task, preset : str
        Task name and the preset name (None: the task's default preset).
    settings : mapping
        Every other knob that changes the result (SR factor, grayscale,
        quick mode, iteration scale, precision, device kind...). Values must
        be JSON-like (numbers, strings, booleans, None, lists, dicts with
        string keys); dict order does not matter.
    class_index : int or None
        The class, or None when the latent search chooses it.
    seed : int
        Seed of the latent search / noise.
    model_identity : str
        ``LoadedModel.identity``: a digest of the weights.
    engine_version : str
        ``engine.__version__``: a new engine may compute different results.

    Returns
    -------
    str
        64 lowercase hexadecimal digits.

    Notes
    -----
    The digest covers, in this order: a format tag with
    ``KEY_ENCODING_VERSION``; one canonical JSON header (sorted keys, no
    spaces) holding task, preset, settings, class, seed, model identity,
    engine version and the arrays' names, shapes and dtypes; then the raw
    little-endian bytes of the input image and of the mask. Each part is
    prefixed by its length so no two different inputs encode alike.
    """
    image_header, image_bytes = _array_record("input_rgb_model", input_rgb_model)
    mask_header, mask_bytes = _array_record("mask", mask)
    if not isinstance(settings, Mapping):
        raise BadInputError(f"cache key: settings must be a mapping, not {type(settings).__name__}.")
    header = _canonical_json(
        {
            "task": str(task),
            "preset": None if preset is None else str(preset),
            "settings": dict(settings),
            "class_index": None if class_index is None else int(class_index),
            "seed": int(seed),
            "model_identity": str(model_identity),
            "engine_version": str(engine_version),
            "arrays": [image_header, mask_header],
        },
        what="settings",
    ).encode("ascii")
    digest = hashlib.sha256()
    tag = f"dgp-studio-cache-key/{KEY_ENCODING_VERSION}".encode("ascii")
    for part in (tag, header, image_bytes, mask_bytes):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        raise BadInputError(f"cache key {key!r} is not 64 lowercase hexadecimal digits (see cache_key).")
    return key


# --------------------------------------------------------------------------
# Entries


@dataclass(frozen=True)
class CachedEntry:
    """A verified cache entry as ``StateCache.get`` returns it."""

    key: str
    path: Path                      # the entry's folder
    state: GeneratorState           # weight delta restored to float32
    image: np.ndarray               # G*(z*), R x R x 3 uint8
    composite: np.ndarray | None    # full-resolution result, H x W x 3 uint8, if stored
    sidecar: dict = field(compare=False)
    size_bytes: int = 0


@dataclass(frozen=True)
class CacheEntryInfo:
    """One entry as listed by ``StateCache.entries`` (not verified)."""

    key: str
    path: Path
    size_bytes: int
    last_used: float                # seconds since the epoch
    sidecar: dict = field(compare=False)


def _folder_bytes(folder: Path) -> int:
    total = 0
    try:
        with os.scandir(folder) as listing:
            for item in listing:
                try:
                    if item.is_file(follow_symlinks=False):
                        total += item.stat(follow_symlinks=False).st_size
                    elif item.is_dir(follow_symlinks=False):
                        total += _folder_bytes(Path(item.path))
                except OSError:
                    continue
    except OSError:
        return 0
    return total


def _write_png(path: Path, image: np.ndarray, what: str) -> None:
    if not (
        isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    ):
        raise BadInputError(f"cache entry: the {what} must be an H x W x 3 uint8 array.")
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(path, format="PNG", compress_level=1)
    with open(path, "r+b") as stream:
        os.fsync(stream.fileno())


def _sidecar_checksum(sidecar: Mapping[str, object]) -> str:
    """SHA-256 of the sidecar's canonical JSON without its own ``checksum`` field."""
    body = {name: value for name, value in sidecar.items() if name != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


class _BothLocks:
    """Hold a thread lock and a cross-process lock file together; a lock that cannot be had is one sentence."""

    def __init__(self, thread_lock: threading.RLock, file_lock: FileLock, root: Path) -> None:
        self.thread_lock, self.file_lock, self.root = thread_lock, file_lock, root

    def __enter__(self) -> None:
        self.thread_lock.acquire()
        try:
            self.file_lock.acquire()
        except Timeout:
            self.thread_lock.release()
            raise BadInputError(
                f"the cache {self.root} stayed locked by another process for {LOCK_TIMEOUT_SECONDS:g} s."
            ) from None
        except OSError as error:
            self.thread_lock.release()
            raise BadInputError(f"the cache {self.root} cannot be locked ({describe_os_error(error)}).") from None

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.file_lock.release()
        finally:
            self.thread_lock.release()


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as opened:
        opened.load()
        if opened.mode != "RGB":
            raise ValueError(f"{path.name} is {opened.mode}, not RGB")
        return np.array(opened, dtype=np.uint8)


class StateCache:
    """Finished restores on disk, least recently used evicted beyond ``max_bytes``.

    Parameters
    ----------
    root : path
        The cache folder (created if missing). Everything in it belongs to
        the cache: ``clear`` deletes it all.
    max_bytes : int
        Size limit in bytes (>= 0), enforced after every ``put``.
    stale_temporary_seconds : float
        Temporary folders older than this, left by a crash or a killed
        process, are deleted when the cache is opened. Younger ones may
        belong to another process writing right now.

    Notes
    -----
    Thread-safe within one process, and safe for processes sharing a folder:
    every read and write holds the folder's lock file (see the module notes),
    so no reader sees an entry half replaced and no valid entry is deleted as
    unreadable because another process was writing it.
    """

    def __init__(
        self, root: str | os.PathLike, *, max_bytes: int, stale_temporary_seconds: float = 3600.0
    ) -> None:
        self.root = Path(root)
        self.max_bytes = self._check_max_bytes(max_bytes)
        self._thread_lock = threading.RLock()
        self._last_touch_ns = 0
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"{self.root}: cannot create the cache folder ({error.strerror}).") from None
        self._file_lock = FileLock(str(self.root / LOCK_FILE), timeout=LOCK_TIMEOUT_SECONDS, thread_local=False)
        with self._lock:
            self._sweep_temporaries(older_than=stale_temporary_seconds)

    @property
    def _lock(self):
        """The thread lock, then the folder's lock file (both reentrant)."""
        return _BothLocks(self._thread_lock, self._file_lock, self.root)

    @staticmethod
    def _check_max_bytes(max_bytes: int) -> int:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
            raise BadInputError(f"cache size limit {max_bytes!r} must be a whole number of bytes, 0 or more.")
        return int(max_bytes)

    # -- housekeeping -----------------------------------------------------------
    def _sweep_temporaries(self, *, older_than: float) -> None:
        now = time.time()
        for item in self.root.iterdir():
            if not item.name.startswith((_TEMPORARY_PREFIX, _DISCARD_PREFIX)):
                continue
            try:
                age = now - item.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if age >= older_than:
                self._delete(item)

    @staticmethod
    def _delete(path: Path) -> None:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        except OSError as error:
            logger.warning("could not delete %s: %s", path, error)

    def _remove_entry(self, folder: Path) -> None:
        """Make an entry vanish at once (rename), then delete its files."""
        discard = self.root / f"{_DISCARD_PREFIX}{uuid.uuid4().hex}"
        try:
            os.replace(folder, discard)
        except FileNotFoundError:
            return
        except OSError:
            discard = folder
        self._delete(discard)

    def _drop(self, key: str, folder: Path, reason: str) -> None:
        message = f"cache entry {key[:12]}… in {self.root} was unreadable and has been deleted ({reason})."
        logger.warning(message)
        warnings.warn(message, CacheEntryDroppedWarning, stacklevel=3)
        self._remove_entry(folder)

    def _touch(self, sidecar: Path) -> None:
        # Strictly increasing within this process, so two uses in the same clock tick still order.
        now = max(time.time_ns(), self._last_touch_ns + 1)
        self._last_touch_ns = now
        os.utime(sidecar, ns=(now, now))

    def _entry_folders(self) -> list[Path]:
        try:
            return [item for item in self.root.iterdir() if _KEY_PATTERN.match(item.name) and item.is_dir()]
        except OSError:
            return []

    # -- public API -------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        """The folder an entry with ``key`` lives in (it may not exist)."""
        return self.root / _check_key(key)

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, str) and _KEY_PATTERN.match(key)):
            return False
        return (self.root / key / SIDECAR_FILE).is_file()

    def put(self, key: str, result: RestoreResult, *, made_with: Mapping[str, object] | None = None) -> Path:
        """Store a restore's state and images under ``key``, replacing an older entry.

        Parameters
        ----------
        key : str
            From :func:`cache_key`.
        result : RestoreResult
            Its ``state`` is saved with the weight delta in float16 (float32
            if a delta entry would overflow float16), ``image`` and, if
            present, ``composite`` as PNG.
        made_with : mapping, optional
            A JSON-able description of the inputs (e.g. the arguments given
            to ``cache_key``, without arrays) kept in the sidecar for display.

        Returns
        -------
        pathlib.Path
            The entry's folder. The entry just written is never evicted by its
            own ``put``: with a limit smaller than one entry, the cache holds
            exactly that entry.
        """
        _check_key(key)
        state = result.state
        # fp16 halves the entry; deltas are small differences, far below fp16's range, unless
        # something diverged, in which case keep float32 rather than store infinities.
        delta_dtype = torch.float16
        if any(not torch.isfinite(value.to(torch.float16)).all() for value in state.weight_delta.values()):
            delta_dtype = torch.float32
        description = _canonical_json(dict(made_with or {}), what="made_with")
        with self._lock:
            temporary = self.root / f"{_TEMPORARY_PREFIX}{key[:16]}-{uuid.uuid4().hex}"
            try:
                temporary.mkdir()
            except OSError as error:
                raise BadInputError(
                    f"the result could not be kept in the cache {self.root} ({describe_os_error(error)})."
                ) from None
            try:
                state.save(temporary / STATE_FILE, delta_dtype=delta_dtype)
                _write_png(temporary / IMAGE_FILE, result.image, "result image")
                files = {"state": STATE_FILE, "image": IMAGE_FILE}
                if result.composite is not None:
                    _write_png(temporary / COMPOSITE_FILE, result.composite, "composite")
                    files["composite"] = COMPOSITE_FILE
                sidecar = {
                    "format": ENTRY_FORMAT,
                    "version": ENTRY_FORMAT_VERSION,
                    "key": key,
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "model_identity": state.model_identity,
                    "task": result.task,
                    "preset": result.preset,
                    "class_index": result.class_index,
                    "top_classes": [list(pair) for pair in result.top_classes],
                    "losses": dict(result.losses),
                    "steps_done": result.steps_done,
                    "total_steps": result.total_steps,
                    "seconds": result.seconds,
                    "cancelled": result.cancelled,
                    "notes": list(result.notes),
                    "delta_dtype": str(delta_dtype).removeprefix("torch."),
                    "image_size": [int(result.image.shape[1]), int(result.image.shape[0])],
                    "composite_size": (
                        None if result.composite is None
                        else [int(result.composite.shape[1]), int(result.composite.shape[0])]
                    ),
                    "made_with": json.loads(description),
                    "files": {
                        role: {
                            "name": name,
                            "size": (temporary / name).stat().st_size,
                            "sha256": sha256_file(temporary / name),
                        }
                        for role, name in files.items()
                    },
                }
                sidecar["checksum"] = _sidecar_checksum(sidecar)
                write_bytes_atomically(temporary / SIDECAR_FILE, json.dumps(sidecar, indent=1).encode("utf-8"))
                fsync_folder(temporary)
                destination = self.root / key
                if destination.exists():
                    self._remove_entry(destination)
                os.replace(temporary, destination)
                fsync_folder(self.root)
            except OSError as error:
                self._delete(temporary)
                raise BadInputError(
                    f"the result could not be kept in the cache {self.root} ({describe_os_error(error)})."
                ) from None
            except BaseException:
                self._delete(temporary)
                raise
            self._touch(destination / SIDECAR_FILE)
            self._evict(keep=key)
        return destination

    def get(self, key: str) -> CachedEntry | None:
        """The entry stored under ``key``, verified, or None.

        A hit marks the entry as the most recently used. An entry whose
        sidecar is unreadable, whose files are missing, have the wrong size
        or checksum, or fail to decode is deleted with a
        :class:`CacheEntryDroppedWarning` (and a logged warning); the call
        then returns None instead of raising.
        """
        folder = self.path_for(key)
        with self._lock:
            if not folder.is_dir():
                return None
            sidecar_path = folder / SIDECAR_FILE
            try:
                sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
                if sidecar.get("format") != ENTRY_FORMAT:
                    raise ValueError("not a cache entry sidecar")
                if int(sidecar.get("version", 0)) > ENTRY_FORMAT_VERSION:
                    raise ValueError("written by a newer dgp-studio")
                if sidecar.get("checksum") != _sidecar_checksum(sidecar):
                    raise ValueError("entry.json fails its checksum (it was edited or damaged)")
                if sidecar.get("key") != key:
                    raise ValueError("the sidecar names another key")
                files = sidecar["files"]
                for role in ("state", "image"):
                    if role not in files:
                        raise ValueError(f"the sidecar lists no {role} file")
                for role, record in files.items():
                    path = folder / Path(record["name"]).name
                    size = path.stat().st_size
                    if size != int(record["size"]):
                        raise ValueError(f"{role} file has {size} bytes, expected {record['size']}")
                    if sha256_file(path) != record["sha256"]:
                        raise ValueError(f"{role} file fails its SHA-256 checksum")
                state = GeneratorState.load(folder / Path(files["state"]["name"]).name)
                image = _read_png(folder / Path(files["image"]["name"]).name)
                composite = None
                if "composite" in files:
                    composite = _read_png(folder / Path(files["composite"]["name"]).name)
            except FileNotFoundError as error:
                self._drop(key, folder, f"missing {Path(error.filename or '?').name}")
                return None
            except Exception as error:  # noqa: BLE001 - any failure of a cached copy is a miss, never a crash
                self._drop(key, folder, str(error) or type(error).__name__)
                return None
            try:
                self._touch(sidecar_path)
            except OSError as error:
                logger.warning("could not mark cache entry %s as used: %s", key[:12], error)
            return CachedEntry(
                key=key, path=folder, state=state, image=image, composite=composite,
                sidecar=sidecar, size_bytes=_folder_bytes(folder),
            )

    def remove(self, key: str) -> int:
        """Delete one entry; returns the bytes freed (0 if it was absent)."""
        folder = self.path_for(key)
        with self._lock:
            if not folder.is_dir():
                return 0
            size = _folder_bytes(folder)
            self._remove_entry(folder)
            return size

    def entries(self) -> list[CacheEntryInfo]:
        """All entries, most recently used first (sidecars are read, files not verified)."""
        listed = []
        for folder in self._entry_folders():
            sidecar_path = folder / SIDECAR_FILE
            try:
                last_used = sidecar_path.stat().st_mtime_ns / 1e9
            except OSError:
                last_used = 0.0
            try:
                sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
                if not isinstance(sidecar, dict):
                    sidecar = {}
            except (OSError, ValueError):
                sidecar = {}
            listed.append(CacheEntryInfo(
                key=folder.name, path=folder, size_bytes=_folder_bytes(folder), last_used=last_used,
                sidecar=sidecar,
            ))
        listed.sort(key=lambda info: info.last_used, reverse=True)
        return listed

    def size_bytes(self) -> int:
        """Bytes used by the cache folder, including leftovers not yet swept."""
        return _folder_bytes(self.root)

    def clear(self) -> int:
        """Delete every entry and leftover; returns the bytes freed."""
        with self._lock:
            before = self.size_bytes()
            for item in list(self.root.iterdir()):
                if _KEY_PATTERN.match(item.name) and item.is_dir():
                    self._remove_entry(item)
                elif item.name.startswith((_TEMPORARY_PREFIX, _DISCARD_PREFIX)):
                    self._delete(item)
            return before - self.size_bytes()

    def set_max_bytes(self, max_bytes: int) -> int:
        """Change the size limit and evict down to it at once; returns the bytes freed."""
        with self._lock:
            self.max_bytes = self._check_max_bytes(max_bytes)
            return self._evict(keep=None)

    def _evict(self, *, keep: str | None) -> int:
        freed = 0
        listed = self.entries()
        total = sum(info.size_bytes for info in listed)
        for info in reversed(listed):   # least recently used first
            if total <= self.max_bytes:
                break
            if info.key == keep:
                continue
            self._remove_entry(info.path)
            total -= info.size_bytes
            freed += info.size_bytes
        return freed
