"""dgp-studio's command line (no Qt is imported).

Exit codes: 0 done, 2 bad input (one sentence naming the file and the
problem), 130 interrupted (the best state reached is still written), 1 an
unexpected error.

Examples::

    dgp-studio restore photo.jpg --task colorize -o colour.png --save-state colour.dgpstate
    dgp-studio restore photo.jpg --task inpaint --mask hole.png --class goldfish -o filled.png
    dgp-studio restore small.png --task sr --factor 4 --quick -o large.png
    dgp-studio jitter colour.dgpstate --sigma 0.5 --count 16 -o sheet.png
    dgp-studio transfer colour.dgpstate --class "tabby" -o tabby.png
    dgp-studio morph a.dgpstate b.dgpstate --frames 30 -o morph.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from engine import __version__
from engine.errors import BadInputError, NonFiniteLossError

TASK_CHOICES = ("colorize", "inpaint", "sr", "hybrid", "reconstruct", "defend")

#: The range of every numeric option, checked before any work starts.
SEED_MAX = 2**63 - 1
THREADS_MAX = 1024
JITTER_COUNT_MAX = 1024
SHEET_COLUMNS_MAX = 1024
TRANSFER_CLASSES_MAX = 256
MORPH_FRAMES_MAX = 10_000
MORPH_FPS_MAX = 240.0
MORPH_SIZE_RANGE = (16, 4096)
ITERATION_SCALE_MAX = 100.0
SIGMA_MAX = 10.0
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ANIMATION_SUFFIXES = (".gif", ".mp4", ".webp", ".png")
SUBCOMMANDS = ("restore", "jitter", "transfer", "morph", "train", "models", "evaluate", "batch")


def whole_in(option: str, low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high``, else one sentence naming ``option``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a whole number from {low} to {high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{option} must be from {low} to {high}, got {value}")
        return value

    return parse


def number_in(option: str, low: float, high: float, *, low_open: bool = False):
    """An argparse type: a finite number in [``low``, ``high``] (``(low, high]`` with ``low_open``)."""
    bracket = "(" if low_open else "["

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a number in {bracket}{low:g}, {high:g}], got {text!r}") from None
        if not (low < value if low_open else low <= value) or not value <= high:
            raise argparse.ArgumentTypeError(f"{option} must be in {bracket}{low:g}, {high:g}], got {text}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """argparse with one-sentence errors and exit code 2 (its own convention too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}.\n" if not message.endswith(".") else f"{self.prog}: {message}\n")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="builtin", metavar="builtin|PATH",
        help="'builtin' (default), a folder holding G_ema*.pth and D*.pth, or a generator file "
             "(then give --discriminator)",
    )
    parser.add_argument("--discriminator", type=Path, metavar="D.pth", help="discriminator file for --model PATH")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="compute device (default: auto = CUDA, then MPS, then CPU)")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                        help="auto uses bf16 autocast where the hardware is fast at it (CPUs with AMX or AVX512-BF16, CUDA)")
    parser.add_argument("--threads", type=whole_in("--threads", 1, THREADS_MAX), default=None, metavar="N",
                        help=f"CPU threads for torch, 1 to {THREADS_MAX}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dgp-studio",
        description="Restore and edit photos with a Deep Generative Prior. Without a command, "
                    "dgp-studio opens the desktop app.",
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dgp-studio {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    restore = commands.add_parser("restore", help="restore one image with DGP")
    restore.add_argument("image", type=Path, help="the photo to restore (never modified)")
    restore.add_argument("--task", required=True, choices=TASK_CHOICES,
                         help="colorize, inpaint (needs --mask), sr (super-resolution; the image is the "
                              "low-resolution input), hybrid, reconstruct, defend (remove adversarial noise)")
    restore.add_argument("--mask", type=Path, metavar="MASK.png",
                         help="painted region to fill (white = missing), same size as the image; "
                              "inpaint and hybrid only")
    restore.add_argument("--factor", type=int, choices=[2, 4, 8], help="super-resolution factor (default 4)")
    restore.add_argument("--gray", action="store_true", help="hybrid: include graying (colorization)")
    restore.add_argument("--class", dest="class_", default="auto", metavar="INDEX|NAME|auto",
                         help="what the photo shows: an ImageNet-1k class index (1 = goldfish) or name; "
                              "'auto' lets the latent search choose and reports the top 5")
    restore.add_argument("--roi", metavar="LEFT,TOP,SIZE",
                         help="restrict the restore to this square (default: the whole photo)")
    restore.add_argument("--detail", type=float, default=None, metavar="0..1",
                         help="sr: how much of the prior's detail above the photo's resolution replaces "
                              "the classical upscaling's (0 = classical upscaling exactly, 1 = all of it; "
                              "default 0.5); inpaint: how much of the prior's fill goes beyond the "
                              "smoothest fill of the hole (0 = the smoothest fill; default 0.25)")
    restore.add_argument("--allow-large", action="store_true",
                         help="make results above 64 megapixels (refused otherwise)")
    restore.add_argument("--preset", metavar="NAME|FILE.toml", help="schedule preset (default: the task's)")
    restore.add_argument("--quick", action="store_true", help="the preset's quick variant (previews, tests)")
    restore.add_argument("--iteration-scale", type=number_in("--iteration-scale", 0, ITERATION_SCALE_MAX, low_open=True),
                         default=1.0, metavar="X",
                         help=f"multiply every stage's iterations, in (0, {ITERATION_SCALE_MAX:g}]")
    restore.add_argument("--seed", type=whole_in("--seed", 0, SEED_MAX), default=0,
                         help="seed of the latent search, 0 to 2**63-1 (default 0)")
    restore.add_argument("--max-megapixels", type=number_in("--max-megapixels", 0, 10_000, low_open=True),
                         default=None, metavar="MP",
                         help="largest photo accepted, in megapixels (default 150, or DGP_STUDIO_MAX_MEGAPIXELS)")
    restore.add_argument("--frames", type=Path, metavar="DIR",
                         help="write intermediate frames as PNGs here (best effort: a failed frame is one warning)")
    restore.add_argument("--save-state", type=Path, metavar="FILE",
                         help="save the fine-tuned state for jitter/transfer/morph (never replaces a file "
                              "without --overwrite)")
    restore.add_argument("--json", action="store_true", help="print one JSON object per event on stdout")
    restore.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png",
                         help="full-resolution result (PNG, JPEG or WebP)")
    restore.add_argument("--overwrite", action="store_true",
                         help="replace OUT, the state file and earlier frames if they exist (never an input)")
    _add_model_options(restore)

    jitter = commands.add_parser("jitter", help="random variations of a restored result")
    jitter.add_argument("state", type=Path, help="a state saved by restore --save-state")
    jitter.add_argument("--sigma", type=number_in("--sigma", 0, SIGMA_MAX), default=0.5,
                        help=f"jitter strength in [0, {SIGMA_MAX:g}] (paper: 0.3, 0.5, 0.7)")
    jitter.add_argument("--count", type=whole_in("--count", 1, JITTER_COUNT_MAX), default=16,
                        help=f"variations, 1 to {JITTER_COUNT_MAX}")
    jitter.add_argument("--seed", type=whole_in("--seed", 0, SEED_MAX), default=0, help="0 to 2**63-1")
    jitter.add_argument("--columns", type=whole_in("--columns", 1, SHEET_COLUMNS_MAX), default=None,
                        help=f"sheet columns, 1 to {SHEET_COLUMNS_MAX} (default: square-ish)")
    jitter.add_argument("-o", "--output", type=Path, required=True, metavar="SHEET.png")
    jitter.add_argument("--overwrite", action="store_true")
    _add_model_options(jitter)

    transfer = commands.add_parser("transfer", help="render a restored result as another category")
    transfer.add_argument("state", type=Path)
    transfer.add_argument("--class", dest="class_", required=True, action="append", metavar="INDEX|NAME",
                          help=f"target class; repeat for a gallery sheet (at most {TRANSFER_CLASSES_MAX})")
    transfer.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png")
    transfer.add_argument("--overwrite", action="store_true")
    _add_model_options(transfer)

    morph = commands.add_parser("morph", help="morph one restored result into another")
    morph.add_argument("state_a", type=Path)
    morph.add_argument("state_b", type=Path)
    morph.add_argument("--frames", type=whole_in("--frames", 2, MORPH_FRAMES_MAX), default=11,
                       help=f"number of frames, endpoints included, 2 to {MORPH_FRAMES_MAX}")
    morph.add_argument("--fps", type=number_in("--fps", 0, MORPH_FPS_MAX, low_open=True), default=12.0,
                       help=f"frames per second, in (0, {MORPH_FPS_MAX:g}]")
    morph.add_argument("--easing", default="linear", choices=["linear", "ease-in-out", "ease-in", "ease-out"])
    morph.add_argument("--ping-pong", action="store_true", help="play forwards then backwards")
    morph.add_argument("--size", type=whole_in("--size", *MORPH_SIZE_RANGE), default=None,
                       help=f"output side in pixels, {MORPH_SIZE_RANGE[0]} to {MORPH_SIZE_RANGE[1]} "
                            "(default: model resolution)")
    morph.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4|.gif|.webp|DIR")
    morph.add_argument("--overwrite", action="store_true")
    _add_model_options(morph)

    commands.add_parser("train", help="train the built-in GAN (see 'dgp-studio train --help')", add_help=False)
    commands.add_parser("batch", help="restore whole folders, resumably (see 'dgp-studio batch --help')",
                        add_help=False)
    return parser


# --------------------------------------------------------------------------


def _load_engine(args):
    from engine.api import Engine, load_model

    if args.model == "builtin":
        model = load_model("builtin")
    else:
        model = load_model(Path(args.model), args.discriminator)
    return Engine(model, device=args.device, precision=args.precision, threads=args.threads)


def _parse_roi(text: str | None):
    if text is None:
        return None
    from engine.composite import RegionOfInterest

    try:
        left, top, size = (int(part) for part in text.split(","))
    except ValueError:
        raise BadInputError(f"--roi {text!r} must be three whole numbers LEFT,TOP,SIZE.") from None
    return RegionOfInterest(left, top, size)


class _ProgressPrinter:
    """A tqdm bar on stderr for the search and one for the optimisation, with the engine's ETA."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar = None
        self.phase = ""
        self.total: int | None = None
        self.total_steps: int | None = None

    def _new(self, total: int | None, description: str) -> None:
        self.close()
        self.phase = description
        self.total = total
        self.bar = self._tqdm(total=total, desc=description, unit="it", disable=None, file=sys.stderr,
                              dynamic_ncols=True, leave=True)

    def handle(self, event) -> None:
        from engine import events as ev
        from engine.eta import format_remaining

        if isinstance(event, ev.Started):
            plan = event.plan
            self.total_steps = plan.total_steps
            self.write(f"{plan.preset}: {plan.search_candidates} candidates, {len(plan.stages)} stages, "
                       f"{plan.total_steps} iterations on {plan.device} ({plan.precision})")
        elif isinstance(event, ev.SearchProgress):
            if self.phase != "latent search":
                self._new(event.total, "latent search")
            self.bar.update(event.done - self.bar.n)
        elif isinstance(event, ev.StageBegan):
            if self.phase != "restore":
                self._new(self.total_steps, "restore")
        elif isinstance(event, ev.Step):
            if self.phase != "restore":
                self._new(event.total_steps, "restore")
            if self.bar.total != event.total_steps:  # a stage stopped early: the total is exact again
                self.bar.total = event.total_steps
            self.bar.update(event.step - self.bar.n)
            self.bar.set_postfix_str(
                f"stage {event.stage + 1} loss {event.losses['total']:.4f} {format_remaining(event.eta_seconds)}",
                refresh=True,
            )
        elif isinstance(event, ev.Notice):
            self.write(event.text)

    def write(self, text: str) -> None:
        self._tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.phase = ""


def _event_json(event) -> str:
    from engine import events as ev

    data: dict = {"event": type(event).__name__}
    if isinstance(event, ev.Started):
        data.update(total_steps=event.plan.total_steps, stages=len(event.plan.stages),
                    search_candidates=event.plan.search_candidates, preset=event.plan.preset)
    elif isinstance(event, ev.SearchProgress):
        data.update(done=event.done, total=event.total)
    elif isinstance(event, ev.SearchFinished):
        data.update(class_index=event.class_index, top_classes=[list(t) for t in event.top_classes])
    elif isinstance(event, ev.StageBegan):
        data.update(stage=event.stage.index, iterations=event.stage.iterations, first_step=event.first_step)
    elif isinstance(event, ev.Step):
        data.update(step=event.step, total_steps=event.total_steps, losses=event.losses,
                    eta_seconds=None if event.eta_seconds is None else round(event.eta_seconds, 2))
    elif isinstance(event, ev.StageEnded):
        data.update(stage=event.stage, steps_done=event.steps_done, total_steps=event.total_steps,
                    early=event.early)
    elif isinstance(event, ev.Notice):
        data.update(text=event.text)
    elif isinstance(event, (ev.Finished, ev.Cancelled)) and event.result is not None:
        data.update(class_index=event.result.class_index, steps_done=event.result.steps_done,
                    losses=event.result.losses, seconds=round(event.result.seconds, 2),
                    best_step=event.result.best_step)
    return json.dumps(data)


def _model_inputs(args) -> list[tuple[str, Path]]:
    """The model files a command reads, as (description, path) pairs for :func:`check_output`."""
    from engine.resources import resource_path

    if args.model == "builtin":
        try:
            folder = resource_path("models", "builtin-64")
        except (FileNotFoundError, OSError):
            return []
    else:
        folder = Path(args.model)
    pairs: list[tuple[str, Path]] = []
    if folder.is_dir():
        pairs.extend(("a model file", entry) for entry in sorted(folder.iterdir()) if entry.is_file())
    else:
        pairs.append(("the generator checkpoint", folder))
    if getattr(args, "discriminator", None):
        pairs.append(("the discriminator checkpoint", args.discriminator))
    return pairs


def _preset_input(args) -> list[tuple[str, Path]]:
    preset = getattr(args, "preset", None)
    return [("the preset file", Path(preset))] if preset and preset.endswith(".toml") else []


def _prepare_output_folders(*paths: Path | None) -> None:
    """Remove temporaries an earlier crash left in the folders this command writes to."""
    from engine.files import clean_stale_temporaries

    for path in paths:
        if path is not None:
            clean_stale_temporaries(path.parent if str(path.parent) else Path("."))


def _check_restore_paths(args) -> list[tuple[str, Path]]:
    """Every input and output of ``restore``, checked before anything is loaded."""
    from engine.files import MAX_INPUT_BYTES, check_distinct_outputs, check_output, check_regular_file

    if args.roi is not None:
        parts = args.roi.split(",")
        if len(parts) != 3 or not all(part.strip().isdigit() for part in parts):
            raise BadInputError(f"--roi {args.roi!r} must be three whole numbers LEFT,TOP,SIZE.")
    check_regular_file(args.image, what="photo", max_bytes=MAX_INPUT_BYTES)
    if args.mask is not None:
        check_regular_file(args.mask, what="mask", max_bytes=MAX_INPUT_BYTES)
    if args.task == "inpaint" and args.mask is None:
        raise BadInputError("--task inpaint needs --mask MASK.png (white = the region to fill).")
    if args.mask is not None and args.task not in ("inpaint", "hybrid"):
        raise BadInputError(
            f"--mask {args.mask} is only used by --task inpaint and hybrid, not {args.task}; leave it out."
        )
    inputs = [("the photo", args.image)]
    if args.mask is not None:
        inputs.append(("the mask", args.mask))
    inputs += _model_inputs(args) + _preset_input(args)
    check_distinct_outputs([("-o", args.output), ("--save-state", args.save_state)])
    check_output(args.output, option="-o", inputs=inputs, overwrite=args.overwrite, suffixes=IMAGE_SUFFIXES)
    if args.save_state is not None:
        check_output(args.save_state, option="--save-state", inputs=inputs, overwrite=args.overwrite)
    if args.frames is not None:
        check_output(args.frames, option="--frames", inputs=inputs, folder=True, may_exist=True)
        if args.frames.is_dir() and not args.overwrite and any(args.frames.glob("step_*.png")):
            raise BadInputError(
                f"--frames {args.frames} already holds step_*.png frames; pass --overwrite or name an empty folder."
            )
    _prepare_output_folders(args.output, args.save_state)
    return inputs


def _stop_on_sigint(stop: threading.Event):
    """Make the first Ctrl+C only set ``stop`` (the engine then yields its best state); a second aborts.

    Returns a function that restores the previous handler.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if stop.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)

    def restore() -> None:
        # Once stopped, the command only writes what it has and exits: a further Ctrl+C
        # arriving during the write or the interpreter's shutdown must not end in a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN if stop.is_set() else previous)

    return restore


