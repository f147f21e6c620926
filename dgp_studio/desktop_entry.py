"""Install dgp-studio's desktop entry, AppStream metainfo, icons and session file type for the current user.

A ``pip install`` puts a ``dgp-studio`` launcher on ``PATH`` but tells the desktop nothing: no
menu entry, no icon, no "Open with". :func:`install_desktop_entry` (``dgp-studio
--install-desktop-entry``) copies the files in ``packaging/`` into the freedesktop.org per-user
locations below ``$XDG_DATA_HOME`` (default ``~/.local/share``)::

    applications/io.github.dgpstudio.DgpStudio.desktop
    metainfo/io.github.dgpstudio.DgpStudio.metainfo.xml
    icons/hicolor/scalable/apps/io.github.dgpstudio.DgpStudio.svg
    icons/hicolor/256x256/apps/io.github.dgpstudio.DgpStudio.png
    mime/packages/io.github.dgpstudio.DgpStudio.xml

The last one declares session files (``*.dgps``) as ``application/x-dgp-studio-session``, the
type the entry's ``MimeType`` lists, so file managers offer DGP Studio for them; the desktop
reads it from the shared MIME database, which ``update-mime-database`` rebuilds when installed.

The packaged entry says ``Exec=dgp-studio %F``, which only works when that launcher is on the
``PATH`` the desktop session sees (a virtual environment's ``bin/`` usually is not), so the
installed copy names the running launcher by its absolute path instead.

Stdlib only: this runs before, and without, Qt.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

APP_ID = "io.github.dgpstudio.DgpStudio"
"""Reverse-DNS application id: the .desktop/metainfo/icon file stem and Qt's desktopFileName."""

LAUNCHER_NAME = "dgp-studio"
DESKTOP_FILE_NAME = f"{APP_ID}.desktop"
METAINFO_FILE_NAME = f"{APP_ID}.metainfo.xml"
SCALABLE_ICON_NAME = f"{APP_ID}.svg"
BITMAP_ICON_NAME = f"{APP_ID}.png"
BITMAP_ICON_SIZE = 256
MIME_PACKAGE_SOURCE_NAME = f"{APP_ID}.mime.xml"
MIME_PACKAGE_FILE_NAME = f"{APP_ID}.xml"
SESSION_MIME_TYPE = "application/x-dgp-studio-session"

# A regular (non-editable) install carries packaging/ as this package's data; an editable
# install, a source checkout and a PyInstaller bundle have packaging/ beside dgp_studio/.
PACKAGING_DATA_PACKAGE = "dgp_studio_packaging"

# Desktop Entry Specification, "The Exec key": an argument containing any of these must be
# written inside double quotes.
_EXEC_RESERVED_CHARACTERS = frozenset(' \t\n"\'\\><~|&;$*?#()`')
# ... and inside the quotes, these four must be escaped with a backslash.
_EXEC_ESCAPED_IN_QUOTES = frozenset('"`$\\')


