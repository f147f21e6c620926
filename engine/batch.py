"""Batch restore of whole folders: resumable, on a pool of local processes or a Ray cluster.

``dgp-studio batch INPUT... -o OUT_DIR --task TASK`` restores every image in the
given files and folders (recursively) and writes each result under ``OUT_DIR``
with the same relative path. The driver (this module) plans the batch, hands
photos to workers one at a time and is the only writer of the manifest:

* ``OUT_DIR/manifest.jsonl``: one JSON object per event of a photo ("started",
  then "done", "failed" or "cancelled"), appended and flushed line by line;
* ``OUT_DIR/manifest.csv``: the latest record of every photo, rewritten
  atomically after each one.

A photo's *key* is a SHA-256 over its bytes, its mask's bytes and every setting
that changes the result (task, class, preset, quick, factor, seed, iteration
scale, the model's identity). A second run skips a photo whose latest record is
"done" with the same key while its output is still there with the recorded
hash; everything else is restored again (``--no-retry-failed`` leaves failed
photos alone). Outputs are written atomically (a hidden temporary file in the
same folder, then a rename), so a killed batch leaves whole files or none; an
existing output is replaced only when the manifest shows this batch wrote it.

Workers (:mod:`multiprocessing` spawn processes here, Ray actors in
:mod:`engine.batch_ray`) load the model once and restore photos in turn through
:class:`engine.api.Engine`. A worker that dies takes its photo with it; the
driver gives the photo to another worker (twice at most) and starts a new one.

Examples::

    dgp-studio batch album/ -o restored/ --task colorize --quick
    dgp-studio batch scans/ --masks scans-masks/ -o filled/ --task inpaint --workers 2 --threads 1
    dgp-studio batch archive/ -o out/ --task sr --factor 4 --cluster auto
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import json
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Self

from engine.checksums import sha256_file
from engine.errors import BadInputError
from engine.files import is_temporary_name, write_bytes_atomically

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
WRITABLE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
TASK_CHOICES = ("colorize", "inpaint", "sr", "hybrid", "reconstruct", "defend")
MASK_TASKS = frozenset({"inpaint", "hybrid"})
MANIFEST_JSONL = "manifest.jsonl"
MANIFEST_CSV = "manifest.csv"
LOCK_NAME = ".dgp-batch.lock"
MANIFEST_FIELDS = (
    "input", "output", "task", "class", "seconds", "loss", "status", "error", "key",
    "output_sha256", "state", "attempt", "worker", "time",
)
MAX_ATTEMPTS = 3            # a photo whose worker dies is given to another one, twice at most
STATE_SUFFIX = ".dgpstate"
KEY_VERSION = 1             # bump when the meaning of a key changes


# --------------------------------------------------------------------------------------
# Settings and plan


@dataclass(frozen=True)
class BatchSettings:
    """Everything a worker needs to restore any photo of the batch the same way."""

    task: str
    class_: str = "auto"             # "auto", an ImageNet number or a class name
    preset: str | None = None
    quick: bool = False
    factor: int | None = None
    gray: bool = False
    iteration_scale: float = 1.0
    seed: int = 0
    model: str = "builtin"
    discriminator: str | None = None
    device: str = "auto"
    precision: str = "auto"
    threads: int = 1                 # torch threads per worker
    save_state: bool = False
    class_index: int | None = None   # resolved by the driver from class_
    model_identity: str = ""         # filled in by the driver

    def fingerprint(self) -> dict:
        """The settings that change a photo's result (the key's part beside the bytes)."""
        return {
            "version": KEY_VERSION, "task": self.task, "class_index": self.class_index,
            "preset": self.preset, "quick": self.quick, "factor": self.factor, "gray": self.gray,
            "iteration_scale": self.iteration_scale, "seed": self.seed, "model": self.model_identity,
            "save_state": self.save_state,
        }


@dataclass(frozen=True)
class BatchItem:
    """One photo of the batch: where it comes from, where it goes, and its key."""

    source: Path                 # absolute path of the photo (never written)
    relative: Path               # the photo's path relative to the input it was found in
    output: Path                 # OUT_DIR / relative (suffix .png when the photo's is not writable)
    mask: Path | None = None
    state: Path | None = None    # OUT_DIR / relative + .dgpstate with --save-state
    key: str = ""
    problem: str | None = None   # known before running: the photo is recorded as failed with it
    replace_output: bool = False  # the output exists and the manifest shows this batch wrote it
    attempt: int = 1

    @property
    def name(self) -> str:
        """The photo's output path relative to OUT_DIR, as the manifest names it."""
        return self.relative_output.as_posix()

    @property
    def relative_output(self) -> Path:
        return output_relative_path(self.relative)


def output_relative_path(relative: Path) -> Path:
    """Where a photo's result goes under OUT_DIR: the same path, PNG when its format cannot be written."""
    if relative.suffix.lower() in WRITABLE_SUFFIXES:
        return relative
    return relative.with_name(relative.name + ".png")


