"""DGP schedules (presets) as validated, frozen dataclasses.

Presets are TOML data in ``resources/presets/`` (``schema = 1``): the
published schedules of the DGP paper's code (``docs/dgp-method.md`` section 9)
and this project's own for the built-in model and for tasks with no
published script. Every field is validated with a message naming the file,
the key and the value.

Per stage (section 6.2): ``iterations``, ``feature_layers`` (``ftr_num``: the
trailing D features in the loss, or ``"all"`` / ``"all-but-first"``),
``unlocked_groups`` (``ft_num``: G parameter groups fine-tuned from the
shallow end, or ``"all"``), ``lr_ratio``, ``g_lr``, ``z_lr``, ``w_d``,
``w_mse`` and ``use_in``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from engine.errors import BadInputError
from engine.events import StagePlan

TASKS = ("colorize", "inpaint", "sr", "hybrid", "reconstruct", "defend")
_STAGE_KEYS = {
    "iterations", "feature_layers", "unlocked_groups", "lr_ratio", "g_lr", "z_lr", "w_d", "w_mse", "use_in",
}
_TOP_KEYS = {
    "schema", "name", "title", "task", "purpose", "source", "resolution", "g_ch", "update_embed", "w_nll",
    "search_candidates", "sample_std", "seed", "warm_up", "stop_mse", "quick", "stages", "example_class",
}


@dataclass(frozen=True)
class Stage:
    iterations: int
    feature_layers: int | str     # int, "all" or "all-but-first"
    unlocked_groups: int | str    # int or "all"
    lr_ratio: float
    g_lr: float
    z_lr: float
    w_d: float
    w_mse: float
    use_in: bool

    def resolved_feature_layers(self, available: int) -> int:
        if self.feature_layers == "all":
            return available
        if self.feature_layers == "all-but-first":
            return available - 1
        return int(self.feature_layers)

    def resolved_unlocked_groups(self, available: int) -> int:
        if self.unlocked_groups == "all":
            return available
        # The reference treats counts above the number of groups as "all".
        return min(int(self.unlocked_groups), available)


@dataclass(frozen=True)
class Schedule:
    name: str
    title: str
    task: str
    source: str
    resolution: int               # model resolution it was written for; 0 = any
    update_embed: bool
    w_nll: float
    search_candidates: int
    sample_std: float
    seed: int
    warm_up: int
    stop_mse: float
    stages: tuple[Stage, ...]
    quick_iteration_scale: float
    quick_search_candidates: int
    purpose: str = "restoration"

    @property
    def total_iterations(self) -> int:
        return sum(stage.iterations for stage in self.stages)

    def quick(self) -> Schedule:
        """The preview variant: fewer iterations per stage and fewer candidates."""
        stages = tuple(
            replace(stage, iterations=max(1, round(stage.iterations * self.quick_iteration_scale)))
            for stage in self.stages
        )
        return replace(
            self, name=self.name + " (quick)", stages=stages,
            search_candidates=min(self.search_candidates, self.quick_search_candidates),
        )

    def scaled(self, iteration_scale: float) -> Schedule:
        """Every stage's iterations multiplied by ``iteration_scale`` (at least 1 each)."""
        if iteration_scale == 1.0:
            return self
        if not (iteration_scale > 0 and math.isfinite(iteration_scale)):
            raise BadInputError(f"iteration scale {iteration_scale} must be a positive number.")
        stages = tuple(
            replace(stage, iterations=max(1, round(stage.iterations * iteration_scale)))
            for stage in self.stages
        )
        return replace(self, stages=stages)

    def plan(self, *, feature_count: int, group_count: int) -> tuple[StagePlan, ...]:
        """Resolve symbolic counts for a model and check them."""
        plans = []
        for index, stage in enumerate(self.stages):
            layers = stage.resolved_feature_layers(feature_count)
            if not 1 <= layers <= feature_count:
                raise BadInputError(
                    f"preset {self.name}: stage {index + 1} uses {layers} discriminator features but "
                    f"this model's discriminator has {feature_count}."
                )
            plans.append(
                StagePlan(
                    index=index, iterations=stage.iterations,
                    unlocked_groups=stage.resolved_unlocked_groups(group_count),
                    total_groups=group_count, feature_layers=layers,
                )
            )
        return tuple(plans)


def _fail(origin: str, key: str, value: object, expectation: str) -> BadInputError:
    return BadInputError(f"{origin}: {key} = {value!r} is invalid; {expectation}.")


def _number(origin: str, data: dict, key: str, *, minimum: float = 0.0, integer: bool = False,
            default: object = None) -> float | int:
    if key not in data:
        if default is not None:
            return default  # type: ignore[return-value]
        raise BadInputError(f"{origin}: the key {key} is missing.")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(origin, key, value, "expected a number")
    if integer and not float(value).is_integer():
        raise _fail(origin, key, value, "expected a whole number")
    if not math.isfinite(value) or value < minimum:
        raise _fail(origin, key, value, f"expected a finite number ≥ {minimum}")
    return int(value) if integer else float(value)


