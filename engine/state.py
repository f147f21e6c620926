"""Result states of a DGP run and what is done with them.

A :class:`GeneratorState` is what a restore leaves behind for manipulation
(DGP section 10): the fine-tuned generator kept as its *difference* from the
base model's weights (only entries that changed), the optimised latent z*,
the class and its embedding, whether the instance-norm switch was on, and
the identity of the base model. Applying a state to the base generator
reproduces the fine-tuned one; states are saved as safetensors with a JSON
description in the metadata.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.biggan import Generator
from engine.errors import BadInputError
from engine.files import MAX_STATE_BYTES, atomic_path, check_regular_file

STATE_FORMAT = "dgp-studio-state"
STATE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class GeneratorState:
    """Everything a manipulation needs from a finished (or cancelled) restore."""

    model_identity: str
    weight_delta: dict[str, torch.Tensor]   # theta* - theta_base, changed entries only (CPU)
    z: torch.Tensor                          # (1, dim_z) float32, CPU
    class_index: int
    class_embedding: torch.Tensor            # (1, shared_dim) float32: G*.shared(class)
    use_in: bool = False
    task: str = ""
    preset: str = ""
    info: dict = field(default_factory=dict, compare=False)

    @staticmethod
    def capture(
        base: Generator, tuned: Generator, z: torch.Tensor, class_index: int, *,
        model_identity: str, use_in: bool, task: str = "", preset: str = "", info: dict | None = None,
    ) -> GeneratorState:
        base_state = base.state_dict()
        delta: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for key, value in tuned.state_dict().items():
                if not value.is_floating_point():
                    continue
                difference = value.detach().float().cpu() - base_state[key].detach().float().cpu()
                if torch.count_nonzero(difference):
                    delta[key] = difference.contiguous()
            index = torch.tensor([class_index], device=next(tuned.parameters()).device)
            embedding = tuned.shared(index).detach().float().cpu()
        return GeneratorState(
            model_identity=model_identity,
            weight_delta=delta,
            z=z.detach().float().cpu().reshape(1, -1).clone(),
            class_index=int(class_index),
            class_embedding=embedding,
            use_in=use_in,
            task=task,
            preset=preset,
            info=dict(info or {}),
        )

    # -- applying -------------------------------------------------------------
    def apply_to(self, generator: Generator, base_state: dict[str, torch.Tensor]) -> Generator:
        """Load ``base + delta`` into ``generator`` in place (no new tensors per entry)."""
        with torch.no_grad():
            own = generator.state_dict()
            for key, target in own.items():
                if not target.is_floating_point():
                    continue
                target.copy_(base_state[key])
                if key in self.weight_delta:
                    target.add_(self.weight_delta[key].to(target.device, target.dtype))
        # The IN parameters in the state were set by the run; do not re-initialise.
        if self.use_in:
            generator.mark_in_initialised()
        else:
            generator.reset_in_init()
        return generator

    # -- persistence ------------------------------------------------------------
    def save(
        self, path: str | os.PathLike, *, delta_dtype: torch.dtype = torch.float32, overwrite: bool = True,
    ) -> Path:
        """Write the state as safetensors through :func:`engine.files.atomic_path`.

        Without ``overwrite`` an existing file is never replaced, even one
        that appears while the state is written (:class:`BadInputError`).
        Two processes saving to one path never share a temporary file.
        """
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {f"delta.{k}": v.to(delta_dtype).contiguous() for k, v in self.weight_delta.items()}
        tensors["z"] = self.z.contiguous()
        tensors["class_embedding"] = self.class_embedding.contiguous()
        description = {
            "format": STATE_FORMAT,
            "version": STATE_FORMAT_VERSION,
            "model_identity": self.model_identity,
            "class_index": self.class_index,
            "use_in": self.use_in,
            "task": self.task,
            "preset": self.preset,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "info": self.info,
        }
        from safetensors import SafetensorError

        try:
            with atomic_path(path, overwrite=overwrite) as temporary:
                save_file(tensors, str(temporary), metadata={"state": json.dumps(description)})
        except SafetensorError as error:  # the writer's own error type for I/O failures
            reason = "the disk is full" if "No space left" in str(error) else str(error)
            raise BadInputError(f"{path} cannot be written ({reason}).") from None
        return path

    @staticmethod
    def load(path: str | os.PathLike) -> GeneratorState:
        """Read a state file; anything malformed is one :class:`BadInputError` sentence naming it."""
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        path = Path(path)
        check_regular_file(path, what="state file", max_bytes=MAX_STATE_BYTES)
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
            description = json.loads(metadata["state"])
        except (SafetensorError, OSError, KeyError, json.JSONDecodeError, ValueError, RuntimeError) as error:
            raise BadInputError(f"{path}: not a dgp-studio state file or truncated ({error}).") from None
        if not isinstance(description, dict) or description.get("format") != STATE_FORMAT:
            raise BadInputError(f"{path}: not a dgp-studio state file.")
        version = description.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise BadInputError(f"{path}: the state's format version {version!r} is not a whole number.")
        if version > STATE_FORMAT_VERSION:
            raise BadInputError(f"{path}: the state was written by a newer dgp-studio.")
        identity, class_index = description.get("model_identity"), description.get("class_index")
        if not isinstance(identity, str):
            raise BadInputError(f"{path}: the state does not say which model it was made with.")
        if isinstance(class_index, bool) or not isinstance(class_index, int) or class_index < 0:
            raise BadInputError(f"{path}: the state's class {class_index!r} is not a class index.")
        for name in ("z", "class_embedding"):
            tensor = tensors.get(name)
            if tensor is None or not tensor.is_floating_point() or tensor.dim() != 2 or tensor.shape[0] != 1:
                raise BadInputError(f"{path}: the state's {name} is missing or not a (1, N) float tensor.")
            if not bool(torch.isfinite(tensor).all()):
                raise BadInputError(f"{path}: the state's {name} holds NaN or infinite values.")
        delta = {}
        for key, value in tensors.items():
            if key.startswith("delta."):
                if not value.is_floating_point():
                    raise BadInputError(f"{path}: the state's weight {key} is not a float tensor.")
                delta[key[len("delta."):]] = value.float()
        info, task, preset = description.get("info", {}), description.get("task", ""), description.get("preset", "")
        if not isinstance(info, dict) or not isinstance(task, str) or not isinstance(preset, str):
            raise BadInputError(f"{path}: the state's description has fields of the wrong type.")
        return GeneratorState(
            model_identity=identity,
            weight_delta=delta,
            z=tensors["z"].float(),
            class_index=class_index,
            class_embedding=tensors["class_embedding"].float(),
            use_in=bool(description.get("use_in", False)),
            task=task,
            preset=preset,
            info=info,
        )

    def nbytes(self, delta_dtype: torch.dtype = torch.float32) -> int:
        element = torch.tensor([], dtype=delta_dtype).element_size()
        return sum(v.numel() for v in self.weight_delta.values()) * element + 4 * (
            self.z.numel() + self.class_embedding.numel()
        )


@dataclass(frozen=True)
class RestoreResult:
    """What a restore returns: images, the manipulable state and how it went."""

    image: np.ndarray                # G(z*) at model resolution, H x W x 3 uint8
    degraded: np.ndarray             # phi(G(z*)) uint8
    target: np.ndarray               # x_hat uint8
    state: GeneratorState
    class_index: int
    top_classes: tuple[tuple[int, float], ...]
    losses: dict[str, float]
    steps_done: int
    total_steps: int
    seconds: float
    task: str
    preset: str
    cancelled: bool = False
    composite: np.ndarray | None = None   # full-resolution result (H x W x 3 uint8), if an image was given
    notes: tuple[str, ...] = ()
    runs_done: int = 1                    # model runs of the restore plan that finished
    runs_total: int = 1
    # The kept state is the lowest-loss one: the state that step best_step measured
    # (its Step's loss, its Frame's image), or None for the state after the last step.
    best_step: int | None = None