def command_restore(args) -> int:
    _check_restore_paths(args)
    from engine import events as ev
    from engine.api import RestoreRequest
    from engine.imageio import load_image, load_mask, save_image

    loaded = load_image(args.image, max_megapixels=args.max_megapixels)
    height, width = loaded.rgb.shape[:2]
    mask = load_mask(args.mask, size=(width, height)) if args.mask else None
    engine = _load_engine(args)
    class_index = None if args.class_ == "auto" else engine.class_index_from(args.class_)
    request = RestoreRequest(
        image=loaded.rgb, task=args.task, roi=_parse_roi(args.roi), mask=mask, sr_factor=args.factor,
        grayscale=args.gray, class_index=class_index, preset=args.preset, quick=args.quick, seed=args.seed,
        iteration_scale=args.iteration_scale, source_name=str(args.image),
        detail_strength=args.detail, allow_large=args.allow_large,
    )
    stop = threading.Event()
    printer = None if args.json else _ProgressPrinter()
    frames_folder = args.frames
    if frames_folder is not None:
        try:
            frames_folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            from engine.files import describe_os_error

            raise BadInputError(f"--frames {frames_folder} cannot be created ({describe_os_error(error)}).") from None
    final = None
    events = engine.restore(request, should_stop=stop)
    restore_handler = _stop_on_sigint(stop)
    try:
        for event in _mask_errors_named(events, args.mask):
            if args.json:
                print(_event_json(event), flush=True)
            else:
                printer.handle(event)
            if isinstance(event, ev.Frame) and frames_folder is not None:
                try:
                    save_image(event.image, frames_folder / f"step_{event.step:05d}.png", overwrite=args.overwrite)
                except BadInputError as error:
                    # Frames are a by-product: losing them must not lose the result.
                    message = f"dgp-studio: warning: no more frames are written ({error})"
                    printer.write(message) if printer else print(message, file=sys.stderr)
                    frames_folder = None
            if isinstance(event, ev.SearchFinished) and class_index is None and printer:
                printer.write("top classes: " + ", ".join(
                    engine.model.class_label(index) for index, _ in event.top_classes))
            if isinstance(event, (ev.Finished, ev.Cancelled)):
                final = event
    except NonFiniteLossError as error:
        if printer:
            printer.close()
        _write_outputs(args, final, engine, save_image)
        print(f"dgp-studio: {error}", file=sys.stderr)
        return 1
    finally:
        restore_handler()
        if printer:
            printer.close()
    written = _write_outputs(args, final, engine, save_image)
    if stop.is_set():
        print("dgp-studio: interrupted; " + ("the best state so far was written." if written else
                                             "nothing to write yet."), file=sys.stderr)
        return 130
    return 0


