"""``brushwork video`` (stylize a video with stable strokes) and ``brushwork eval-video`` (temporal metrics)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from brushwork.cli.common import (
    ProgressBar,
    add_ray,
    emit_json,
    int_range,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    ray_settings,
    unit_float,
)
from brushwork.errors import BrushworkError, InputError, OutputError
from brushwork.options import MAX_SIDE, MIN_SIDE

FORMATS = ("mp4", "webm", "gif")


def _methods() -> dict[str, Any]:
    """The methods a video can use: all of them (optimize is slow: seconds to minutes per frame)."""
    from brushwork.api import METHODS

    return dict(METHODS)


def register(sub: argparse._SubParsersAction) -> None:
    from brushwork.cli.flags import add_option_flags, option_classes
    from brushwork.methods.optimize import FRAME_ITERATIONS, TEMPORAL_WEIGHT
    from brushwork.video import CONSISTENCY, KEYFRAMES

    methods = _methods()

    p = sub.add_parser(
        "video",
        help="stylize a video (or a folder of videos) with flow-consistent strokes, keeping its audio",
        description="Stylize the video IN with STYLE (an image or builtin:N; several styles blend) into OUT: .mp4 "
        "(H.264, plays in browsers), .webm (VP9) or .gif. Frame timing, rotation and audio are kept. IN may be a "
        "folder, then -o names an output folder.",
    )
    p.add_argument("input", metavar="IN", help="video file, or a folder of videos")
    p.add_argument("styles", nargs="+", metavar="STYLE", help="style image, or builtin:0..builtin:25")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output video (.mp4, .webm, .gif) or folder")
    p.add_argument(
        "--method",
        choices=list(methods),
        default="fast",
        help="stylization method for every frame: "
        + "; ".join(f"{name}: {spec.summary}" for name, spec in methods.items())
        + " (default: %(default)s)",
    )
    p.add_argument(
        "--consistency",
        type=unit_float,
        default=CONSISTENCY,
        help="0..1: how much each frame keeps the previous result, warped along the motion, outside occlusions; "
        "0 = frame by frame (default: %(default)s)",
    )
    p.add_argument(
        "--keyframes",
        type=positive_int,
        metavar="N",
        help="the network stylizes every N-th frame (and the frames next to a scene cut); the frames between are "
        "warped from the two stylized keyframes around them along the motion. 1 = every frame (default: "
        f"{KEYFRAMES} for the feed-forward methods with --consistency above 0, else 1; --method optimize: 1 only)",
    )
    p.add_argument(
        "--temporal-weight",
        type=nonnegative_float,
        help="--method optimize: weight of the temporal loss (difference to the warped previous result; "
        f"default: {TEMPORAL_WEIGHT:g})",
    )
    p.add_argument(
        "--frame-iterations",
        type=positive_int,
        help="--method optimize: iterations of a frame that starts from the warped previous result; frames without "
        f"one (the first, after a scene cut) run --iterations (default: {FRAME_ITERATIONS})",
    )
    p.add_argument("--crf", type=int, default=20, help="quality of MP4/WebM, 0 (best) to 51 (default: %(default)s)")
    p.add_argument("--start", type=nonnegative_float, help="first second to stylize")
    p.add_argument("--end", type=nonnegative_float, help="second to stop at")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from the frames it finished")
    p.add_argument("--format", choices=FORMATS, default="mp4", help="output format in folder mode (default: mp4)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="folder mode: refuse the run (nothing written) when any file is not a usable video; by default each "
        "one is skipped with a warning and counted in the summary",
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable record of each result")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_option_flags(p, option_classes(methods))  # --max-size bounds the frames
    add_ray(p)
    p.add_argument(
        "--warm-frames",
        type=nonnegative_int,
        default=8,
        help="with --ray: stylized frames before each segment that warm its history, so seams do not flicker "
        "(with --keyframes N: N times as many frames; default: %(default)s)",
    )
    p.add_argument(
        "--segment-frames",
        type=positive_int,
        help="with --ray: frames per segment (cut at the next key frame; default: two segments per worker, "
        "24 to 240 frames)",
    )
    p.set_defaults(run=run)

    e = sub.add_parser(
        "eval-video",
        help="temporal consistency of a stylized video: warping error, flicker, style distance per frame",
        description="Compare STYLIZED with ORIGINAL: warping error (Lai et al. 2018: squared RGB difference between "
        "each stylized frame and the previous one warped by the original's optical flow, over non-occluded pixels), "
        "flicker (low-frequency brightness change along the motion beyond the original's), fine detail, and the "
        "style distance of each frame.",
    )
    e.add_argument("original", help="the source video")
    e.add_argument("stylized", help="the stylized video (same frames)")
    e.add_argument("--style", help="style image to measure each frame's style distance to (default: the video's mean)")
    e.add_argument(
        "--max-size",
        type=int_range(MIN_SIDE, MAX_SIDE),
        default=480,
        help=f"compare at this longer side, at least {MIN_SIDE} (a long thin video keeps {MIN_SIDE} px on its shorter "
        "side; default: %(default)s)",
    )
    e.add_argument("--json", action="store_true", help="print all figures, per frame too, as JSON")
    e.set_defaults(run=run_eval)


def _jobs(args: argparse.Namespace, max_size: int | None) -> tuple[list[tuple[Path, Path]], int]:
    """(input, output) pairs, and how many files of a folder were skipped. Everything is checked before any work and
    before any folder is made: the styles, the numbers, the output paths, and every input video (its header and
    first frame, and that --max-size, --start and --end leave frames of it). In folder mode an unusable video is
    skipped with one warning line (``--strict``: the error); the run fails only when no usable video remains."""
    from brushwork import io

    src, out = Path(args.input), Path(args.output)
    for style in args.styles:
        if not style.startswith("builtin:"):
            if not Path(style).is_file():
                raise InputError(f"style image not found: {style}")
            io.verify_image(style, min_side=MIN_SIDE)  # decoded once: a bad style fails before any work
    if args.crf < 0 or args.crf > 51:
        raise InputError(f"--crf must be from 0 to 51, got {args.crf}")
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise InputError(f"--end ({args.end}) must be after --start ({args.start})")
    skipped = 0
    if src.is_dir():
        if out.exists() and not out.is_dir():
            raise InputError(f"{src} is a folder, so -o must be a folder too, not the file {out}")
        if not out.exists() and out.suffix.lower() in io.VIDEO_EXTENSIONS | io.IMAGE_EXTENSIONS:
            raise InputError(f"{src} is a folder, so -o must be a folder too, not the file name {out}")
        io.check_output_folder(out)
        sources, skipped = _usable_videos(io.list_videos(src), args, max_size)
        names = io.unique_names(sources)  # a.jpg and a.png must not both become a.png

        pairs = [(p, out / f"{names[p]}.{args.format}") for p in sources]
    elif src.exists() or src.is_symlink():
        info = io.probe_video(src, min_side=MIN_SIDE)  # header and first frame: a bad input fails before any work
        _check_frames(info, args, max_size)
        pairs = [(src, out)]
    else:
        raise InputError(f"cannot read {src}: no such file")
    protect = [p for p, _ in pairs] + [Path(s) for s in args.styles if not s.startswith("builtin:")]
    for _, dst in pairs:
        if dst.parent.is_dir():  # a folder made later was checked as a whole (check_output_folder)
            io.check_video_writable(dst, protect)
        else:
            io.check_name_length(dst)
    return pairs, skipped


def _check_frames(info: Any, args: argparse.Namespace, max_size: int | None) -> None:
    from brushwork.video import check_frames

    check_frames(info, max_size=max_size, start=args.start, end=args.end)


def _usable_videos(paths: list[Path], args: argparse.Namespace, max_size: int | None) -> tuple[list[Path], int]:
    """The videos of a folder that can be stylized (:func:`brushwork.io.usable_images` with a video's checks: its
    header and first frame, and that --max-size, --start and --end leave frames of it), and how many were skipped."""
    from brushwork import io

    good, bad = io.usable_images(
        paths,
        strict=args.strict,
        where=args.input,
        check=lambda p: _check_frames(io.probe_video(p, min_side=MIN_SIDE), args, max_size),
        kind="video",
    )
    return good, len(bad)


def _make_folder(args: argparse.Namespace) -> bool:
    """Folder mode: create the output folder (after every check); True when this run created it."""
    src, out = Path(args.input), Path(args.output)
    if not src.is_dir() or out.is_dir():
        return False
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder {out}: {exc.strerror or exc}") from None
    return True


@contextmanager
def _unwind_on_signals() -> Iterator[list[int]]:
    """SIGTERM and SIGINT raise KeyboardInterrupt in the main thread while a video runs, so the pipeline unwinds:
    the unfinished output (a hidden temporary file beside OUT) is removed, and the finished frames stay in the
    resume cache. Yields the list of signals received; a second signal while unwinding is ignored."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: object) -> None:
        if received:
            return
        received.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    from brushwork.cli.flags import option_classes, options_from_args

    return options_from_args(args, option_classes(_methods()))