def _matches(relative: Path, patterns: Sequence[str]) -> bool:
    text = relative.as_posix()
    return any(fnmatch.fnmatch(text, pattern) or fnmatch.fnmatch(relative.name, pattern) for pattern in patterns)


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def find_images(
    inputs: Sequence[Path], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
    skip_folders: Sequence[Path] = (),
) -> list[tuple[Path, Path]]:
    """Every image in ``inputs`` (files, and folders searched recursively) as (absolute, relative).

    A folder's images are relative to that folder; a file given by name is
    relative to its own folder (its name alone). Hidden files and folders,
    files without an image suffix and anything inside ``skip_folders`` (the
    output and mask folders) are left out; ``include`` patterns (``*.jpg``,
    ``2019/*``), when given, keep only matching paths, and ``exclude``
    patterns drop matching ones. Order: inputs as given, each sorted by path.
    """
    skip = [folder.resolve() for folder in skip_folders]
    found: list[tuple[Path, Path]] = []
    for given in inputs:
        path = Path(given)
        if not path.exists():
            raise BadInputError(f"{path} does not exist.")
        if path.is_file():
            candidates = [(path.resolve(), Path(path.name))]
        else:
            root = path.resolve()
            candidates = []
            for folder, folder_names, file_names in os.walk(root):
                folder_path = Path(folder)
                folder_names[:] = sorted(
                    name for name in folder_names
                    if not name.startswith(".") and not any(_is_inside(folder_path / name, s) for s in skip)
                )
                for name in sorted(file_names):
                    if name.startswith("."):
                        continue
                    absolute = folder_path / name
                    candidates.append((absolute, absolute.relative_to(root)))
        for absolute, relative in candidates:
            if absolute.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if any(_is_inside(absolute, folder) for folder in skip):
                continue
            if include and not _matches(relative, include):
                continue
            if exclude and _matches(relative, exclude):
                continue
            found.append((absolute, relative))
    return found


def match_mask(relative: Path, masks: Path) -> Path | None:
    """The mask of a photo in the masks folder, matched by name.

    For ``sub/photo.jpg``: ``sub/photo.png``, ``sub/photo_mask.png``, then
    ``photo.png`` and ``photo_mask.png`` at the top of the masks folder.
    """
    stem = relative.stem
    folders = [relative.parent] if relative.parent != Path(".") else []
    folders.append(Path("."))
    for folder in folders:
        for name in (f"{stem}.png", f"{stem}_mask.png"):
            candidate = masks / folder / name
            if candidate.is_file():
                return candidate
    return None


def photo_key(source: Path, mask: Path | None, settings: BatchSettings) -> str:
    """SHA-256 over the photo's bytes, the mask's bytes and the settings that change the result."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings.fingerprint(), sort_keys=True).encode())
    for path in (source, mask):
        digest.update(b"\0file\0")
        if path is not None:
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def model_identity(model: str, discriminator: str | None) -> str:
    """A stable identity of the model files without loading them: the built-in card's hash or the files' hashes."""
    if model == "builtin":
        from engine.api import builtin_model_folder

        card = builtin_model_folder() / "model.json"
        try:
            return "builtin-" + json.loads(card.read_text())["files"]["G"]["sha256"]
        except (OSError, KeyError, ValueError):
            raise BadInputError(f"{card}: the built-in model is not installed; reinstall dgp-studio.") from None
    paths = [Path(model)] + ([Path(discriminator)] if discriminator else [])
    if paths[0].is_dir():
        paths = sorted(p for p in paths[0].iterdir() if p.suffix in (".pth", ".safetensors"))
    digest = hashlib.sha256()
    for path in paths:
        if not path.is_file():
            raise BadInputError(f"{path}: the model file does not exist.")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def plan_batch(
    inputs: Sequence[Path], out_dir: Path, settings: BatchSettings, *, masks: Path | None = None,
    include: Sequence[str] = (), exclude: Sequence[str] = (),
) -> list[BatchItem]:
    """The photos of a batch with their outputs, masks and keys (nothing is written).

    Raises :class:`BadInputError` for a batch that cannot start: an input that
    does not exist, an output folder that is a file or one of the input
    folders, a masks folder that does not exist, or no image at all.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: the output folder is a file; choose a folder.")
    out_resolved = out_dir.resolve()
    for given in inputs:
        if Path(given).is_dir() and Path(given).resolve() == out_resolved:
            raise BadInputError(
                f"{out_dir}: the output folder is an input folder; results would sit beside the "
                f"originals, so choose another folder."
            )
    if masks is not None and not Path(masks).is_dir():
        raise BadInputError(f"{masks}: the masks folder does not exist.")
    skip = [out_dir] + ([Path(masks)] if masks is not None else [])
    found = find_images(inputs, include=include, exclude=exclude, skip_folders=skip)
    if not found:
        raise BadInputError(
            f"{', '.join(str(p) for p in inputs)}: no image ({', '.join(sorted(IMAGE_SUFFIXES))}) "
            f"to restore was found."
        )
    sources = {absolute for absolute, _ in found}
    items: list[BatchItem] = []
    claimed: dict[Path, Path] = {}
    for absolute, relative in found:
        output = out_dir / output_relative_path(relative)
        state = output.with_name(output.name + STATE_SUFFIX) if settings.save_state else None
        mask = match_mask(relative, Path(masks)) if masks is not None and settings.task in MASK_TASKS else None
        problem = None
        if output.resolve() in claimed:
            problem = (f"{absolute}: its result {output} would be the same file as the result of "
                       f"{claimed[output.resolve()]}; rename one of them.")
        elif output.resolve() in sources:
            problem = f"{absolute}: its result {output} would replace an input photo; choose another output folder."
        elif settings.task == "inpaint" and mask is None:
            where = f"in {masks}" if masks is not None else "(no --masks folder was given)"
            problem = (f"{absolute}: no mask {where} matches it; inpainting needs "
                       f"{relative.stem}.png or {relative.stem}_mask.png, white = missing.")
        claimed.setdefault(output.resolve(), absolute)
        key = "" if problem else _safe_key(absolute, mask, settings)
        if key.startswith("!"):
            problem, key = key[1:], ""
        items.append(BatchItem(source=absolute, relative=relative, output=output, mask=mask, state=state,
                               key=key, problem=problem))
    return items