def _write_outputs(args, final, engine, save_image) -> bool:
    if final is None or final.result is None:
        return False
    result = final.result
    metadata = {
        "Software": f"dgp-studio {__version__}", "dgp-task": result.task, "dgp-preset": result.preset,
        "dgp-class": engine.model.class_label(result.class_index),
        "dgp-steps": f"{result.steps_done}/{result.total_steps}",
    }
    save_image(result.composite, args.output, metadata=metadata, overwrite=args.overwrite,
               protect=args.image)
    if args.save_state:
        result.state.save(args.save_state, overwrite=args.overwrite)
    print(f"wrote {args.output}" + (f" and {args.save_state}" if args.save_state else ""), file=sys.stderr)
    return True


def _mask_errors_named(events, mask: Path | None):
    """Pass the events on; an engine sentence about "the mask" gets the mask file's name."""
    try:
        yield from events
    except BadInputError as error:
        text = str(error)
        if mask is not None and "mask" in text and str(mask) not in text:
            raise BadInputError(f"{mask}: {text}") from None
        raise


def _load_state(path: Path):
    from engine.state import GeneratorState

    return GeneratorState.load(path)


def _check_state_model(state, path: Path, engine) -> None:
    if state.model_identity != engine.model.identity:
        raise BadInputError(
            f"{path} was made with the model {state.model_identity}, not the loaded {engine.model.identity}; "
            "pass the --model it was made with."
        )


