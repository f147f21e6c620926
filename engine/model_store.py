"""Imported BigGAN models: a folder per model with a ``model.json`` card.

The app keeps imported models under platformdirs' ``user_data_dir``; the
engine only receives that folder as ``root``::

    <root>/<id>/model.json          the card (below)
    <root>/<id>/G_ema_128.pth       a copy of the user's file ("copy" mode), or a
    <root>/<id>/D_128.pth           symbolic link to it ("link" mode)

The card records the display name, the kind ("BigGAN-128 ch96"), the
architecture inferred from the tensor shapes, every file's name, size and
SHA-256, when and from where it was imported, whether a discriminator came
with it and, if not, why that matters. The built-in model shipped in
``resources/models/builtin-64`` is listed first and cannot be removed.

Every file is validated by loading it through :func:`engine.models.load_biggan`
(``torch.load(weights_only=True)``, so a checkpoint can never run code) before
it is added; a copy is written into a hidden temporary folder and renamed
into place, so an interrupted import leaves nothing behind.

The module also provides :func:`safe_join` (validating relative paths read
from files such as the app's ``.dgps`` sessions) and :func:`main`, the
``dgp-studio models`` command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

from engine.biggan import BigGANConfig
from engine.checksums import sha256_file
from engine.errors import BadInputError
from engine.files import describe_os_error, fsync_folder, write_bytes_atomically

logger = logging.getLogger(__name__)

CARD_FILE = "model.json"
CARD_FORMAT = "dgp-studio-model"
CARD_FORMAT_VERSION = 1
BUILTIN_ID = "builtin"
BUILTIN_FOLDER = ("models", "builtin-64")

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_TEMPORARY_PREFIX = ".import-"
_DISCARD_PREFIX = ".discard-"
DOWNLOADS_FOLDER = ".downloads"

# The released DGP checkpoints (shared/fixtures/biggan_checkpoint_manifests.json): the
# reference's --load_weights suffix for each architecture. All are ImageNet-1k, 120-d latent,
# 128-d shared embedding, attention at 64 px.
_RELEASES = {
    (128, 96, 96): "128",
    (256, 96, 96): "256",
    (256, 64, 64): "ch64_256",
}

NO_DISCRIMINATOR_WARNING = (
    "No discriminator was imported: DGP measures its loss in the discriminator's features, so "
    "restore refuses this model until the matching D file is imported (a pixel loss alone is clearly "
    "worse in the DGP paper's ablation, Table 4: colorization classification accuracy 49.1% instead "
    "of 62.8%, super-resolution NIQE 6.54 instead of 4.90)."
)


# --------------------------------------------------------------------------
# Paths


def safe_join(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """``root / relative`` for a path read from a file, refusing any way out of ``root``.

    Parameters
    ----------
    root : path
        The folder the result must stay in (e.g. the folder of a ``.dgps``
        session file).
    relative : str or path
        A relative path with ``/`` or ``\\`` separators, as written by
        dgp-studio on any system.

    Returns
    -------
    pathlib.Path
        The joined path with symbolic links resolved; it lies inside
        ``root`` (resolved) and need not exist.

    Raises
    ------
    BadInputError
        For an empty path, an absolute path or drive (``/x``, ``C:\\x``,
        ``\\\\server\\share``), any ``..`` component, a NUL character, or a
        path that leaves ``root`` through a symbolic link.
    """
    text = os.fspath(relative)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if not text or "\x00" in text:
        raise BadInputError(f"path {text!r} is empty or contains a NUL character.")
    # Judge the text by both path flavours: a session written on Windows may be opened on Linux.
    # A drive ("C:", "\\\\server\\share") or a leading separator is absolute on one system or the other.
    if PureWindowsPath(text).drive or text.startswith(("/", "\\")):
        raise BadInputError(f"path {text!r} must be relative to {root}, not absolute.")
    parts = [part for part in re.split(r"[\\/]+", text) if part not in ("", ".")]
    if not parts:
        raise BadInputError(f"path {text!r} names no file inside {root}.")
    if ".." in parts:
        raise BadInputError(f"path {text!r} climbs out of {root} with '..'.")
    root_resolved = Path(root).resolve()
    candidate = root_resolved.joinpath(*parts).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise BadInputError(f"path {text!r} leaves {root} through a symbolic link.")
    return candidate


# --------------------------------------------------------------------------
# Kinds


def model_kind(config: BigGANConfig) -> str:
    """The short name of an architecture: ``"BigGAN-<resolution> ch<width>"``.

    ``"BigGAN-128 ch96"``, ``"BigGAN-256 ch96"`` and ``"BigGAN-256 ch64"`` are
    the released DGP models; other sizes follow the same pattern (e.g. the
    built-in ``"BigGAN-64 ch32"``). A discriminator of another width than
    the generator is named too: ``"BigGAN-256 ch96 (D ch64)"``.
    """
    kind = f"BigGAN-{config.resolution} ch{config.g_ch}"
    if config.d_ch != config.g_ch:
        kind += f" (D ch{config.d_ch})"
    return kind


def released_checkpoint(config: BigGANConfig) -> str | None:
    """The reference's ``--load_weights`` suffix if ``config`` is a released architecture, else None."""
    suffix = _RELEASES.get((config.resolution, config.g_ch, config.d_ch))
    if suffix is None:
        return None
    same_layout = (
        config.n_classes == 1000 and config.shared_dim == 128 and config.effective_dim_z in (119, 120)
        and tuple(config.g_attention) == (64,) and tuple(config.d_attention) == (64,)
        and config.bottom_width == 4
    )
    return suffix if same_layout else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