def _safe_key(source: Path, mask: Path | None, settings: BatchSettings) -> str:
    try:
        return photo_key(source, mask, settings)
    except OSError as error:
        failed = mask if mask is not None and source.is_file() else source
        return f"!{failed} cannot be read ({error.strerror or error})."


# --------------------------------------------------------------------------------------
# The manifest


class Manifest:
    """``manifest.jsonl`` (every record, appended) and ``manifest.csv`` (the latest per photo).

    Only the driver writes it. A line cut short by a killed process is
    ignored on reading and the next line starts on a line of its own.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.jsonl = self.out_dir / MANIFEST_JSONL
        self.csv = self.out_dir / MANIFEST_CSV
        self.records: list[dict] = []
        self.latest: dict[str, dict] = {}
        self.written_outputs: dict[str, set[str]] = {}   # output name -> hashes this batch wrote
        self.claimed: set[str] = set()                    # outputs some run of this batch started
        if self.jsonl.exists():
            with open(self.jsonl, "rb") as stream:
                for line in stream:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and "output" in record:
                        self._remember(record)

    def _remember(self, record: dict) -> None:
        self.records.append(record)
        name = record["output"]
        self.latest[name] = record
        self.claimed.add(name)
        if record.get("status") == "done" and record.get("output_sha256"):
            self.written_outputs.setdefault(name, set()).add(record["output_sha256"])

    def append(self, record: dict) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, sort_keys=False) + "\n").encode()
        with open(self.jsonl, "ab") as stream:
            if stream.tell() > 0 and not self._ends_with_newline():
                stream.write(b"\n")
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())
        self._remember(record)
        self.write_csv()

    def _ends_with_newline(self) -> bool:
        with open(self.jsonl, "rb") as stream:
            stream.seek(-1, os.SEEK_END)
            return stream.read(1) == b"\n"

    def write_csv(self) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=MANIFEST_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for record in self.latest.values():
            writer.writerow({name: ("" if record.get(name) is None else record.get(name)) for name in MANIFEST_FIELDS})
        write_bytes_atomically(self.csv, text.getvalue().encode(), overwrite=True)


def _output_is_valid(item: BatchItem, record: dict) -> bool:
    if not item.output.is_file() or not record.get("output_sha256"):
        return False
    if item.state is not None and not item.state.is_file():
        return False
    try:
        return sha256_file(item.output) == record["output_sha256"]
    except OSError:
        return False


def decide(item: BatchItem, manifest: Manifest, *, retry_failed: bool = True) -> tuple[str, BatchItem]:
    """What to do with a photo on this run: ``"skip"``, ``"run"`` or ``"fail"`` (item.problem says why)."""
    if item.problem:
        return "fail", item
    record = manifest.latest.get(item.name)
    if record is not None and record.get("key") == item.key:
        if record.get("status") == "done" and _output_is_valid(item, record):
            return "skip", item
        if record.get("status") == "failed" and not retry_failed:
            return "skip", item
    if item.output.exists() or (item.state is not None and item.state.exists()):
        if item.name not in manifest.claimed or (item.output.exists() and not _written_by_batch(item, manifest)):
            return "fail", replace(item, problem=(
                f"{item.output}: a file of that name is already in the output folder and this batch "
                f"did not write it (or it was changed since); move it away or choose another output folder."))
        item = replace(item, replace_output=True)
    return "run", item


def _written_by_batch(item: BatchItem, manifest: Manifest) -> bool:
    """Whether the file at a photo's output is one this batch wrote, unchanged since.

    Its hash is one the manifest recorded, or (written just before a killed
    driver could record it) it carries the batch key this batch embeds.
    """
    try:
        if sha256_file(item.output) in manifest.written_outputs.get(item.name, set()):
            return True
        from PIL import Image

        with Image.open(item.output) as image:
            if "dgp-batch-key" in image.info:
                return True
            description = image.getexif().get(0x010E)      # EXIF ImageDescription (JPEG, WebP)
    except (OSError, ValueError):
        return False
    try:
        return "dgp-batch-key" in json.loads(description or "{}")
    except (TypeError, ValueError):
        return False


def remove_stale_temporaries(out_dir: Path) -> int:
    """Remove the hidden temporary files a killed batch left anywhere in OUT_DIR (the lock is held)."""
    removed = 0
    if not out_dir.is_dir():
        return 0
    for folder, _folders, names in os.walk(out_dir):
        for name in names:
            if is_temporary_name(name):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    return removed


class BatchLock:
    """An exclusive lock on OUT_DIR, so two batches never write the same folder at once."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self.handle = None

    def __enter__(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+b")
        try:
            import fcntl
        except ImportError:        # Windows: no advisory lock; the manifest still keeps runs apart
            return self
        try:
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise BadInputError(
                f"{self.path.parent}: another batch is writing to this output folder; wait for it to finish."
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()


# --------------------------------------------------------------------------------------
# One photo (runs inside a worker)


def restore_photo(engine, item: BatchItem, settings: BatchSettings, *, should_stop=None,
                  on_fraction: Callable[[float], None] | None = None) -> dict:
    """Restore one photo with a loaded :class:`engine.api.Engine` and write its result; returns its record.

    Never raises for a bad photo: the record's status is "failed" with the
    sentence, or "cancelled" when ``should_stop`` was set first (then nothing
    is written).
    """
    from engine import events as ev
    from engine.api import RestoreRequest
    from engine.errors import NonFiniteLossError
    from engine.imageio import load_image, load_mask, save_image

    started = time.perf_counter()
    record = base_record(item, settings)
    try:
        loaded = load_image(item.source)
        mask = None
        if item.mask is not None:
            mask = load_mask(item.mask, size=(loaded.width, loaded.height))
        request = RestoreRequest(
            image=loaded.rgb, task=settings.task, mask=mask, sr_factor=settings.factor,
            grayscale=settings.gray, class_index=settings.class_index, preset=settings.preset,
            quick=settings.quick, seed=settings.seed, iteration_scale=settings.iteration_scale,
            source_name=str(item.source),
        )
        final = None
        for event in engine.restore(request, should_stop=should_stop, frame_interval=3600.0):
            if isinstance(event, ev.Step) and on_fraction is not None:
                on_fraction(event.step / max(1, event.total_steps))
            if isinstance(event, (ev.Finished, ev.Cancelled)):
                final = event
        if final is None or isinstance(final, ev.Cancelled) or final.result is None:
            record.update(status="cancelled", error="the batch was interrupted before this photo finished.")
            return record
        result = final.result
        item.output.parent.mkdir(parents=True, exist_ok=True)
        label = engine.model.class_label(result.class_index)
        metadata = {
            "Software": "dgp-studio", "dgp-task": result.task, "dgp-preset": result.preset,
            "dgp-class": label, "dgp-steps": f"{result.steps_done}/{result.total_steps}",
            "dgp-batch-key": item.key,
        }
        if item.state is not None:
            result.state.save(item.state, overwrite=item.replace_output)     # atomic, like save_image
        # save_image writes a hidden temporary file beside the output and renames it.
        save_image(result.composite, item.output, metadata=metadata, overwrite=item.replace_output,
                   protect=item.source)
        record.update(
            status="done", error="", seconds=round(time.perf_counter() - started, 3), **{"class": label},
            loss=round(float(result.losses.get("total", float("nan"))), 6),
            output_sha256=sha256_file(item.output),
        )
    except (BadInputError, NonFiniteLossError) as error:
        record.update(status="failed", error=str(error), seconds=round(time.perf_counter() - started, 3))
    except MemoryError:
        record.update(status="failed", error=f"{item.source}: not enough memory to restore this photo.")
    except Exception as error:  # noqa: BLE001 - one bad photo never stops the batch
        record.update(status="failed", seconds=round(time.perf_counter() - started, 3),
                      error=f"{item.source}: unexpected error ({type(error).__name__}: {error}).")
    return record


def base_record(item: BatchItem, settings: BatchSettings, *, status: str = "started") -> dict:
    return {
        "input": str(item.source), "output": item.name, "task": settings.task, "class": None,
        "seconds": None, "loss": None, "status": status, "error": item.problem or "", "key": item.key,
        "output_sha256": None,
        "state": item.relative_output.with_name(item.relative_output.name + STATE_SUFFIX).as_posix()
        if item.state is not None else None,
        "attempt": item.attempt, "worker": None, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def load_worker_engine(settings: BatchSettings):
    """Load the model and build the engine a worker keeps for the whole batch."""
    from engine.api import Engine, load_model

    if settings.model == "builtin":
        model = load_model("builtin")
    else:
        model = load_model(Path(settings.model), settings.discriminator)
    return Engine(model, device=settings.device, precision=settings.precision, threads=settings.threads)


# --------------------------------------------------------------------------------------
# Local workers (multiprocessing, spawn)


class _StopWhenOrphaned:
    """``should_stop`` for a worker: the batch's stop event, or the driver having gone away."""

    def __init__(self, event, parent_pid: int) -> None:
        self.event = event
        self.parent_pid = parent_pid

    def is_set(self) -> bool:
        return self.event.is_set() or os.getppid() != self.parent_pid


def _local_worker(slot: int, settings: BatchSettings, inbox, outbox, stop, parent_pid: int) -> None:
    """A worker process: load the model once, then restore what the driver sends until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the driver handles Ctrl+C and tells us
    try:
        engine = load_worker_engine(settings)
    except BadInputError as error:
        outbox.put(("fatal", slot, str(error)))
        return
    except Exception as error:  # noqa: BLE001
        outbox.put(("fatal", slot, f"the model could not be loaded ({type(error).__name__}: {error})."))
        return
    outbox.put(("ready", slot, None))
    should_stop = _StopWhenOrphaned(stop, parent_pid)
    while True:
        try:
            item = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return
            continue
        if item is None:
            return
        last = [0.0]

        def report(fraction: float, last=last) -> None:
            now = time.monotonic()
            if now - last[0] > 0.5:
                last[0] = now
                outbox.put(("progress", slot, fraction))

        record = restore_photo(engine, item, settings, should_stop=should_stop, on_fraction=report)
        if os.getppid() != parent_pid:
            return
        outbox.put(("result", slot, record))


class LocalPool:
    """Worker processes on this machine, each with its own inbox; the driver assigns photos."""

    def __init__(self, settings: BatchSettings, workers: int) -> None:
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")
        self.settings = settings
        self.outbox = self.context.Queue()
        self.stop = self.context.Event()
        self.processes: dict[int, object] = {}
        self.inboxes: dict[int, object] = {}
        self.reported_dead: set[int] = set()
        self.slots = list(range(workers))
        for slot in self.slots:
            self._start(slot)

    def describe(self) -> str:
        return f"{len(self.slots)} local worker{'s' if len(self.slots) != 1 else ''}, " \
               f"{self.settings.threads} thread{'s' if self.settings.threads != 1 else ''} each"

    def _start(self, slot: int) -> None:
        inbox = self.context.Queue()
        process = self.context.Process(
            target=_local_worker, args=(slot, self.settings, inbox, self.outbox, self.stop, os.getpid()),
            name=f"dgp-batch-worker-{slot}", daemon=True,
        )
        process.start()
        self.processes[slot], self.inboxes[slot] = process, inbox
        self.reported_dead.discard(slot)

    def submit(self, slot: int, item: BatchItem) -> None:
        self.inboxes[slot].put(item)

    def poll(self, timeout: float, busy: Iterable[int]) -> list[tuple]:
        """Messages from the workers, plus ("lost", slot, why) for each worker that died unannounced."""
        messages = self._drain(timeout)
        for slot, process in self.processes.items():
            if process.exitcode is None or slot in self.reported_dead:
                continue
            # A message put just before dying may still be in the pipe: look once more.
            messages += self._drain(0.2)
            if not any(m[0] == "fatal" and m[1] == slot for m in messages):
                messages.append(("lost", slot, f"its worker process stopped (exit code {process.exitcode})"))
            self.reported_dead.add(slot)
        return messages

    def _drain(self, timeout: float) -> list[tuple]:
        messages = []
        try:
            messages.append(self.outbox.get(timeout=timeout))
            while True:
                messages.append(self.outbox.get_nowait())
        except queue.Empty:
            pass
        return messages

    def restart(self, slot: int) -> None:
        self._start(slot)

    def cancel_in_flight(self) -> None:
        self.stop.set()

    def close(self, *, wait: float = 5.0) -> None:
        for slot, inbox in self.inboxes.items():
            if self.processes[slot].exitcode is None:
                try:
                    inbox.put(None)
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + wait
        for process in self.processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.terminate()
                process.join(1.0)


# --------------------------------------------------------------------------------------
# The driver


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    cancelled: int = 0
    failed_before: int = 0          # skipped with --no-retry-failed: still failed from an earlier run
    total: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class Interrupt:
    """Ctrl+C during a batch: the first stops handing out photos, the second cancels those in flight.

    ``finish_in_flight`` False (the local pool) cancels the photos in flight
    at the first Ctrl+C already: each stops within one iteration.
    """

    def __init__(self, *, finish_in_flight: bool) -> None:
        self.finish_in_flight = finish_in_flight
        self.count = 0

    @property
    def stopping(self) -> bool:
        return self.count > 0

    @property
    def cancelling(self) -> bool:
        return self.count > (1 if self.finish_in_flight else 0)


def run_batch(
    items: Sequence[BatchItem], settings: BatchSettings, out_dir: Path, *, make_pool: Callable[[], object],
    retry_failed: bool = True, on_event: Callable[[str, dict], None] | None = None,
    interrupt: Interrupt | None = None,
) -> BatchSummary:
    """Run a planned batch, writing the manifest; ``make_pool()`` starts the workers when there is work.

    The pool is a :class:`LocalPool` or an :class:`engine.batch_ray.RayPool`;
    it is closed before returning.

    ``on_event(kind, data)`` hears "plan" (counts), "started" and "record"
    (per photo, with the worker slot) and "progress" (fraction of the batch
    done, in-flight photos counted by their share of iterations).
    """
    out_dir = Path(out_dir)
    notify = on_event or (lambda kind, data: None)
    interrupt = interrupt or Interrupt(finish_in_flight=False)
    summary = BatchSummary(total=len(items))
    began = time.monotonic()
    manifest = Manifest(out_dir)
    todo: list[BatchItem] = []
    for item in items:
        action, item = decide(item, manifest, retry_failed=retry_failed)
        if action == "skip":
            summary.skipped += 1
            if manifest.latest[item.name].get("status") == "failed":
                summary.failed_before += 1
        elif action == "fail":
            record = base_record(item, settings, status="failed")
            manifest.append(record)
            summary.failed += 1
            summary.failures.append((item.name, record["error"]))
            notify("record", record)
        else:
            todo.append(item)
    notify("plan", {"total": len(items), "to_run": len(todo), "skipped": summary.skipped,
                    "failed": summary.failed})
    if not todo:
        summary.seconds = time.monotonic() - began
        return summary
    pool = make_pool()
    try:
        _drive(pool, todo, settings, manifest, summary, notify, interrupt)
    finally:
        pool.close()
    summary.interrupted = interrupt.stopping
    summary.seconds = time.monotonic() - began
    return summary


def _drive(pool, todo: list[BatchItem], settings: BatchSettings, manifest: Manifest, summary: BatchSummary,
           notify: Callable[[str, dict], None], interrupt: Interrupt) -> None:
    """Hand photos to idle workers, record every result, retry photos whose worker died."""
    pending = list(reversed(todo))          # pop() from the end keeps the planned order
    in_flight: dict[int, BatchItem] = {}
    fractions: dict[int, float] = {}
    ready: set[int] = set()
    finished = 0
    cancelled_sent = False
    fatal: str | None = None
    idle_losses = 0
    last_progress = -1.0

    def record_final(record: dict, slot: int | None) -> None:
        nonlocal finished
        record["worker"] = slot
        manifest.append(record)
        finished += 1
        status = record["status"]
        if status == "done":
            summary.done += 1
        elif status == "cancelled":
            summary.cancelled += 1
        else:
            summary.failed += 1
            summary.failures.append((record["output"], record["error"]))
        notify("record", record)

    while pending or in_flight:
        if interrupt.cancelling and not cancelled_sent:
            pool.cancel_in_flight()
            cancelled_sent = True
        if interrupt.stopping or fatal:
            pending.clear()
        for slot in sorted(ready - set(in_flight)):
            if not pending:
                break
            item = pending.pop()
            record = base_record(item, settings)
            record["worker"] = slot
            manifest.append(record)
            in_flight[slot] = item
            fractions[slot] = 0.0
            pool.submit(slot, item)
            notify("started", {"output": item.name, "input": str(item.source), "worker": slot,
                               "attempt": item.attempt})
        if not pending and not in_flight:
            break
        try:
            messages = pool.poll(0.25, busy=list(in_flight))
        except KeyboardInterrupt:
            interrupt.count += 1
            continue
        for kind, slot, payload in messages:
            if kind == "ready":
                ready.add(slot)
            elif kind == "progress" and slot in in_flight:
                fractions[slot] = float(payload)
            elif kind == "result" and slot in in_flight:
                in_flight.pop(slot)
                fractions.pop(slot, None)
                record_final(payload, slot)
            elif kind == "fatal":
                fatal = payload
                ready.discard(slot)
                item = in_flight.pop(slot, None)
                if item is not None:
                    pending.append(item)
            elif kind == "lost":
                ready.discard(slot)
                item = in_flight.pop(slot, None)
                fractions.pop(slot, None)
                if item is None:
                    # Died while idle or while loading the model: a few new starts, then give up.
                    idle_losses += 1
                    if idle_losses > MAX_ATTEMPTS * max(1, len(pool.slots)):
                        fatal = f"the worker processes keep stopping before they restore anything ({payload})."
                elif item.attempt < MAX_ATTEMPTS and not interrupt.stopping:
                    pending.append(replace(item, attempt=item.attempt + 1, replace_output=True))
                else:
                    record = base_record(item, settings, status="failed" if not interrupt.stopping else "cancelled")
                    record["error"] = f"{item.source}: {payload} while restoring it ({item.attempt} attempts)."
                    record_final(record, slot)
                if not interrupt.stopping and not fatal:
                    pool.restart(slot)
        if fatal and not ready and not in_flight:
            break
        progress = round(finished + sum(fractions.values()), 3)
        if progress != last_progress:
            last_progress = progress
            notify("progress", {"done": progress, "total": len(todo), "finished": finished})
    if fatal:
        raise BadInputError(fatal)


# --------------------------------------------------------------------------------------
# Command line


MAX_DEFAULT_WORKERS = 8     # each worker holds its own copy of the model


def default_workers(device: str) -> int:
    """Local workers when --workers is not given: one per CPU core (at most 8), one on a GPU.

    On the project's 2-core machine two one-thread workers restored photos
    several times faster than one two-thread worker (docs/benchmarks.md, "Batch"):
    a DGP step on the small model scales poorly across threads, and two
    OpenMP threads that share their cores with other work wait on each other.
    """
    if device not in ("auto", "cpu"):
        return 1
    if device == "auto":
        try:
            import torch

            if torch.cuda.is_available() or torch.backends.mps.is_available():
                return 1
        except ImportError:
            pass
    return max(1, min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgp-studio batch",
        description="Restore every image in the given files and folders (recursively); results go under "
                    "OUT_DIR with the same relative paths, with manifest.jsonl and manifest.csv. A second run "
                    "skips what is done and retries what failed. Exit codes: 0 every photo done, 2 bad input "
                    "or some photos failed (see the manifest), 130 interrupted.",
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="photos and folders (never modified)")
    parser.add_argument("-o", "--output", dest="out_dir", type=Path, required=True, metavar="OUT_DIR",
                        help="folder for the results, the states and the manifest")
    parser.add_argument("--task", required=True, choices=TASK_CHOICES)
    parser.add_argument("--masks", type=Path, metavar="DIR",
                        help="masks matched by name: photo.jpg takes photo.png or photo_mask.png (white = missing)")
    parser.add_argument("--class", dest="class_", default="auto", metavar="INDEX|NAME|auto",
                        help="what the photos show (default auto: chosen per photo by the latent search)")
    parser.add_argument("--preset", metavar="NAME|FILE.toml", help="schedule preset (default: the task's)")
    parser.add_argument("--quick", action="store_true", help="the preset's quick variant")
    parser.add_argument("--factor", type=int, choices=[2, 4, 8], help="super-resolution factor (default 4)")
    parser.add_argument("--gray", action="store_true", help="hybrid: include graying")
    parser.add_argument("--iteration-scale", type=float, default=1.0, metavar="X")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="only paths (relative to their input folder) or names matching; repeatable")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="leave out matching paths or names; repeatable")
    parser.add_argument("--save-state", action="store_true",
                        help="also write each photo's fine-tuned state (OUT.png.dgpstate) for jitter/transfer/morph")
    parser.add_argument("--retry-failed", action=argparse.BooleanOptionalAction, default=True,
                        help="restore photos that failed on an earlier run again (default: yes)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes, each holding the model (default: one per CPU core, at most 8; one on a GPU)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch threads per worker (default: the CPU cores split across the workers; 1 on a cluster)")
    parser.add_argument("--cluster", nargs="?", const="", default=None, metavar="auto|ray://HOST:PORT",
                        help="run on a Ray cluster (needs dgp-studio[cluster]); without a value, RAY_ADDRESS "
                             "or 'auto'. Inputs and OUT_DIR must be on a filesystem every node sees")
    parser.add_argument("--json-progress", action="store_true",
                        help="one JSON object per line on stdout instead of the progress bar")
    parser.add_argument("--model", default="builtin", metavar="builtin|PATH")
    parser.add_argument("--discriminator", type=Path, metavar="D.pth")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    return parser


def _resolve_class(settings: BatchSettings) -> BatchSettings:
    """Check the model and the class in the driver, before any worker starts."""
    if settings.class_ in (None, "", "auto"):
        return settings
    from engine.api import resolve_class

    if settings.model == "builtin":
        from engine.api import load_model

        model = load_model("builtin")
    else:
        from engine.api import load_model

        model = load_model(Path(settings.model), settings.discriminator)
    index = resolve_class(settings.class_, model.class_names, model.config.n_classes, numbers=model.class_numbers)
    return replace(settings, class_index=index)


class _Reporter:
    """The progress bar (tqdm on stderr, ETA over the whole batch) or JSON lines on stdout."""

    def __init__(self, json_lines: bool) -> None:
        self.json_lines = json_lines
        self.bar = None

    def emit(self, data: dict) -> None:
        print(json.dumps(data), flush=True)

    def __call__(self, kind: str, data: dict) -> None:
        if self.json_lines:
            self.emit({"event": kind, **data})
            return
        from tqdm import tqdm

        if kind == "plan":
            tqdm.write(f"{data['total']} photos: {data['to_run']} to restore, {data['skipped']} already done, "
                       f"{data['failed']} refused", file=sys.stderr)
            self.bar = tqdm(total=data["to_run"], desc="batch", unit="photo", file=sys.stderr,
                            dynamic_ncols=True, disable=None,
                            bar_format="{l_bar}{bar}| {n:.1f}/{total} [{elapsed}<{remaining}]")
        elif kind == "progress" and self.bar is not None:
            self.bar.n = min(float(data["total"]), float(data["done"]))
            self.bar.refresh()
        elif kind == "record" and data["status"] == "failed":
            tqdm.write(f"failed: {data['error']}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def make_pool(settings: BatchSettings, workers: int, cluster: str | None):
    if cluster is None:
        return LocalPool(settings, workers)
    from engine.batch_ray import RayPool

    return RayPool(settings, workers=workers, address=cluster)


def main(argv: list[str] | None = None) -> int:
    """``dgp-studio batch``: exit 0 every photo done, 2 bad input or failed photos, 130 interrupted."""
    args = build_parser().parse_args(argv)
    reporter = _Reporter(args.json_progress)
    try:
        if args.workers is not None and args.workers < 1:
            raise BadInputError(f"--workers {args.workers} must be at least 1.")
        if args.threads is not None and args.threads < 1:
            raise BadInputError(f"--threads {args.threads} must be at least 1.")
        workers = args.workers or (None if args.cluster is not None else default_workers(args.device))
        # On a cluster an actor takes one CPU per thread; one thread each measured best (default_workers).
        threads = args.threads or (1 if args.cluster is not None else max(1, (os.cpu_count() or 1) // workers))
        settings = BatchSettings(
            task=args.task, class_=args.class_, preset=args.preset, quick=args.quick, factor=args.factor,
            gray=args.gray, iteration_scale=args.iteration_scale, seed=args.seed, model=args.model,
            discriminator=str(args.discriminator) if args.discriminator else None, device=args.device,
            precision=args.precision, threads=threads, save_state=args.save_state,
        )
        settings = replace(_resolve_class(settings),
                           model_identity=model_identity(settings.model, settings.discriminator))
        items = plan_batch(args.inputs, args.out_dir, settings, masks=args.masks, include=args.include,
                           exclude=args.exclude)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        interrupt = Interrupt(finish_in_flight=args.cluster is not None)
        with BatchLock(args.out_dir):
            remove_stale_temporaries(args.out_dir)
            previous = signal.getsignal(signal.SIGINT)

            def on_sigint(signum, frame) -> None:
                interrupt.count += 1
                message = ("interrupted: cancelling the photos in flight" if interrupt.cancelling
                           else "interrupted: finishing the photos in flight (Ctrl+C again cancels them)")
                print(f"dgp-studio: {message}", file=sys.stderr, flush=True)

            signal.signal(signal.SIGINT, on_sigint)

            def start_pool():
                pool = make_pool(settings, workers, args.cluster)
                if not args.json_progress:
                    print(f"dgp-studio: {pool.describe()}", file=sys.stderr)
                return pool

            try:
                summary = run_batch(items, settings, args.out_dir, make_pool=start_pool,
                                    retry_failed=args.retry_failed, on_event=reporter, interrupt=interrupt)
            finally:
                reporter.close()
                signal.signal(signal.SIGINT, previous)
    except (BadInputError, OSError) as error:
        reporter.close()
        if isinstance(error, OSError):
            from engine.files import describe_os_error

            error = f"{error.filename or args.out_dir}: {describe_os_error(error)}."
        if args.json_progress:
            reporter.emit({"event": "error", "error": str(error)})
        print(f"dgp-studio: {error}", file=sys.stderr)
        return 2
    line = (f"{summary.done} restored, {summary.skipped - summary.failed_before} already done, "
            + (f"{summary.failed_before} failed before (not retried), " if summary.failed_before else "")
            + f"{summary.failed} failed, "
            f"{summary.cancelled} cancelled in {summary.seconds:.1f} s; manifest: "
            f"{args.out_dir / MANIFEST_CSV}")
    if args.json_progress:
        reporter.emit({"event": "finished", **summary.as_dict(), "out_dir": str(args.out_dir)})
    print(f"dgp-studio: {line}", file=sys.stderr)
    if summary.interrupted:
        return 130
    return 2 if summary.failed or summary.failed_before else 0