def _check_state_command(args, states: list[Path], *, suffixes, folder_allowed: bool = False) -> None:
    """Check the states a command reads and its ``-o`` before anything is loaded."""
    from engine.files import MAX_STATE_BYTES, check_output, check_regular_file

    for state in states:
        check_regular_file(state, what="state file", max_bytes=MAX_STATE_BYTES)
    inputs = [("the state file", state) for state in states] + _model_inputs(args)
    if folder_allowed and (args.output.suffix == "" or args.output.is_dir()):
        check_output(args.output, option="-o", inputs=inputs, folder=True, may_exist=True)
    else:
        check_output(args.output, option="-o", inputs=inputs, overwrite=args.overwrite, suffixes=suffixes)
    _prepare_output_folders(args.output)


def command_jitter(args) -> int:
    _check_state_command(args, [args.state], suffixes=IMAGE_SUFFIXES)
    from engine.export import write_contact_sheet

    state = _load_state(args.state)
    engine = _load_engine(args)
    _check_state_model(state, args.state, engine)
    images = engine.jitter(state, sigma=args.sigma, count=args.count, seed=args.seed)
    columns = args.columns or max(1, int(round(len(images) ** 0.5)))
    write_contact_sheet(images, args.output, columns=columns, overwrite=args.overwrite)
    print(f"wrote {args.output} ({len(images)} variations, sigma {args.sigma})", file=sys.stderr)
    return 0


