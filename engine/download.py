"""Resumable, verified downloads of model files (standard library only).

dgp-studio never downloads anything by itself: the released BigGAN weights
are shared through Google Drive / Baidu folders without stable direct links
or published checksums, so the user supplies a URL (and, ideally, the SHA-256
of a copy they trust). :func:`download` then

* writes to ``<dest>.part`` and moves it into place only when complete and,
  when a checksum is given, verified;
* resumes an interrupted transfer with an HTTP ``Range`` request, also
  across calls (the ``.part`` file stays when the network fails), and starts
  over cleanly when the server ignores ``Range``;
* deletes the ``.part`` file when cancelled or when the checksum is wrong,
  so no partial model is ever left for an import to pick up.
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from engine import __version__
from engine.checksums import sha256_file
from engine.errors import BadInputError
from engine.events import Progress
from engine.files import describe_os_error, fsync_folder

_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
# Statuses worth retrying: the server is busy or the request timed out, not a wrong URL.
_TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(BadInputError):
    """A download failed for good: bad URL, refused by the server, wrong checksum, gave up retrying."""


@dataclass(frozen=True)
class KnownSource:
    """A released DGP/BigGAN checkpoint file the user may download themselves."""

    file_name: str            # name the reference code expects in its ``pretrained`` folder
    role: str                 # "G" or "D"
    release: str              # the reference's --load_weights suffix
    kind: str                 # what ModelStore.import_pair will call it
    sha256: str | None = None
    url: str | None = None
    note: str = (
        "Published through the Google Drive / Baidu Cloud links of the official DGP README, "
        "which list no file names, direct URLs or checksums; supply the URL yourself and, "
        "if you can, the SHA-256 of a copy you trust."
    )


# File names from the reference loader's naming rule and the published scripts' suffixes
# (shared/fixtures/biggan_checkpoint_manifests.json, _meta.download.expected_files); checksums
# are unknown because none are published.
KNOWN_SOURCES: tuple[KnownSource, ...] = (
    KnownSource("G_ema_128.pth", "G", "128", "BigGAN-128 ch96"),
    KnownSource("D_128.pth", "D", "128", "BigGAN-128 ch96"),
    KnownSource("G_ema_256.pth", "G", "256", "BigGAN-256 ch96"),
    KnownSource("D_256.pth", "D", "256", "BigGAN-256 ch96"),
    KnownSource("G_ema_ch64_256.pth", "G", "ch64_256", "BigGAN-256 ch64"),
    KnownSource("D_ch64_256.pth", "D", "ch64_256", "BigGAN-256 ch64"),
)


class _Interrupted(Exception):
    """The transfer stopped early for a reason a retry may fix."""


def check_sha256(value: str | None, *, what: str = "the expected SHA-256") -> str | None:
    """Normalise a hex SHA-256 (64 digits, any case) or None; refuse anything else."""
    if value is None:
        return None
    normalised = str(value).strip().lower()
    if not _SHA256_PATTERN.match(normalised):
        raise BadInputError(f"{what} {value!r} is not 64 hexadecimal digits.")
    return normalised


def file_name_from_url(url: str, *, fallback: str = "download.bin") -> str:
    """The last path segment of ``url`` if it is a plain file name, else ``fallback``."""
    segment = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}", segment) and segment not in (".", ".."):
        return segment
    return fallback


def _delete_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _parse_content_range(header: str | None) -> tuple[int | None, int | None]:
    """``(first byte, complete size)`` from a Content-Range header; None where unknown."""
    match = _CONTENT_RANGE.match(header or "")
    if not match:
        return None, None
    first = int(match.group(1)) if match.group(1) is not None else None
    size = int(match.group(3)) if match.group(3) != "*" else None
    return first, size


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    expected_sha256: str | None,
    should_stop: threading.Event | None = None,
    chunk_bytes: int = 1 << 20,        # read size; one Progress event per chunk
    timeout_seconds: float = 30.0,     # per connection attempt and per read
    max_attempts: int = 5,             # consecutive failed attempts (no new bytes) before giving up
    retry_delay_seconds: float = 2.0,  # pause between attempts (cut short by should_stop)
) -> Generator[Progress, None, bool]:
    """Download ``url`` to ``dest`` with resume, verification and cancel.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` URL (redirects are followed).
    dest : path
        Final file; must not exist unless it already has ``expected_sha256``
        (then nothing is downloaded). Its folder is created if missing. The
        transfer goes to ``dest`` + ``".part"``.
    expected_sha256 : str or None
        64 hex digits. When given, the complete file must match it or it is
        deleted and :class:`DownloadError` is raised. None skips the check
        (the caller should still validate the file, e.g. by loading it).
    should_stop : threading.Event, optional
        Checked after every chunk and during retry pauses. When set, the
        ``.part`` file is deleted and the generator returns False.

    Yields
    ------
    engine.events.Progress
        ``done`` bytes of ``total`` (``total`` is 0 while the server has not
        said how big the file is); ``detail`` is the destination's file name;
        ``extra`` holds ``url``, ``resumed_from`` (byte offset of the current
        request) and ``attempt``. The last event, after verification, has
        ``detail`` ending in ``"verified"`` (or ``"done"`` without a checksum).

    Returns
    -------
    bool
        As the generator's return value (``StopIteration.value``): True when
        ``dest`` is in place, False when cancelled. Closing the generator
        early counts as a cancel and also deletes the ``.part`` file.

    Raises
    ------
    DownloadError
        Not an http(s) URL; an HTTP error that retrying cannot fix (e.g.
        404); a web page where a file was expected; still failing after
        ``max_attempts``; a wrong checksum. The message names the URL. On a
        network failure the ``.part`` file is kept, so a later call resumes.

    Notes
    -----
    A resumed request does not ask the server whether the file changed since
    the ``.part`` file was started (no ``If-Range``: nothing about the first
    response is stored); with ``expected_sha256`` a spliced file is caught
    and deleted, without it the caller's own validation has to catch it.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: only http:// and https:// addresses can be downloaded.")
    expected = check_sha256(expected_sha256, what=f"the SHA-256 given for {url}")
    if chunk_bytes < 1 or max_attempts < 1:
        raise BadInputError(f"download of {url}: chunk_bytes and max_attempts must be at least 1.")
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        size = dest.stat().st_size
        if expected is not None and sha256_file(dest) == expected:
            yield Progress(done=size, total=size, detail=f"{dest.name} verified", extra={"url": url})
            return True
        raise DownloadError(f"{dest}: the file already exists; delete it or choose another destination.")
    dest.parent.mkdir(parents=True, exist_ok=True)

    def stopped() -> bool:
        return should_stop is not None and should_stop.is_set()

    failures = 0
    attempt = 0
    high_water = part.stat().st_size if part.exists() else 0   # most bytes ever held in the part file
    try:
        while True:
            if stopped():
                _delete_quietly(part)
                return False
            attempt += 1
            offset = part.stat().st_size if part.exists() else 0
            headers = {"User-Agent": f"dgp-studio/{__version__}", "Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            done = offset
            try:
                try:
                    response = urllib.request.urlopen(
                        urllib.request.Request(url, headers=headers), timeout=timeout_seconds
                    )
                except urllib.error.HTTPError as error:
                    if error.code == 416 and offset:
                        # Nothing left after our offset: complete if the part is exactly the file.
                        _, size = _parse_content_range(error.headers.get("Content-Range"))
                        error.close()
                        if size == offset:
                            break
                        _delete_quietly(part)
                        raise _Interrupted("the partial file did not fit the file on the server") from None
                    error.close()
                    if error.code in _TRANSIENT_HTTP_STATUSES:
                        raise _Interrupted(f"HTTP {error.code} {error.reason}") from None
                    raise DownloadError(
                        f"{url}: the server answered HTTP {error.code} ({error.reason})."
                    ) from None
                except urllib.error.URLError as error:
                    raise _Interrupted(str(error.reason)) from None
                except (http.client.HTTPException, OSError) as error:   # e.g. a garbled status line
                    raise _Interrupted(str(error) or type(error).__name__) from None
                with response:
                    content_type = (response.headers.get("Content-Type") or "").lower()
                    if content_type.startswith("text/html"):
                        raise DownloadError(
                            f"{url}: the server sent a web page, not a file (a sharing page or a "
                            f"confirmation prompt); use the direct download address."
                        )
                    length_header = response.headers.get("Content-Length")
                    length = int(length_header) if length_header and length_header.isdigit() else None
                    if response.status == 206:
                        first, size = _parse_content_range(response.headers.get("Content-Range"))
                        if first != offset:
                            _delete_quietly(part)
                            raise _Interrupted(f"the server resumed at byte {first}, not {offset}")
                        total = size if size is not None else (offset + length if length is not None else 0)
                        mode = "ab"
                    else:
                        # 200: a fresh start, or a server that ignores Range; either way the body is
                        # the whole file, so the part file starts over.
                        offset = done = 0
                        total = length or 0
                        mode = "wb"
                    extra = {"url": url, "resumed_from": offset, "attempt": attempt}
                    yield Progress(done=done, total=total, detail=dest.name, extra=extra)
                    try:
                        with open(part, mode) as handle:
                            while True:
                                try:
                                    chunk = response.read(chunk_bytes)
                                except (OSError, http.client.HTTPException) as error:
                                    reason = error or type(error).__name__
                                    raise _Interrupted(f"the connection broke ({reason})") from None
                                if not chunk:
                                    break
                                handle.write(chunk)
                                done += len(chunk)
                                yield Progress(done=done, total=total, detail=dest.name, extra=extra)
                                if stopped():
                                    handle.close()
                                    _delete_quietly(part)
                                    return False
                            handle.flush()
                            os.fsync(handle.fileno())
                    except OSError as error:
                        # A full disk or a read-only folder: no partial file stays behind.
                        _delete_quietly(part)
                        raise BadInputError(
                            f"{dest} cannot be written ({describe_os_error(error)}); the partial download "
                            "was deleted."
                        ) from None
                    if total and done < total:
                        raise _Interrupted(f"the connection closed after {done} of {total} bytes")
                    break
            except _Interrupted as reason:
                # Only new ground resets the count: a server that ignores Range and keeps
                # breaking at the same byte must not make us loop for ever.
                if done > high_water:
                    high_water, failures = done, 0
                else:
                    failures += 1
                if failures >= max_attempts:
                    raise DownloadError(
                        f"{url}: the download failed {failures} times in a row ({reason}); "
                        f"run it again to resume from {part.stat().st_size if part.exists() else 0} bytes."
                    ) from None
                if should_stop is not None:
                    should_stop.wait(retry_delay_seconds)
                else:
                    time.sleep(retry_delay_seconds)
        size = part.stat().st_size
        if expected is not None:
            actual = sha256_file(part)
            if actual != expected:
                _delete_quietly(part)
                raise DownloadError(
                    f"{url}: the downloaded file's SHA-256 is {actual}, not the expected {expected}; "
                    f"it was deleted."
                )
        os.replace(part, dest)
        fsync_folder(dest.parent)
        yield Progress(
            done=size, total=size, detail=f"{dest.name} {'verified' if expected else 'done'}",
            extra={"url": url, "attempt": attempt},
        )
        return True
    except (GeneratorExit, KeyboardInterrupt):
        # The consumer stopped iterating or the user pressed Ctrl+C: a cancel, so no partial
        # model stays behind.
        _delete_quietly(part)
        raise
