"""The batch's workers as Ray actors: ``dgp-studio batch ... --cluster auto|ray://HOST:PORT``.

Imported only when ``--cluster`` is given; Ray is the optional extra
``pip install "dgp-studio[cluster]"``. The driver (:func:`engine.batch.run_batch`)
stays on the machine that runs the command and is the only writer of the
manifest; each actor holds one loaded model and restores the photos it is
given, reading the photo and writing its result itself. Inputs and OUT_DIR
must therefore be on a filesystem that every node mounts at the same path
(NFS, a cluster's shared home or scratch).

One actor per worker slot: with GPUs in the cluster (and ``--device`` auto or
cuda) each actor asks for ``num_gpus=1`` and the slots are the GPUs; otherwise
each asks for ``--threads`` CPUs and the slots are the CPUs divided by that.
An actor that dies (its node lost, killed, out of memory) fails the call in
flight with an actor error; the driver gives that photo to another actor and
starts a replacement.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.batch import BatchItem, BatchSettings, base_record, load_worker_engine, restore_photo
from engine.errors import BadInputError


class RestoreActor:
    """A worker on the cluster: loads the model once and restores photos in turn."""

    def __init__(self, settings: BatchSettings) -> None:
        self.settings = settings
        self.error: str | None = None
        try:
            self.engine = load_worker_engine(settings)
        except BadInputError as error:
            self.error = str(error)

    def ready(self) -> tuple[str | None, str]:
        """(the model's load error or None, the node this actor runs on)."""
        return self.error, os.uname().nodename

    def restore(self, item: BatchItem) -> dict:
        if not Path(item.source).exists():
            record = base_record(item, self.settings, status="failed")
            record["error"] = (f"{item.source} is not visible on node {os.uname().nodename}; the inputs and the "
                               f"output folder must be on a filesystem every node of the cluster mounts.")
            return record
        return restore_photo(self.engine, item, self.settings)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BadInputError(
            '--cluster needs Ray, which is not installed; install it with pip install "dgp-studio[cluster]".'
        ) from None
    return ray


class RayPool:
    """Actors on a Ray cluster, with the interface :func:`engine.batch.run_batch` drives."""

    def __init__(self, settings: BatchSettings, *, workers: int | None = None, address: str = "") -> None:
        ray = _import_ray()
        self.ray = ray
        self.owns_connection = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS") or "auto"
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise BadInputError(f"--cluster {address}: no Ray cluster could be reached ({error}).") from None
            self.owns_connection = True
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        self.use_gpus = gpus > 0 and settings.device in ("auto", "cuda")
        if self.use_gpus:
            options = {"num_gpus": 1, "num_cpus": 1}
            slots = workers or gpus
        else:
            options = {"num_cpus": settings.threads}
            slots = workers or max(1, cpus // max(1, settings.threads))
        self.settings = settings
        self.actor_class = ray.remote(max_restarts=0, max_concurrency=1, **options)(RestoreActor)
        self.slots = list(range(slots))
        self.actors: dict[int, object] = {}
        self.calls: dict[object, tuple[str, int]] = {}    # object ref -> ("ready" | "restore", slot)
        self.nodes: dict[int, str] = {}
        for slot in self.slots:
            self._start(slot)

    def describe(self) -> str:
        kind = "1 GPU" if self.use_gpus else f"{self.settings.threads} CPU{'s' if self.settings.threads != 1 else ''}"
        return f"{len(self.slots)} Ray actor{'s' if len(self.slots) != 1 else ''}, {kind} each"

    def _start(self, slot: int) -> None:
        actor = self.actor_class.remote(self.settings)
        self.actors[slot] = actor
        self.calls[actor.ready.remote()] = ("ready", slot)

    def submit(self, slot: int, item: BatchItem) -> None:
        self.calls[self.actors[slot].restore.remote(item)] = ("restore", slot)

    def poll(self, timeout: float, busy=()) -> list[tuple]:
        ray = self.ray
        if not self.calls:
            return []
        done, _ = ray.wait(list(self.calls), num_returns=1, timeout=timeout)
        if done:
            more, _ = ray.wait([r for r in self.calls if r not in done], num_returns=len(self.calls) - len(done),
                               timeout=0) if len(self.calls) > len(done) else ([], [])
            done = done + more
        messages = []
        for ref in done:
            kind, slot = self.calls.pop(ref)
            try:
                value = ray.get(ref)
            except ray.exceptions.RayActorError as error:
                messages.append(("lost", slot, f"its Ray actor was lost ({type(error).__name__})"))
                continue
            except ray.exceptions.RayError as error:
                messages.append(("lost", slot, f"its Ray task failed ({type(error).__name__})"))
                continue
            if kind == "ready":
                error, node = value
                if error:
                    messages.append(("fatal", slot, error))
                else:
                    self.nodes[slot] = node
                    messages.append(("ready", slot, None))
            else:
                messages.append(("result", slot, value))
        return messages

    def restart(self, slot: int) -> None:
        old = self.actors.get(slot)
        if old is not None:
            self.ray.kill(old, no_restart=True)
        self._start(slot)

    def cancel_in_flight(self) -> None:
        """Kill every actor: their calls in flight fail and the driver records those photos as cancelled."""
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)

    def close(self, *, wait: float = 5.0) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        self.actors.clear()
        self.calls.clear()
        if self.owns_connection:
            self.ray.shutdown()