def _stage_from(origin: str, data: dict) -> Stage:
    unknown = set(data) - _STAGE_KEYS
    if unknown:
        raise BadInputError(f"{origin}: unknown key {min(unknown)} in a stage.")
    feature_layers = data.get("feature_layers")
    if feature_layers not in ("all", "all-but-first"):
        feature_layers = _number(origin, data, "feature_layers", minimum=1, integer=True)
    unlocked = data.get("unlocked_groups")
    if unlocked != "all":
        unlocked = _number(origin, data, "unlocked_groups", minimum=0, integer=True)
    use_in = data.get("use_in", False)
    if not isinstance(use_in, bool):
        raise _fail(origin, "use_in", use_in, "expected true or false")
    return Stage(
        iterations=_number(origin, data, "iterations", minimum=1, integer=True),
        feature_layers=feature_layers,
        unlocked_groups=unlocked,
        lr_ratio=_number(origin, data, "lr_ratio"),
        g_lr=_number(origin, data, "g_lr"),
        z_lr=_number(origin, data, "z_lr"),
        w_d=_number(origin, data, "w_d"),
        w_mse=_number(origin, data, "w_mse"),
        use_in=use_in,
    )


def schedule_from_dict(data: dict, *, origin: str) -> Schedule:
    """Validate a preset mapping (as read from TOML) into a :class:`Schedule`."""
    if data.get("schema") != 1:
        raise _fail(origin, "schema", data.get("schema"), "this version reads schema = 1")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise BadInputError(f"{origin}: unknown key {min(unknown)}.")
    task = data.get("task")
    if task not in TASKS:
        raise _fail(origin, "task", task, f"expected one of {', '.join(TASKS)}")
    stages_data = data.get("stages")
    if not isinstance(stages_data, list) or not stages_data:
        raise BadInputError(f"{origin}: a preset needs at least one [[stages]] table.")
    stages = tuple(
        _stage_from(f"{origin} stage {i + 1}", stage) for i, stage in enumerate(stages_data)
    )
    quick = data.get("quick", {})
    if not isinstance(quick, dict):
        raise _fail(origin, "quick", quick, "expected a table")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(origin, "name", name, "expected a non-empty string")
    update_embed = data.get("update_embed", False)
    if not isinstance(update_embed, bool):
        raise _fail(origin, "update_embed", update_embed, "expected true or false")
    return Schedule(
        name=name,
        title=str(data.get("title", name)),
        task=task,
        source=str(data.get("source", "")),
        resolution=_number(origin, data, "resolution", integer=True, default=0),
        update_embed=update_embed,
        w_nll=_number(origin, data, "w_nll"),
        search_candidates=_number(origin, data, "search_candidates", integer=True),
        sample_std=_number(origin, data, "sample_std"),
        seed=_number(origin, data, "seed", integer=True, default=0),
        warm_up=_number(origin, data, "warm_up", integer=True, default=0),
        stop_mse=_number(origin, data, "stop_mse", default=0.0),
        stages=stages,
        quick_iteration_scale=_number(origin, quick, "iteration_scale", default=0.05),
        quick_search_candidates=_number(origin, quick, "search_candidates", integer=True, default=16),
        purpose=str(data.get("purpose", "restoration")),
    )


def load_schedule_file(path: str | Path) -> Schedule:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path}: the preset file does not exist.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BadInputError(f"{path}: the preset is not valid TOML ({error}).") from None
    return schedule_from_dict(data, origin=str(path))


def presets_folder() -> Path:
    from engine.resources import resource_path

    return resource_path("presets")


def builtin_presets() -> dict[str, Schedule]:
    """Every preset shipped in ``resources/presets`` by name."""
    presets = {}
    for path in sorted(presets_folder().glob("*.toml")):
        if path.name == "defaults.toml":
            continue
        schedule = load_schedule_file(path)
        presets[schedule.name] = schedule
    return presets


def default_preset_name(task: str, resolution: int) -> str:
    if task not in TASKS:
        raise BadInputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    defaults = tomllib.loads((presets_folder() / "defaults.toml").read_text(encoding="utf-8"))["defaults"]
    for key in (str(resolution), "any"):
        if task in defaults.get(key, {}):
            return defaults[key][task]
    raise BadInputError(f"no default preset for task {task} at {resolution} px.")


def presets_for_task(task: str, resolution: int) -> list[str]:
    """Preset names offered for ``task`` on a ``resolution`` px model: the default first.

    The others are the restoration presets for the task written for that
    resolution or for any. A resolution that has none of its own is offered
    every preset for the task (they all run at any resolution; the ones
    written for it are simply the ones tuned for it).
    """
    default = default_preset_name(task, resolution)
    others = [
        (name, schedule) for name, schedule in builtin_presets().items()
        if schedule.task == task and schedule.purpose == "restoration" and name != default
    ]
    own = [(name, schedule) for name, schedule in others if schedule.resolution in (0, resolution)]
    return [default, *(name for name, _ in own or others)]


def resolve_preset(name_or_path: str, *, extra_folders: tuple[Path, ...] = ()) -> Schedule:
    """A preset by built-in name, by name in ``extra_folders`` (user presets), or by TOML path."""
    presets = builtin_presets()
    if name_or_path in presets:
        return presets[name_or_path]
    for folder in extra_folders:
        candidate = Path(folder) / f"{name_or_path}.toml"
        if candidate.exists():
            return load_schedule_file(candidate)
    path = Path(name_or_path)
    if path.suffix == ".toml":
        return load_schedule_file(path)
    raise BadInputError(
        f"unknown preset {name_or_path!r}; built-in presets are {', '.join(sorted(presets))}."
    )
