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
SUBCOMMANDS = ("restore", "jitter", "transfer", "morph", "train", "models", "evaluate", "batch")


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
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for torch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgp-studio",
        description="Restore and edit photos with a Deep Generative Prior. Without a command, "
                    "dgp-studio opens the desktop app.",
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dgp-studio {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    restore = commands.add_parser("restore", help="restore one image with DGP")
    restore.add_argument("image", type=Path, help="the photo to restore (never modified)")
    restore.add_argument("--task", required=True, choices=TASK_CHOICES,
                         help="colorize, inpaint (needs --mask), sr (super-resolution; the image is the "
                              "low-resolution input), hybrid, reconstruct, defend (remove adversarial noise)")
    restore.add_argument("--mask", type=Path, metavar="MASK.png",
                         help="painted region to fill (white = missing), same size as the image")
    restore.add_argument("--factor", type=int, choices=[2, 4, 8], help="super-resolution factor (default 4)")
    restore.add_argument("--gray", action="store_true", help="hybrid: include graying (colorization)")
    restore.add_argument("--class", dest="class_", default="auto", metavar="INDEX|NAME|auto",
                         help="what the photo shows: an ImageNet-1k class index (1 = goldfish) or name; "
                              "'auto' lets the latent search choose and reports the top 5")
    restore.add_argument("--roi", metavar="LEFT,TOP,SIZE",
                         help="square region sent to the model (default: the largest centred square)")
    restore.add_argument("--preset", metavar="NAME|FILE.toml", help="schedule preset (default: the task's)")
    restore.add_argument("--quick", action="store_true", help="the preset's quick variant (previews, tests)")
    restore.add_argument("--iteration-scale", type=float, default=1.0, metavar="X",
                         help="multiply every stage's iterations")
    restore.add_argument("--seed", type=int, default=0, help="seed of the latent search (default 0)")
    restore.add_argument("--frames", type=Path, metavar="DIR", help="write intermediate frames as PNGs here")
    restore.add_argument("--save-state", type=Path, metavar="FILE",
                         help="save the fine-tuned state for jitter/transfer/morph")
    restore.add_argument("--json", action="store_true", help="print one JSON object per event on stdout")
    restore.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png",
                         help="full-resolution result (PNG, JPEG or WebP)")
    restore.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    _add_model_options(restore)

    jitter = commands.add_parser("jitter", help="random variations of a restored result")
    jitter.add_argument("state", type=Path, help="a state saved by restore --save-state")
    jitter.add_argument("--sigma", type=float, default=0.5, help="jitter strength (paper: 0.3, 0.5, 0.7)")
    jitter.add_argument("--count", type=int, default=16)
    jitter.add_argument("--seed", type=int, default=0)
    jitter.add_argument("--columns", type=int, default=None, help="sheet columns (default: square-ish)")
    jitter.add_argument("-o", "--output", type=Path, required=True, metavar="SHEET.png|DIR")
    jitter.add_argument("--overwrite", action="store_true")
    _add_model_options(jitter)

    transfer = commands.add_parser("transfer", help="render a restored result as another category")
    transfer.add_argument("state", type=Path)
    transfer.add_argument("--class", dest="class_", required=True, action="append", metavar="INDEX|NAME",
                          help="target class; repeat for a gallery sheet")
    transfer.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.png")
    transfer.add_argument("--overwrite", action="store_true")
    _add_model_options(transfer)

    morph = commands.add_parser("morph", help="morph one restored result into another")
    morph.add_argument("state_a", type=Path)
    morph.add_argument("state_b", type=Path)
    morph.add_argument("--frames", type=int, default=11, help="number of frames, endpoints included")
    morph.add_argument("--fps", type=float, default=12.0)
    morph.add_argument("--easing", default="linear", choices=["linear", "ease-in-out", "ease-in", "ease-out"])
    morph.add_argument("--ping-pong", action="store_true", help="play forwards then backwards")
    morph.add_argument("--size", type=int, default=None, help="output side in pixels (default: model resolution)")
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
            self.bar.update(event.step - self.bar.n)
            self.bar.set_postfix_str(
                f"stage {event.stage + 1} loss {event.losses['total']:.4f} ETA {_format_seconds(event.eta_seconds)}",
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


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


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
                    eta_seconds=round(event.eta_seconds, 2))
    elif isinstance(event, ev.Notice):
        data.update(text=event.text)
    elif isinstance(event, (ev.Finished, ev.Cancelled)) and event.result is not None:
        data.update(class_index=event.result.class_index, steps_done=event.result.steps_done,
                    losses=event.result.losses, seconds=round(event.result.seconds, 2))
    return json.dumps(data)