def command_transfer(args) -> int:
    if len(args.class_) > TRANSFER_CLASSES_MAX:
        raise BadInputError(f"--class is given {len(args.class_)} times; at most {TRANSFER_CLASSES_MAX} are allowed.")
    _check_state_command(args, [args.state], suffixes=IMAGE_SUFFIXES)
    from engine.export import write_contact_sheet
    from engine.imageio import save_image

    state = _load_state(args.state)
    engine = _load_engine(args)
    _check_state_model(state, args.state, engine)
    classes = [engine.class_index_from(value) for value in args.class_]
    images = engine.transfer_many(state, classes)
    if len(images) == 1:
        save_image(images[0], args.output, overwrite=args.overwrite)
    else:
        labels = [engine.model.class_label(c) for c in classes]
        columns = max(1, int(round(len(images) ** 0.5)))
        write_contact_sheet(images, args.output, columns=columns, labels=labels, overwrite=args.overwrite)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def command_morph(args) -> int:
    _check_state_command(args, [args.state_a, args.state_b], suffixes=ANIMATION_SUFFIXES, folder_allowed=True)
    from engine.export import AnimationOptions, export_animation, timeline_lambdas

    state_a, state_b = _load_state(args.state_a), _load_state(args.state_b)
    engine = _load_engine(args)
    _check_state_model(state_a, args.state_a, engine)
    _check_state_model(state_b, args.state_b, engine)
    lambdas = [lam for _segment, lam in timeline_lambdas(2, args.frames, easing=args.easing)]
    stop = threading.Event()
    frames = (image for _lam, image in engine.morph(state_a, state_b, lambdas, should_stop=stop))
    options = AnimationOptions(fps=args.fps, ping_pong=args.ping_pong, size=args.size)
    started = time.perf_counter()
    try:
        for _progress in export_animation(frames, args.output, options=options, total=len(lambdas),
                                          should_stop=stop, overwrite=args.overwrite):
            pass
    except KeyboardInterrupt:
        stop.set()
        print("dgp-studio: interrupted; no partial file was left.", file=sys.stderr)
        return 130
    print(f"wrote {args.output} ({len(lambdas)} frames in {time.perf_counter() - started:.1f} s)",
          file=sys.stderr)
    return 0


