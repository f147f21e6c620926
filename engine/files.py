"""Writing files without ever losing a byte of what the user has (torch-free).

Everything dgp-studio writes (results, states, sessions, animations, cache
entries, model files, reports) goes through :func:`atomic_path` or
:func:`atomic_open`: the bytes go to a temporary file beside the target, named
``.NAME.dgp-tmp-<random>`` so that it is recognisable, the file and then its
folder are flushed to disk (fsync), and only then is it renamed into place.
A crash leaves the old file or the whole new one, never half of one; a
temporary that a crash left behind is removed by :func:`clean_stale_temporaries`
on a later run. Files are created like any other file (``0666`` less the
umask), not owner-only as ``tempfile.mkstemp`` would make them.

:func:`check_output` is the one check every output option goes through
before any work starts: the folder exists and can be written, the name is a
file (or a folder) as expected, and the path is none of the command's inputs,
compared by resolved path and by device and inode, so a symbolic or a hard
link to the photo counts as the photo.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from engine.errors import BadInputError

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_STATE_BYTES",
    "STALE_TEMPORARY_SECONDS",
    "TEMPORARY_MARKER",
    "atomic_open",
    "atomic_path",
    "check_distinct_outputs",
    "check_output",
    "check_regular_file",
    "clean_stale_temporaries",
    "commit_temporary",
    "create_temporary",
    "describe_os_error",
    "fsync_folder",
    "is_temporary_name",
    "move_into_place",
    "same_file",
    "temporary_name",
    "write_bytes_atomically",
]

#: The largest photo or mask file read (bytes); a 150 MP PNG of noise is about 450 MB.
MAX_INPUT_BYTES = 1 << 30
#: The largest state file read (bytes); a BigGAN-256 state's delta is a few hundred MB.
MAX_STATE_BYTES = 4 << 30

#: What every temporary file's name holds: ``.NAME.dgp-tmp-<12 hex digits>``.
TEMPORARY_MARKER = ".dgp-tmp-"
#: A temporary untouched for this long belongs to a process that is gone.
STALE_TEMPORARY_SECONDS = 10 * 60

_TEMPORARY_PATTERN = re.compile(r"\..+\.dgp-tmp-[0-9a-f]{12}")
# The mode each temporary was created with (0666 less the umask), by path, until it is committed.
_CREATED_MODES: dict[str, int] = {}


def describe_os_error(error: OSError) -> str:
    """A few words for an OSError, as the end of "X cannot be written (...)"."""
    words = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOENT: "the folder does not exist",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.EISDIR: "it is a folder",
        errno.ELOOP: "a symbolic link loop",
        errno.ENAMETOOLONG: "the name is too long",
    }
    return words.get(error.errno, error.strerror or str(error))


def temporary_name(path: Path) -> Path:
    """A fresh recognisable temporary name beside ``path`` (same folder, same file system)."""
    return path.with_name(f".{path.name}{TEMPORARY_MARKER}{secrets.token_hex(6)}")


def is_temporary_name(name: str) -> bool:
    """True for names made by :func:`temporary_name`."""
    return _TEMPORARY_PATTERN.fullmatch(name) is not None


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename is durable only then); a no-op where unsupported."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open folders; its renames are durable by other means
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def create_temporary(path: Path) -> Path:
    """Create an empty temporary file beside ``path`` (mode 0666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        candidate = temporary_name(path)
        try:
            descriptor = os.open(candidate, flags, 0o666)
        except FileExistsError:
            continue
        try:
            _CREATED_MODES[str(candidate)] = stat.S_IMODE(os.fstat(descriptor).st_mode)
        finally:
            os.close(descriptor)
        return candidate
    raise BadInputError(f"{path} cannot be written (no free temporary name in {path.parent}).")


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
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
            raise
        if os.path.lexists(path):
            raise BadInputError(f"{path} already exists and overwriting was not requested.") from None
        os.replace(temporary, path)
    else:
        temporary.unlink(missing_ok=True)


def _flush_file(path: Path) -> None:
    with open(path, "r+b") as stream:  # Windows refuses fsync on read-only handles
        os.fsync(stream.fileno())


def commit_temporary(temporary: Path, path: Path, *, overwrite: bool) -> None:
    """Flush a finished temporary file from :func:`create_temporary`, move it to ``path``, flush the folder.

    Some writers (safetensors) replace the file they are given with one of
    their own, created owner-only; the mode the temporary was created with
    (the umask's) is put back first.
    """
    created_mode = _CREATED_MODES.pop(str(temporary), None)
    if created_mode is not None and stat.S_IMODE(os.stat(temporary).st_mode) != created_mode:
        os.chmod(temporary, created_mode)
    _flush_file(temporary)
    move_into_place(temporary, path, overwrite=overwrite)
    fsync_folder(path.parent if str(path.parent) else Path("."))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Give a temporary path to write ``path``'s contents to; put it in place on success.

    For writers that want a file name (safetensors, PyAV, Pillow's animation
    writers). On leaving the block normally, the temporary file is flushed,
    moved into place (without ``overwrite``, never over a file that exists,
    even one that appeared meanwhile) and the folder is flushed. On any
    exception, Ctrl+C included, the temporary is removed and ``path`` is left
    as it was. An OSError becomes a :class:`BadInputError` naming ``path``.
    """
    path = Path(path)
    try:
        temporary = create_temporary(path)
    except OSError as error:
        raise BadInputError(f"{path} cannot be written ({describe_os_error(error)}).") from None
    try:
        yield temporary
        commit_temporary(temporary, path, overwrite=overwrite)
    except OSError as error:
        raise BadInputError(f"{path} cannot be written ({describe_os_error(error)}).") from None
    finally:
        _CREATED_MODES.pop(str(temporary), None)
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Like :func:`atomic_path`, but gives an open binary file to write to."""
    with atomic_path(path, overwrite=overwrite) as temporary, open(temporary, "wb") as stream:
        yield stream
        stream.flush()


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_open`."""
    with atomic_open(path, overwrite=overwrite) as stream:
        stream.write(data)
    return Path(path)


def clean_stale_temporaries(folder: str | os.PathLike[str], *, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
    """Remove temporaries a crash left in ``folder`` (only :func:`temporary_name` names, only old ones).

    Returns the number removed. Never raises: cleaning is a courtesy, not a
    condition for the work that follows.
    """
    folder = Path(folder)
    removed = 0
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if not is_temporary_name(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_mtime > cutoff:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
    return removed


# --------------------------------------------------------------------------------------
# Checks made before any work starts


def same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """True when both paths name one file: equal once resolved, or the same device and inode."""
    first, second = Path(first), Path(second)
    try:
        if first.resolve() == second.resolve():
            return True
    except (OSError, RuntimeError):
        pass
    try:
        a, b = os.stat(first), os.stat(second)
    except (OSError, ValueError):
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_regular_file(path: str | os.PathLike[str], *, what: str = "file", max_bytes: int | None = None) -> int:
    """Check that ``path`` is a regular file that can be opened; return its size in bytes.

    Looked at with ``stat`` only, so a FIFO is never opened (which would wait
    for a writer) and ``/dev/zero`` is never read.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise BadInputError(f"{path} is a symbolic link to a missing file.") from None
        raise BadInputError(f"{path} does not exist.") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BadInputError(f"{path} is a symbolic link loop.") from None
        raise BadInputError(f"{path} cannot be read ({describe_os_error(error)}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInputError(f"{path} is a folder, not a {what}.")
    if not stat.S_ISREG(info.st_mode):
        raise BadInputError(f"{path} is not a regular file (a device, pipe or socket), so it is not read as a {what}.")
    if max_bytes is not None and info.st_size > max_bytes:
        raise BadInputError(
            f"{path} is {info.st_size / 2**20:.0f} MiB, more than the {max_bytes / 2**20:.0f} MiB "
            f"a {what} may have."
        )
    return int(info.st_size)


def _probe_writable(folder: Path, shown: Path) -> None:
    try:
        probe = create_temporary(folder / shown.name)
    except OSError as error:
        raise BadInputError(f"{shown} cannot be written in {folder} ({describe_os_error(error)}).") from None
    _CREATED_MODES.pop(str(probe), None)
    with contextlib.suppress(OSError):
        probe.unlink()


def check_output(
    path: str | os.PathLike[str],
    *,
    option: str,
    inputs: Mapping[str, str | os.PathLike[str] | None] | Iterable[tuple[str, str | os.PathLike[str] | None]] = (),
    overwrite: bool = False,
    suffixes: Sequence[str] | None = None,
    folder: bool = False,
    may_exist: bool = False,
) -> Path:
    """Check an output path before any work: one :class:`BadInputError` sentence per problem.

    Parameters
    ----------
    path : path-like
        The output the user named.
    option : str
        How the user named it (``"-o"``, ``"--save-state"``), for the message.
    inputs : mapping or pairs of (description, path)
        Everything the command reads ("the photo", "the mask", ...); the
        output may be none of them, whatever ``overwrite`` says.
    overwrite : bool
        Whether an existing file may be replaced.
    suffixes : sequence of str, optional
        Lower-case suffixes allowed for a file output.
    folder : bool
        The output is a folder (created if missing); else a file.
    may_exist : bool
        A folder output that exists is fine (its contents are the caller's business).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    pairs = list(inputs.items()) if isinstance(inputs, Mapping) else list(inputs)
    for description, source in pairs:
        if source is not None and same_file(path, source):
            raise BadInputError(f"{option} {path} is {description} ({source}), which is never overwritten.")
    if folder:
        for description, source in pairs:
            if source is None:
                continue
            try:
                inside = Path(source).resolve().is_relative_to(path.resolve()) if path.exists() else False
            except (OSError, RuntimeError):
                inside = False
            if inside and not may_exist:
                raise BadInputError(f"{option} {path} holds {description} ({source}), so it is not written into.")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
        if os.path.lexists(path):
            raise BadInputError(f"{option} {path} is a symbolic link to a missing file.") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise BadInputError(f"{option} {path} is a symbolic link loop.") from None
        if error.errno == errno.ENOTDIR:
            raise BadInputError(f"{option} {path} cannot be written because a part of it is a file.") from None
        raise BadInputError(f"{option} {path} cannot be used ({describe_os_error(error)}).") from None
    if folder:
        if info is not None and not stat.S_ISDIR(info.st_mode):
            raise BadInputError(f"{option} {path} is a file, not a folder.")
        if info is not None:
            _probe_writable(path, path / "probe")
            return path
        ancestor = path.parent if str(path.parent) else Path(".")
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise BadInputError(f"{option} {path} cannot be created because {ancestor} is a file.")
        _probe_writable(ancestor, path)
        return path
    if suffixes is not None and path.suffix.lower() not in suffixes:
        allowed = ", ".join(suffixes)
        raise BadInputError(f"{option} {path} has the unsupported suffix {path.suffix!r}; use {allowed}.")
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise BadInputError(f"{option} {path} is a folder, not a file name.")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise BadInputError(f"{option} {path} is not a regular file, so it is not written to.")
    if info is not None and not overwrite:
        raise BadInputError(f"{option} {path} already exists; pass --overwrite to replace it.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise BadInputError(f"{option} {path} cannot be written because the folder {parent} does not exist.")
    if not parent.is_dir():
        raise BadInputError(f"{option} {path} cannot be written because {parent} is not a folder.")
    _probe_writable(parent, path)
    return path


def check_distinct_outputs(outputs: Sequence[tuple[str, str | os.PathLike[str] | None]]) -> None:
    """Refuse two output options naming one file (``-o x.png --save-state x.png``)."""
    named = [(option, Path(path)) for option, path in outputs if path is not None]
    for index, (option, path) in enumerate(named):
        for other_option, other in named[index + 1:]:
            if path.resolve() == other.resolve() or same_file(path, other):
                raise BadInputError(f"{option} and {other_option} both name {path}; give each its own file.")