def command_restore(args) -> int:
    from engine import events as ev
    from engine.api import RestoreRequest
    from engine.imageio import load_image, load_mask, save_image

    loaded = load_image(args.image)
    if args.output.resolve() == args.image.resolve():
        raise BadInputError(f"{args.output}: refusing to overwrite the input image; choose another output.")
    if args.output.exists() and not args.overwrite:
        raise BadInputError(f"{args.output}: the output file exists; pass --overwrite to replace it.")
    height, width = loaded.rgb.shape[:2]
    mask = load_mask(args.mask, size=(width, height)) if args.mask else None
    if args.task == "inpaint" and mask is None:
        raise BadInputError("--task inpaint needs --mask MASK.png (white = the region to fill).")
    engine = _load_engine(args)
    class_index = None if args.class_ == "auto" else engine.class_index_from(args.class_)
    request = RestoreRequest(
        image=loaded.rgb, task=args.task, roi=_parse_roi(args.roi), mask=mask, sr_factor=args.factor,
        grayscale=args.gray, class_index=class_index, preset=args.preset, quick=args.quick, seed=args.seed,
        iteration_scale=args.iteration_scale, source_name=str(args.image),
    )
    stop = threading.Event()
    printer = None if args.json else _ProgressPrinter()
    if args.frames:
        args.frames.mkdir(parents=True, exist_ok=True)
    final = None
    interrupted = False
    events = engine.restore(request, should_stop=stop)
    try:
        while True:
            try:
                event = next(events)
            except StopIteration:
                break
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                continue
            if args.json:
                print(_event_json(event), flush=True)
            else:
                printer.handle(event)
            if isinstance(event, ev.Frame) and args.frames:
                save_image(event.image, args.frames / f"step_{event.step:05d}.png", overwrite=True)
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
        if printer:
            printer.close()
    written = _write_outputs(args, final, engine, save_image)
    if interrupted:
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
        result.state.save(args.save_state)
    print(f"wrote {args.output}" + (f" and {args.save_state}" if args.save_state else ""), file=sys.stderr)
    return True


def _load_state(path: Path):
    from engine.state import GeneratorState

    return GeneratorState.load(path)


def command_jitter(args) -> int:
    from engine.export import write_contact_sheet

    state = _load_state(args.state)
    engine = _load_engine(args)
    images = engine.jitter(state, sigma=args.sigma, count=args.count, seed=args.seed)
    columns = args.columns or max(1, int(round(len(images) ** 0.5)))
    write_contact_sheet(images, args.output, columns=columns, overwrite=args.overwrite)
    print(f"wrote {args.output} ({len(images)} variations, sigma {args.sigma})", file=sys.stderr)
    return 0


def command_transfer(args) -> int:
    from engine.export import write_contact_sheet
    from engine.imageio import save_image

    state = _load_state(args.state)
    engine = _load_engine(args)
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
    from engine.export import AnimationOptions, export_animation, timeline_lambdas

    state_a, state_b = _load_state(args.state_a), _load_state(args.state_b)
    engine = _load_engine(args)
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


def main(argv: list[str] | None = None, *, models_root: Path | None = None) -> int:
    """Run the command line; ``models_root`` is the model store's default folder.

    The engine knows no per-user folders: the app's entry point passes the
    platform's data folder for ``models`` (the ``--root`` option overrides it).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
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
    except KeyboardInterrupt:
        print("dgp-studio: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