def _packaging_file_candidates(name: str) -> list[Path]:
    """Where ``packaging/<name>`` may be, most specific first."""
    candidates = []
    try:
        spec = importlib.util.find_spec(PACKAGING_DATA_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        # packaging/ has no __init__.py (it would shadow the PyPI "packaging" library when the
        # repository root is on sys.path), so this is a namespace package. Its search locations
        # are read directly: on Python 3.11 importlib.resources.files() fails on the
        # placeholder entry a setuptools editable install puts among them.
        candidates.extend(
            Path(location) / name
            for location in spec.submodule_search_locations or ()
            if Path(location).is_absolute()
        )
    # The file, not just the folder, must exist: site-packages/packaging/ is the PyPI
    # "packaging" library, in the same place relative to an installed dgp_studio.
    candidates.append(Path(__file__).resolve().parent.parent / "packaging" / name)
    return candidates


def _read_packaging_file(name: str) -> bytes:
    """Contents of ``packaging/<name>`` from the first place that has it."""
    candidates = _packaging_file_candidates(name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_bytes()
    searched = ", ".join(str(candidate.parent) for candidate in candidates)
    raise FileNotFoundError(
        f"the packaging file {name} is missing from this dgp-studio installation (looked in {searched})."
    )


def packaged_icon_path(*, scalable: bool = False) -> Path:
    """The application icon shipped in ``packaging/icons/`` (for ``QApplication.setWindowIcon``).

    Parameters
    ----------
    scalable : bool, optional
        ``True`` for the SVG, ``False`` (default) for the 256×256 PNG, which needs no Qt
        image-format plugin to load.

    Returns
    -------
    pathlib.Path
        An existing file.

    Raises
    ------
    FileNotFoundError
        If the installation lacks its packaging files.
    """
    name = f"icons/{SCALABLE_ICON_NAME if scalable else BITMAP_ICON_NAME}"
    for candidate in _packaging_file_candidates(name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"the application icon {name} is missing from this dgp-studio installation.")


def launcher_command() -> list[str]:
    """The command that starts this dgp-studio installation, as absolute paths.

    Tried in order: the frozen bundle's own executable; ``sys.argv[0]`` when it is the
    ``dgp-studio`` launcher; a ``dgp-studio`` launcher beside the running interpreter (same
    environment); ``dgp-studio`` on ``PATH``; finally ``python -m dgp_studio`` with this
    interpreter.

    Returns
    -------
    list of str
        Program and arguments; the program is an absolute path.
    """
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).absolute())]
    running = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if running is not None and running.name == LAUNCHER_NAME and running.is_file():
        # absolute(), not resolve(): a ~/.local/bin symlink into a pipx environment should
        # keep working after the environment is rebuilt.
        return [str(running.absolute())]
    beside_interpreter = Path(sys.executable).parent / LAUNCHER_NAME
    if beside_interpreter.is_file() and os.access(beside_interpreter, os.X_OK):
        return [str(beside_interpreter.absolute())]
    on_path = shutil.which(LAUNCHER_NAME)
    if on_path:
        return [str(Path(on_path).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "dgp_studio"]


def _quote_exec_argument(argument: str) -> str:
    """One Exec argument quoted per the Desktop Entry Specification (before key-file escaping)."""
    argument = argument.replace("%", "%%")      # a literal % is written %% in Exec
    if not any(character in _EXEC_RESERVED_CHARACTERS for character in argument):
        return argument
    escaped = "".join("\\" + c if c in _EXEC_ESCAPED_IN_QUOTES else c for c in argument)
    return f'"{escaped}"'


def _escape_key_file_value(value: str) -> str:
    """A string value escaped for a .desktop file line (backslash first, then controls)."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def desktop_entry_text(template: str, *, command: Sequence[str]) -> str:
    """The packaged .desktop text with ``Exec`` and ``TryExec`` pointing at ``command``.

    Parameters
    ----------
    template : str
        Contents of the packaged ``.desktop`` file (``Exec=dgp-studio %F``).
    command : sequence of str
        Program (an absolute path) and leading arguments, as from :func:`launcher_command`.

    Returns
    -------
    str
        The entry with ``Exec=<quoted command> %F`` and ``TryExec=<program>``; all other
        lines unchanged.

    Raises
    ------
    ValueError
        If ``command`` is empty, its program is not absolute, or ``template`` has no
        ``Exec=`` line.
    """
    if not command or not Path(command[0]).is_absolute():
        raise ValueError(f"the launcher command {list(command)!r} must start with an absolute path.")
    exec_value = " ".join(_quote_exec_argument(argument) for argument in command) + " %F"
    lines = template.splitlines()
    if not any(line.startswith("Exec=") for line in lines):
        raise ValueError("the packaged desktop entry has no Exec= line.")
    rewritten = []
    for line in lines:
        if line.startswith("Exec="):
            line = "Exec=" + _escape_key_file_value(exec_value)
        elif line.startswith("TryExec="):
            # TryExec is a plain path (no quoting); the entry is hidden if it stops existing.
            line = "TryExec=" + _escape_key_file_value(command[0])
        rewritten.append(line)
    return "\n".join(rewritten) + "\n"


def default_data_home() -> Path:
    """``$XDG_DATA_HOME``, or ``~/.local/share`` when it is unset or not absolute (XDG spec)."""
    configured = os.environ.get("XDG_DATA_HOME", "")
    if configured and Path(configured).is_absolute():
        return Path(configured)
    return Path.home() / ".local" / "share"


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temporary:
            temporary.write(data)
            temporary.flush()
            os.fsync(temporary.fileno())
        # mkstemp creates 0600; menus and icon caches may be built by other tools.
        os.chmod(temporary_name, 0o644)
        os.replace(temporary_name, path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise


def _refresh_mime_cache(data_home: Path) -> None:
    """Best effort: rebuild ``applications/mimeinfo.cache`` so "Open with" lists the app at once.

    Only the MIME cache: a per-user icon-theme cache would have to be kept up to date by every
    other program that installs an icon there, so none is created.
    """
    if shutil.which("update-desktop-database") is None:
        return
    try:
        subprocess.run(
            ["update-desktop-database", "-q", str(data_home / "applications")],
            check=False, capture_output=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        pass    # a stale cache only delays "Open with"; the entry itself is in place


def _refresh_shared_mime_database(data_home: Path) -> str | None:
    """Best effort: rebuild the shared MIME database under ``data_home/mime`` from its packages.

    Returns
    -------
    str or None
        None when the database was rebuilt, else one sentence saying why not (the package
        file is in place either way and is read the next time the database is rebuilt).
    """
    mime_folder = data_home / "mime"
    if shutil.which("update-mime-database") is None:
        return (
            f"update-mime-database is not installed, so {mime_folder} was not rebuilt: session "
            "files (.dgps) are recognised once it runs (Debian/Ubuntu package shared-mime-info)."
        )
    try:
        result = subprocess.run(
            ["update-mime-database", str(mime_folder)],
            check=False, capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return (
            f"update-mime-database {mime_folder} could not run ({error}): "
            "session files (.dgps) are not recognised yet."
        )
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        detail = f": {reason[-1]}" if reason else ""
        return (
            f"update-mime-database {mime_folder} failed (exit status {result.returncode}{detail}): "
            "session files (.dgps) are not recognised yet."
        )
    return None


def install_desktop_entry(
    *, launcher: Path | None = None, data_home: Path | None = None, notes: list[str] | None = None
) -> list[Path]:
    """Install the desktop entry, AppStream metainfo, icons and session file type for the current user.

    Parameters
    ----------
    launcher : pathlib.Path, optional
        Program the menu entry starts (made absolute). Default: :func:`launcher_command`,
        i.e. this installation's ``dgp-studio`` or ``python -m dgp_studio``.
    data_home : pathlib.Path, optional
        Base folder of the per-user data files. Default: :func:`default_data_home`
        (``$XDG_DATA_HOME`` or ``~/.local/share``).
    notes : list of str, optional
        Receives one sentence per best-effort step that did not happen, such as the shared
        MIME database left unrebuilt because ``update-mime-database`` is missing.

    Returns
    -------
    list of pathlib.Path
        The files written: the ``.desktop`` entry, the metainfo, the scalable icon, the
        256×256 icon and the shared-mime-info package, in that order. Each replaced any
        earlier copy atomically.

    Raises
    ------
    FileNotFoundError
        If the installation lacks its packaging files.
    OSError
        If a file cannot be written.
    """
    command = [str(Path(launcher).absolute())] if launcher is not None else launcher_command()
    base = Path(data_home) if data_home is not None else default_data_home()
    template = _read_packaging_file(DESKTOP_FILE_NAME).decode("utf-8")
    targets = [
        (base / "applications" / DESKTOP_FILE_NAME,
         desktop_entry_text(template, command=command).encode("utf-8")),
        (base / "metainfo" / METAINFO_FILE_NAME, _read_packaging_file(METAINFO_FILE_NAME)),
        (base / "icons" / "hicolor" / "scalable" / "apps" / SCALABLE_ICON_NAME,
         _read_packaging_file(f"icons/{SCALABLE_ICON_NAME}")),
        (base / "icons" / "hicolor" / f"{BITMAP_ICON_SIZE}x{BITMAP_ICON_SIZE}" / "apps" / BITMAP_ICON_NAME,
         _read_packaging_file(f"icons/{BITMAP_ICON_NAME}")),
        (base / "mime" / "packages" / MIME_PACKAGE_FILE_NAME, _read_packaging_file(MIME_PACKAGE_SOURCE_NAME)),
    ]
    # File type, icons and metainfo first, the entry last: a menu that notices the new entry
    # finds its icon and the type it opens.
    for path, data in reversed(targets):
        _write_atomically(path, data)
    mime_note = _refresh_shared_mime_database(base)
    if mime_note is not None and notes is not None:
        notes.append(mime_note)
    _refresh_mime_cache(base)
    return [path for path, _ in targets]