def _one_video(
    args: argparse.Namespace,
    src: Path,
    dst: Path,
    renderer: Any,
    protect: list[Path],
    max_size: int | None,
    options: dict[str, Any],
    bar: ProgressBar,
) -> dict[str, Any]:
    from brushwork.video import stylize_video

    return stylize_video(
        src,
        dst,
        args.styles,
        **_settings(args, max_size),
        temporal_weight=args.temporal_weight,
        frame_iterations=args.frame_iterations,
        progress=bar,
        renderer=renderer,
        protect=protect,
        **options,
    )


def run(args: argparse.Namespace) -> int:
    from brushwork.api import METHODS, check_options
    from brushwork.video import check_keyframes, check_renderer, make_renderer

    cluster = ray_settings(args) if getattr(args, "ray", None) else None  # Ray missing: one line, before any work
    options = _options(args)
    if args.method != "optimize" and (args.temporal_weight is not None or args.frame_iterations is not None):
        raise InputError("--temporal-weight and --frame-iterations apply to --method optimize only")
    check_keyframes(args.keyframes, args.method, args.consistency)  # before the styles load (the API checks again)
    check_options(args.method, options)  # values and options the method lacks, before any file work
    # bounds the frames (the pipeline resizes); the method's default bound when not given
    max_size = options.pop("max_size", METHODS[args.method].options.max_size)
    pairs, skipped = _jobs(args, max_size)
    folder = Path(args.input).is_dir()
    if cluster is not None:
        if args.method == "optimize":
            raise InputError("--method optimize runs a video in one process: drop --ray")
        _make_folder(args)
        return _run_cluster(args, pairs, options, max_size, cluster, skipped)
    renderer = make_renderer(args.styles, args.method, **options)  # style work done once for every video
    check_renderer(renderer, args.method)
    created = _make_folder(args)
    protect = [Path(s) for s in args.styles if not s.startswith("builtin:")]
    records: list[dict[str, Any]] = []
    failures = skipped
    for src, dst in pairs:
        bar = ProgressBar(args.quiet, unit="frame")
        try:
            with _unwind_on_signals() as received:
                record = _one_video(args, src, dst, renderer, protect, max_size, options, bar)
        except KeyboardInterrupt:
            bar.close()
            signum = received[0] if received else int(signal.SIGINT)
            sys.stderr.write(
                f"brushwork: stopped by {signal.Signals(signum).name}; {dst} was not written; the finished frames "
                "are kept: run the same command with --resume to continue\n"
            )
            return 128 + signum
        except BrushworkError as exc:
            bar.close()
            if not folder or args.strict:
                _remove_if_empty(args, created)
                raise
            failures += 1
            sys.stderr.write(f"brushwork: warning: {exc}; skipped\n")
            continue
        bar.close()
        records.append(record)
        if not args.json:
            _print(record)
    if folder and not records:
        _remove_if_empty(args, created)
        raise InputError(f"no usable video in {args.input} ({failures} skipped)")
    if args.json:
        emit_json(records if folder else records[0])
    elif folder:
        _print_summary(args, len(records), failures)
    return 0