# --------------------------------------------------------------------------
# Cards


@dataclass(frozen=True)
class StoredModel:
    """One model of the store, as described by its card."""

    id: str
    name: str
    kind: str
    folder: Path
    card: dict = field(compare=False)
    builtin: bool = False

    @property
    def has_discriminator(self) -> bool:
        return bool(self.card.get("has_discriminator", "D" in self.card.get("files", {})))

    @property
    def warning(self) -> str | None:
        return self.card.get("warning") or None

    def file_path(self, role: str) -> Path | None:
        """Where the ``"G"`` or ``"D"`` file is read from (a link's target for linked files)."""
        record = self.card.get("files", {}).get(role)
        if record is None:
            return None
        if record.get("mode") == "link" and record.get("target"):
            return Path(record["target"])
        return self.folder / Path(record["name"]).name

    @property
    def g_path(self) -> Path:
        path = self.file_path("G")
        if path is None:
            raise BadInputError(f"{self.folder / CARD_FILE}: the card lists no generator file.")
        return path

    @property
    def d_path(self) -> Path | None:
        return self.file_path("D")


@dataclass(frozen=True)
class ModelListing:
    """``ModelStore.list()``: the models (built-in first) and what could not be listed."""

    models: tuple[StoredModel, ...]
    builtin_missing: str | None = None     # why the built-in model is absent, if it is
    problems: tuple[str, ...] = ()         # unreadable cards, one sentence each

    def __iter__(self) -> Iterator[StoredModel]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __getitem__(self, index: int) -> StoredModel:
        return self.models[index]

    @property
    def ids(self) -> list[str]:
        return [model.id for model in self.models]


