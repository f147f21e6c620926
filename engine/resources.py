"""Read-only data shipped with dgp-studio: presets, class names, icons.

The files live in the repository's top-level ``resources/`` folder, which an
editable install (``pip install -e .``) leaves in place beside ``engine/``; a
frozen (PyInstaller) bundle carries the same folder next to the executable's
unpacked modules.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path, PurePosixPath

IMAGENET_CLASSES_FILE = "imagenet_classes.json"
IMAGENET_CLASS_COUNT = 1000


def _resource_roots() -> list[Path]:
    roots = [Path(__file__).resolve().parent.parent / "resources"]
    # A regular (non-editable) install ships the folder as the package
    # ``dgp_studio_resources`` (see pyproject.toml's package-dir).
    try:
        import importlib.util

        spec = importlib.util.find_spec("dgp_studio_resources")
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(location) for location in spec.submodule_search_locations)
    except (ImportError, ValueError):
        pass
    bundle_root = getattr(sys, "_MEIPASS", None)  # set by PyInstaller at run time
    if bundle_root:
        roots.append(Path(bundle_root) / "resources")
    return roots


def resource_path(*parts: str) -> Path:
    """Path of a file or folder inside the top-level ``resources/`` folder.

    Parameters
    ----------
    *parts : str
        Path components below ``resources/``, e.g. ``("presets", "sr.toml")``.
        Absolute parts and ``..`` are refused: built-in resources never point
        outside their folder.

    Returns
    -------
    pathlib.Path
        Absolute path; it exists unless the caller asked for a missing file
        (the ``resources/`` folder itself always exists).

    Raises
    ------
    ValueError
        If a part is absolute or climbs out with ``..``.
    FileNotFoundError
        If no ``resources/`` folder is found (a broken installation).
    """
    relative = PurePosixPath(*parts) if parts else PurePosixPath()
    if relative.is_absolute() or ".." in relative.parts or any(Path(p).is_absolute() for p in parts):
        raise ValueError(f"resource path {'/'.join(parts)!r} must stay inside the resources folder.")
    for root in _resource_roots():
        if root.is_dir():
            return root.joinpath(*relative.parts)
    searched = ", ".join(str(root) for root in _resource_roots())
    raise FileNotFoundError(f"the dgp-studio resources folder is missing (looked in {searched}).")


@lru_cache(maxsize=1)
def _imagenet_classes() -> tuple[tuple[str, str], ...]:
    path = resource_path(IMAGENET_CLASSES_FILE)
    entries = json.loads(path.read_text(encoding="utf-8"))
    if len(entries) != IMAGENET_CLASS_COUNT or any(
        entry["index"] != position for position, entry in enumerate(entries)
    ):
        raise ValueError(f"{path}: expected {IMAGENET_CLASS_COUNT} classes listed in index order.")
    return tuple((entry["wnid"], entry["name"]) for entry in entries)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard index order.

    Index ``i`` is BigGAN's class ``i`` (0 "tench", 1 "goldfish", …, 999
    "toilet tissue"). Names are unique: the two WordNet synsets that share a
    short name are told apart as "crane bird" (134) / "crane" (517) and
    "maillot" (638) / "maillot tank suit" (639).

    Returns
    -------
    list of str
        A new list of length 1000 (callers may modify it).
    """
    return [name for _, name in _imagenet_classes()]