def _remove_if_empty(args: argparse.Namespace, created: bool) -> None:
    """The output folder this run created, removed when the run wrote nothing into it."""
    if created:
        try:
            Path(args.output).rmdir()
        except OSError:
            pass


def _print_summary(args: argparse.Namespace, written: int, skipped: int) -> None:
    note = f" ({skipped} skipped)" if skipped else ""
    print(f"wrote {written} of {written + skipped} videos to {args.output}{note}")


def _settings(args: argparse.Namespace, max_size: Any) -> dict[str, Any]:
    """The video flags both pipelines take (one process, or a Ray cluster)."""
    return {
        "method": args.method,
        "consistency": args.consistency,
        "keyframes": args.keyframes,
        "crf": args.crf,
        "start": args.start,
        "end": args.end,
        "max_size": max_size,
        "resume": args.resume,
    }


def _print(record: dict[str, Any]) -> None:
    audio = f", audio {record['audio']}" if record["audio"] else ""
    print(
        f"wrote {record['output']} ({record['frames']} frames, {record['width']}×{record['height']}, "
        f"{record['frames_per_second']:.2f} frames/s{audio})"
    )


def _run_cluster(
    args: argparse.Namespace,
    pairs: list[tuple[Path, Path]],
    options: dict[str, Any],
    max_size: Any,
    settings: Any,
    skipped: int = 0,
) -> int:
    """Every video of ``pairs`` split into segments across a Ray cluster, with one progress bar for the job."""
    from brushwork import cluster

    with ProgressBar(args.quiet or args.json, unit="frame") as bar:
        records = cluster.stylize_videos(
            pairs,
            args.styles,
            **_settings(args, max_size),
            options=options,
            warm=args.warm_frames,
            segment_frames=args.segment_frames,
            settings=settings,
            progress=bar,
            protect=[Path(s) for s in args.styles if not s.startswith("builtin:")],
        )
    folder = Path(args.input).is_dir()
    if args.json:
        emit_json(records if folder else records[0])
        return 0
    for record in records:
        _print(record)
    if folder:
        _print_summary(args, len(records), skipped)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from brushwork.video import evaluate_video

    if args.style is not None:
        from brushwork import io
        from brushwork.options import MIN_SIDE

        if not Path(args.style).is_file():
            raise InputError(f"style image not found: {args.style}")
        io.verify_image(args.style, min_side=MIN_SIDE)
    result = evaluate_video(args.original, args.stylized, style=args.style, max_size=args.max_size)
    if args.json:
        emit_json(result)
        return 0
    print(f"frames          {result['frames']} ({result['width']}×{result['height']})")
    print(f"warping error   {result['warping_error']:.5f}  (lower = steadier; Lai et al. 2018)")
    print(f"flicker         {result['flicker']:.3f}  (grey levels of brightness change beyond the original's)")
    print(f"detail          {result['detail']:.4f}  (mean absolute Laplacian)")
    per = result["style_distance_per_frame"]
    print(
        f"style distance  {result['style_distance']:.4f}  (to the {result['style_reference']}; "
        f"per frame {min(per):.4f}..{max(per):.4f})"
    )
    return 0