def _copy_with_digest(source: Path, destination: Path) -> tuple[int, str]:
    """Copy a file, hashing the bytes written; returns (size, sha256)."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as reader, open(destination, "xb") as writer:
        for chunk in iter(lambda: reader.read(1 << 20), b""):
            writer.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return size, digest.hexdigest()


def _read_card(folder: Path) -> dict:
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    if not isinstance(card, dict) or not isinstance(card.get("files"), dict) or "G" not in card["files"]:
        raise ValueError("the card lists no generator file")
    return card


def find_release_pair(folder: str | os.PathLike) -> tuple[Path, Path | None]:
    """The generator and matching discriminator in a folder of released files.

    Looks for ``G_ema*.pth`` (else ``G*.pth``, ``G*.safetensors``); the
    discriminator is the ``D`` file with the same suffix (``G_ema_128.pth``
    pairs with ``D_128.pth``), or the only ``D*`` file. Returns ``(G, None)``
    when there is no discriminator.

    Raises
    ------
    BadInputError
        No generator, or several generators (name the file instead).
    """
    folder = Path(folder)
    candidates = (
        sorted(folder.glob("G_ema*.pth"))
        or sorted(folder.glob("G*.pth"))
        or sorted(folder.glob("G*.safetensors"))
    )
    if not candidates:
        raise BadInputError(
            f"{folder}: the folder holds no generator file (G_ema*.pth, G*.pth or G*.safetensors)."
        )
    if len(candidates) > 1:
        names = ", ".join(path.name for path in candidates)
        raise BadInputError(
            f"{folder}: the folder holds several generators ({names}); import one file by name."
        )
    generator = candidates[0]
    suffix = re.sub(r"^G(_ema)?", "", generator.stem)
    discriminators = sorted(folder.glob("D*.pth")) + sorted(folder.glob("D*.safetensors"))
    same_suffix = [path for path in discriminators if path.stem == f"D{suffix}"]
    if same_suffix:
        return generator, same_suffix[0]
    if len(discriminators) == 1:
        return generator, discriminators[0]
    if discriminators:
        names = ", ".join(path.name for path in discriminators)
        raise BadInputError(
            f"{folder}: no discriminator matches {generator.name} and several others are there "
            f"({names}); give the D file by name."
        )
    return generator, None


# --------------------------------------------------------------------------
# The store


class ModelStore:
    """Imported models under ``root`` plus the built-in one.

    Parameters
    ----------
    root : path
        Folder of imported models (created if missing).
    builtin_folder : path, optional
        Where the built-in model's card lives; defaults to
        ``resources/models/builtin-64`` (tests point it elsewhere).
    """

    def __init__(self, root: str | os.PathLike, *, builtin_folder: str | os.PathLike | None = None) -> None:
        self.root = Path(root)
        self._builtin_folder = None if builtin_folder is None else Path(builtin_folder)
        self._lock = threading.Lock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"{self.root}: cannot create the models folder ({error.strerror}).") from None

    # -- reading ----------------------------------------------------------------
    def builtin_folder(self) -> Path:
        if self._builtin_folder is not None:
            return self._builtin_folder
        from engine.resources import resource_path

        return resource_path(*BUILTIN_FOLDER)

    def _builtin(self) -> tuple[StoredModel | None, str | None]:
        try:
            folder = self.builtin_folder()
        except FileNotFoundError as error:
            return None, str(error)
        if not (folder / CARD_FILE).is_file():
            return None, f"the built-in model is not installed ({folder / CARD_FILE} does not exist)."
        try:
            card = _read_card(folder)
        except (OSError, ValueError) as error:
            return None, f"{folder / CARD_FILE}: the built-in model's card is unreadable ({error})."
        model = StoredModel(
            id=BUILTIN_ID, name=str(card.get("name", "Built-in model")),
            kind=str(card.get("kind", "BigGAN")), folder=folder, card=card, builtin=True,
        )
        return model, None

    def _folder_of(self, model_id: str) -> Path:
        if not isinstance(model_id, str) or not _ID_PATTERN.match(model_id):
            raise BadInputError(
                f"model id {model_id!r} is not a valid id (lowercase letters, digits, '.', '-', '_')."
            )
        return safe_join(self.root, model_id)

    def _load(self, folder: Path) -> StoredModel:
        card = _read_card(folder)
        return StoredModel(
            id=folder.name, name=str(card.get("name", folder.name)), kind=str(card.get("kind", "BigGAN")),
            folder=folder, card=card,
        )

    def list(self) -> ModelListing:
        """The built-in model (if installed) first, then imported models oldest first."""
        builtin, builtin_missing = self._builtin()
        models: list[StoredModel] = [builtin] if builtin is not None else []
        problems: list[str] = []
        imported: list[StoredModel] = []
        for folder in sorted(self.root.iterdir()) if self.root.is_dir() else ():
            if not folder.is_dir() or not _ID_PATTERN.match(folder.name):
                continue
            try:
                imported.append(self._load(folder))
            except (OSError, ValueError) as error:
                problems.append(f"{folder / CARD_FILE}: unreadable model card ({error}).")
        imported.sort(key=lambda model: (str(model.card.get("imported_at", "")), model.id))
        return ModelListing(
            models=tuple(models + imported), builtin_missing=builtin_missing, problems=tuple(problems)
        )

    def get(self, model_id: str) -> StoredModel:
        """The model with this id (``"builtin"`` for the built-in one)."""
        if model_id == BUILTIN_ID:
            builtin, missing = self._builtin()
            if builtin is None:
                raise BadInputError(missing or "the built-in model is not installed.")
            return builtin
        folder = self._folder_of(model_id)
        if not (folder / CARD_FILE).is_file():
            raise BadInputError(f"no imported model has the id {model_id!r} in {self.root}.")
        try:
            return self._load(folder)
        except (OSError, ValueError) as error:
            raise BadInputError(f"{folder / CARD_FILE}: unreadable model card ({error}).") from None

    # -- checking ---------------------------------------------------------------
    def verify(self, model_id: str) -> list[str]:
        """Problems with a model's files, one sentence each (empty: all files match their card).

        Every file is re-hashed: for copies this finds damaged files, for links
        a target that was changed, moved or deleted since the import.
        """
        model = self.get(model_id)
        problems: list[str] = []
        files = model.card.get("files", {})
        if not isinstance(files, dict):
            return [f"{model.id}: its model.json lists its files as {type(files).__name__}, not an object."]
        for role, record in sorted(files.items()):
            if not isinstance(record, dict) or not isinstance(record.get("name"), str):
                problems.append(f"{model.id}: model.json's {role} entry is not an object with a file name.")
                continue
            for field_name, kinds in (("size", int), ("sha256", str), ("target", str), ("mode", str)):
                if field_name in record and (not isinstance(record[field_name], kinds)
                                             or isinstance(record[field_name], bool)):
                    problems.append(f"{model.id}: model.json's {role} {field_name} is {record[field_name]!r}, "
                                    f"not a {kinds.__name__}.")
                    break
            else:
                problems.extend(self._verify_file(model, role, record))
        return problems

    def _verify_file(self, model: StoredModel, role: str, record: dict) -> list[str]:
        """Problems with one file of a card whose fields have the right types."""
        try:
            path = model.file_path(role)
        except (TypeError, ValueError, KeyError) as error:
            return [f"{model.id}: model.json's {role} entry cannot be used ({error})."]
        linked = record.get("mode") == "link"
        label = f"{model.id}: the {role} file {path}"
        if path is None or not path.is_file():
            why = " (the link's target was moved or deleted)." if linked else "."
            return [f"{label} is missing{why}"]
        problems: list[str] = []
        if linked and (model.folder / record["name"]).is_symlink():
            pointed = Path(os.readlink(model.folder / record["name"]))
            if pointed != path:
                problems.append(f"{label}: the link in {model.folder} now points to {pointed}.")
        size = path.stat().st_size
        if "size" in record and size != record["size"]:
            problems.append(
                f"{label} has {size} bytes, not the {record['size']} recorded at import"
                + (" (the link's target changed)." if linked else " (it is damaged).")
            )
            return problems
        if "sha256" in record and sha256_file(path) != record["sha256"]:
            problems.append(
                f"{label} no longer matches the SHA-256 recorded at import"
                + (" (the link's target changed)." if linked else " (it is damaged).")
            )
        return problems

    # -- changing ---------------------------------------------------------------
    def remove(self, model_id: str) -> None:
        """Delete an imported model (for linked files only the links, never their targets)."""
        if model_id == BUILTIN_ID:
            raise BadInputError("the built-in model cannot be removed.")
        folder = self._folder_of(model_id)
        if not folder.is_dir():
            raise BadInputError(f"no imported model has the id {model_id!r} in {self.root}.")
        with self._lock:
            discard = self.root / f"{_DISCARD_PREFIX}{uuid.uuid4().hex}"
            os.replace(folder, discard)   # gone from the listing at once, even if deleting is slow
            # rmtree removes symbolic links themselves and never follows them into their targets.
            shutil.rmtree(discard, ignore_errors=True)

    def import_pair(
        self,
        g_path: str | os.PathLike,
        d_path: str | os.PathLike | None = None,
        *,
        mode: str = "copy",
        name: str | None = None,
    ) -> StoredModel:
        """Validate a BigGAN generator (and discriminator) and add it to the store.

        Parameters
        ----------
        g_path : path
            The generator file (BigGAN-PyTorch ``.pth`` state dict or this
            project's safetensors), or a folder holding the released names
            ``G_ema*.pth`` / ``D*.pth`` (see :func:`find_release_pair`).
        d_path : path, optional
            The discriminator. Without one the model is imported with
            ``has_discriminator=False`` and a warning: DGP needs D.
        mode : {"copy", "link"}
            ``"copy"`` copies the files into the store (atomically);
            ``"link"`` stores symbolic links (or, where they cannot be made,
            only the paths) so big files are not duplicated; :meth:`verify`
            then reports when the originals change.
        name : str, optional
            Display name; default: the kind and the generator's file name.

        Returns
        -------
        StoredModel

        Raises
        ------
        BadInputError
            Missing files; a checkpoint that is not a BigGAN state dict, is
            truncated, is of another architecture or contains code (refused
            without running it); a G and D that are not a pair; a model that
            is already imported.
        """
        return self._import(g_path, d_path, mode=mode, name=name, source=None, move=False)

    def _import(
        self, g_path, d_path, *, mode: str, name: str | None, source: str | None, move: bool,
        origins: dict[str, str] | None = None,
    ) -> StoredModel:
        from engine.models import load_biggan

        if mode not in ("copy", "link"):
            raise BadInputError(f"import mode {mode!r} must be 'copy' or 'link'.")
        g_path = Path(g_path).expanduser()
        if g_path.is_dir():
            if d_path is not None:
                raise BadInputError(
                    f"{g_path}: give either a folder of released files or the G and D files, not both."
                )
            g_path, d_path = find_release_pair(g_path)
        files = {"G": g_path.absolute()}
        if d_path is not None:
            files["D"] = Path(d_path).expanduser().absolute()
        if len({path.name for path in files.values()}) != len(files):
            raise BadInputError(
                f"{files['G']}: the generator and discriminator files must have different names."
            )
        for role, path in files.items():
            if not path.is_file():
                what = "generator" if role == "G" else "discriminator"
                raise BadInputError(f"{path}: the {what} file does not exist.")
        before = {role: path.stat() for role, path in files.items()}
        # Loading is the validation: weights_only refuses code, the key sets and shapes must match.
        generator, discriminator = load_biggan(files["G"], files.get("D"), allow_missing_discriminator=True)
        config = generator.config
        del generator, discriminator
        kind = model_kind(config)
        warnings_text = []
        if "D" not in files:
            warnings_text.append(NO_DISCRIMINATOR_WARNING)
        elif config.d_ch != config.g_ch:
            warnings_text.append(
                f"The discriminator's width (ch{config.d_ch}) differs from the generator's "
                f"(ch{config.g_ch}); the released pairs share one width, so check that these files "
                f"belong together."
            )

        with self._lock:
            temporary = self.root / f"{_TEMPORARY_PREFIX}{uuid.uuid4().hex}"
            temporary.mkdir()
            try:
                records: dict[str, dict] = {}
                for role, path in files.items():
                    stored = temporary / path.name
                    original = (origins or {}).get(role, str(path))
                    record: dict = {"name": path.name, "mode": mode, "original": original}
                    if mode == "copy":
                        if move:
                            os.replace(path, stored)
                            record["size"], record["sha256"] = stored.stat().st_size, sha256_file(stored)
                        else:
                            record["size"], record["sha256"] = _copy_with_digest(path, stored)
                            after, earlier = path.stat(), before[role]
                            if (after.st_size, after.st_mtime_ns) != (earlier.st_size, earlier.st_mtime_ns):
                                raise BadInputError(
                                    f"{path}: the file changed while it was being imported; try again."
                                )
                    else:
                        record["target"] = str(path.resolve())
                        record["size"], record["sha256"] = path.stat().st_size, sha256_file(path)
                        try:
                            os.symlink(record["target"], stored)
                            record["link"] = "symlink"
                        except (OSError, NotImplementedError):
                            # Windows without the symlink privilege: the card's path is the reference.
                            record["link"] = "path"
                    records[role] = record
                identity = hashlib.sha256(
                    "".join(records[role]["sha256"] for role in sorted(records)).encode("ascii")
                ).hexdigest()
                model_id = f"{_slug(kind)}-{identity[:10]}"
                destination = self.root / model_id
                if destination.exists():
                    raise BadInputError(f"{files['G']}: this model is already imported as {model_id!r}.")
                card = {
                    "format": CARD_FORMAT,
                    "version": CARD_FORMAT_VERSION,
                    "id": model_id,
                    "name": name.strip() if name and name.strip() else f"{kind} ({files['G'].stem})",
                    "kind": kind,
                    "released_checkpoint": released_checkpoint(config),
                    "architecture": config.to_json_dict(),
                    "files": records,
                    "imported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "source": source or " + ".join(str(path) for path in files.values()),
                    "has_discriminator": "D" in files,
                    "warning": " ".join(warnings_text) or None,
                }
                write_bytes_atomically(temporary / CARD_FILE, json.dumps(card, indent=1).encode("utf-8"))
                fsync_folder(temporary)
                os.replace(temporary, destination)
                fsync_folder(self.root)
            except BaseException:
                shutil.rmtree(temporary, ignore_errors=True)
                raise
        return self._load(destination)

    def download_and_import(
        self,
        urls: Sequence[str],
        sha256s: Sequence[str],
        *,
        name: str | None = None,
        should_stop: threading.Event | None = None,
        on_progress=None,
        **download_options,
    ):
        """Download a G (and D) with :func:`engine.download.download`, then import them.

        Files are fetched into ``<root>/.downloads`` (a broken transfer resumes
        there on the next call) and moved into the store after validation.
        ``on_progress(Progress)`` is called for every progress event. Returns
        the :class:`StoredModel`, or None when cancelled. When a transfer fails,
        files already downloaded and verified stay there too, so the next call
        does not fetch them again; a cancel or an import removes them.
        """
        from engine.download import DownloadError

        if not 1 <= len(urls) <= 2:
            raise BadInputError("give one URL (the generator) or two (generator, then discriminator).")
        if len(sha256s) != len(urls):
            raise BadInputError(f"give one --sha256 per URL: {len(urls)} URLs but {len(sha256s)} checksums.")
        paths: list[Path] = []
        folders: list[Path] = []
        keep_for_resume = False
        try:
            return self._download_then_import(
                urls, sha256s, paths, folders, name=name, should_stop=should_stop, on_progress=on_progress,
                download_options=download_options,
            )
        except DownloadError:
            keep_for_resume = True
            raise
        finally:
            for path in [] if keep_for_resume else paths:
                path.unlink(missing_ok=True)
            for folder in folders:
                try:
                    folder.rmdir()   # stays when a kept .part waits to be resumed
                except OSError:
                    pass

    def _download_then_import(
        self, urls, sha256s, paths: list[Path], folders: list[Path], *, name, should_stop, on_progress,
        download_options,
    ):
        from engine.download import download, file_name_from_url

        for index, (url, digest) in enumerate(zip(urls, sha256s)):
            role = ("G", "D")[index]
            file_name = file_name_from_url(url, fallback=f"{role}.pth")
            # Sharing links often end in a non-file segment ("uc", "download"); name those by role.
            taken = any(path.name == file_name for path in paths)
            if taken or not file_name.endswith((".pth", ".pt", ".safetensors")):
                file_name = f"{role}.pth"
            # One folder per expected checksum: a re-run with the same file resumes its .part.
            folder = self.root / DOWNLOADS_FOLDER / digest.strip().lower()[:32]
            folder.mkdir(parents=True, exist_ok=True)
            folders.append(folder)
            target = folder / file_name
            finished = yield_from_download(
                download(url, target, expected_sha256=digest, should_stop=should_stop, **download_options),
                on_progress,
            )
            if not finished:
                return None
            paths.append(target)
        return self._import(
            paths[0], paths[1] if len(paths) > 1 else None, mode="copy", name=name,
            source=" + ".join(urls), move=True,
            origins={role: url for role, url in zip(("G", "D"), urls)},
        )


def yield_from_download(generator, on_progress) -> bool:
    """Drain a download generator, passing its events to ``on_progress``; returns its result.

    If ``on_progress`` raises (e.g. KeyboardInterrupt), the generator is closed at once,
    which deletes its partial file.
    """
    try:
        while True:
            try:
                event = next(generator)
            except StopIteration as stop:
                return bool(stop.value)
            if on_progress is not None:
                on_progress(event)
    finally:
        generator.close()


# --------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgp-studio models",
        description="List, import, download, verify and remove BigGAN models for DGP.",
        epilog=(
            "examples:\n"
            "  dgp-studio models import ~/pretrained/G_ema_128.pth ~/pretrained/D_128.pth\n"
            "  dgp-studio models import ~/pretrained --link\n"
            "  dgp-studio models download https://example.org/G_ema_128.pth \\\n"
            "      https://example.org/D_128.pth \\\n"
            "      --sha256 <G digest> --sha256 <D digest>\n"
            "  dgp-studio models verify"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", type=Path, default=None, metavar="DIR",
                        help="folder of imported models (default: the app's model folder)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="list the models, the built-in one first")
    importing = commands.add_parser("import", help="validate and import a generator and discriminator")
    importing.add_argument("g", type=Path, metavar="G",
                           help="generator file, or a folder with G_ema*.pth and D*.pth")
    importing.add_argument("d", type=Path, nargs="?", metavar="D", help="discriminator file (DGP needs it)")
    importing.add_argument("--link", action="store_true", help="link to the files instead of copying them")
    importing.add_argument("--name", metavar="N", help="display name")
    downloading = commands.add_parser("download",
                                      help="download a generator (and discriminator), then import")
    downloading.add_argument("urls", nargs="+", metavar="URL",
                             help="generator URL, then optionally the discriminator's")
    downloading.add_argument("--sha256", action="append", required=True, metavar="H",
                             help="expected SHA-256 of each file, in the order of the URLs")
    downloading.add_argument("--name", metavar="N", help="display name")
    removing = commands.add_parser("remove", help="delete an imported model")
    removing.add_argument("id", metavar="ID")
    verifying = commands.add_parser("verify", help="re-check the files' checksums")
    verifying.add_argument("id", nargs="?", metavar="ID", help="one model (default: all)")
    return parser


def _print_listing(listing: ModelListing) -> None:
    for model in listing:
        discriminator = "G+D" if model.has_discriminator else "G only"
        print(f"{model.id}\t{model.kind}\t{discriminator}\t{model.name}")
    if listing.builtin_missing:
        print(f"note: {listing.builtin_missing}", file=sys.stderr)
    for problem in listing.problems:
        print(f"note: {problem}", file=sys.stderr)


def _command_download(store: ModelStore, args) -> int:
    from tqdm import tqdm

    from engine.download import check_sha256

    digests = [check_sha256(value, what="--sha256") for value in args.sha256]
    stop = threading.Event()
    bars: dict[str, tqdm] = {}

    def show(event) -> None:
        url = event.extra.get("url", "")
        bar = bars.get(url)
        if bar is None:
            bar = bars[url] = tqdm(
                desc=event.detail.split(" ")[0], unit="B", unit_scale=True, unit_divisor=1024,
                disable=None, file=sys.stderr, dynamic_ncols=True, leave=True,
            )
        bar.total = event.total or None
        bar.n = event.done
        bar.refresh()

    try:
        model = store.download_and_import(
            args.urls, digests, name=args.name, should_stop=stop, on_progress=show
        )
    except KeyboardInterrupt:
        stop.set()
        print("dgp-studio models: download cancelled; no partial file was kept.", file=sys.stderr)
        return 130
    finally:
        for bar in bars.values():
            bar.close()
    if model is None:
        return 130
    print(model.id)
    if model.warning:
        print(f"warning: {model.warning}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``dgp-studio models …``; returns the exit status.

    0 done, 1 ``verify`` found problems, 2 bad input (one sentence on
    stderr), 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_request:   # argparse has printed its one-line error (or --help)
        return int(exit_request.code or 0)
    if args.root is None:
        print("dgp-studio models: --root DIR is needed (the app's command line passes its model folder).",
              file=sys.stderr)
        return 2
    try:
        if args.command in ("import", "download"):
            # The store folder is this command's output: checked before any file is read or fetched.
            from engine.files import check_output

            sources = [("the generator file", getattr(args, "g", None)), ("the discriminator file", getattr(args, "d", None))]
            check_output(args.root, option="--root", inputs=sources, folder=True, may_exist=True)
        store = ModelStore(args.root)
        if args.command == "list":
            _print_listing(store.list())
            return 0
        if args.command == "import":
            model = store.import_pair(args.g, args.d, mode="link" if args.link else "copy", name=args.name)
            print(model.id)
            if model.warning:
                print(f"warning: {model.warning}", file=sys.stderr)
            return 0
        if args.command == "download":
            return _command_download(store, args)
        if args.command == "remove":
            store.remove(args.id)
            return 0
        if args.command == "verify":
            ids = [args.id] if args.id else store.list().ids
            problems = [problem for model_id in ids for problem in store.verify(model_id)]
            for problem in problems:
                print(problem)
            if not problems:
                print(f"{len(ids)} model(s) verified.", file=sys.stderr)
            return 1 if problems else 0
    except BadInputError as error:
        print(f"dgp-studio models: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = error.filename or args.root
        print(f"dgp-studio models: {where} could not be used ({describe_os_error(error)}); nothing was imported.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dgp-studio models: interrupted.", file=sys.stderr)
        return 130
    return 2