def _precheck_folders(command: str, argv: list[str]) -> int:
    """Check train's and evaluate's output folders before their modules (and torch) are imported.

    The commands check the same again themselves; this only makes a bad
    ``--out`` a sentence within a fraction of a second. Returns 2 when
    refused, else 0 (the command's own parser reports anything else).
    """
    from engine.files import check_output

    parser = argparse.ArgumentParser(add_help=False)
    for option in ("--out", "--data", "--classes", "--seed-from", "--publish", "--model-dir", "--discriminator",
                   "--model"):
        parser.add_argument(option, type=Path)
    known, _rest = parser.parse_known_args(argv)
    if known.out is None:
        return 0
    if command == "evaluate":
        inputs = [("the validation data", known.data), ("the class list", known.classes),
                  ("the discriminator checkpoint", known.discriminator)]
        if known.model is not None and str(known.model) != "builtin":
            inputs.append(("the model", known.model))
        outputs = [("--out", known.out)]
    else:
        inputs = [("the training data folder", known.data), ("the training state folder", known.seed_from)]
        outputs = [("--publish", known.publish), ("--model-dir", known.model_dir)] if known.publish else [
            ("--out", known.out)]
        if known.publish:
            inputs.append(("the run folder", known.out))
    try:
        for option, folder in outputs:
            if folder is not None:
                check_output(folder, option=option, inputs=inputs, folder=True, may_exist=True)
    except BadInputError as error:
        print(f"dgp-studio {command}: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None, *, models_root: Path | None = None) -> int:
    """Run the command line; ``models_root`` is the model store's default folder.

    The engine knows no per-user folders: the app's entry point passes the
    platform's data folder for ``models`` (the ``--root`` option overrides it).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "evaluate"):
        refused = _precheck_folders(argv[0], argv[1:])
        if refused:
            return refused
    if argv and argv[0] == "train":
        from engine.train import main as train_main

        return train_main(argv[1:])
    if argv and argv[0] == "models":
        from engine.model_store import main as models_main

        rest = argv[1:]
        if models_root is not None and "--root" not in rest and not any(a.startswith("--root=") for a in rest):
            rest = ["--root", str(models_root), *rest]
        return models_main(rest)
    if argv and argv[0] == "evaluate":
        from engine.evaluate import main as evaluate_main

        return evaluate_main(argv[1:])
    if argv and argv[0] == "batch":
        from engine.batch import main as batch_main

        return batch_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handlers = {
        "restore": command_restore, "jitter": command_jitter, "transfer": command_transfer,
        "morph": command_morph,
    }
    try:
        return handlers[args.command](args)
    except BadInputError as error:
        print(f"dgp-studio: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        from engine.files import describe_os_error

        where = f"{error.filename}" if error.filename else "a file"
        print(f"dgp-studio: {where} could not be used ({describe_os_error(error)}).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dgp-studio: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
