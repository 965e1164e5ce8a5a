"""``brushwork compare``, ``brushwork eval`` and ``brushwork tune``: methods side by side, with numbers.

Every method runs through the one API, ``brushwork.api.stylize(content, styles, method=m, **options)``; the
metrics come from :mod:`brushwork.evaluate` and the pictures from :mod:`brushwork.draw`.

- compare: one sheet with the photo, each style and each method's result, labelled with time and metrics.
- eval: every content × style pair with each method (or results read from folders), written as a CSV, a Markdown
  summary, an HTML report with contact sheets and a scatter plot. Finished outputs are reused on a re-run.
- tune: a small grid over a method's main controls, the Pareto front of content preservation against style
  distance, the recommended setting and the command line that reproduces it.
"""

from __future__ import annotations

import argparse
import csv
import html
import io as _stdio
import itertools
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brushwork.cli.common import add_device, add_ray, emit_json, positive_int, ray_settings
from brushwork.errors import BrushworkError, InputError, OutputError

DEFAULT_METHODS = "fast,adain,wct,optimize"
REFERENCE = "photo"  # pseudo-method: the unstylized photo, a reference row
CONTENT_METRIC = "ssim"
STYLE_METRICS = ("mean_std", "style_code", "gram")
SHEET_ROWS = 6  # pairs per contact sheet of a report
MAX_TILE = 1024  # --tile of the sheets, in pixels
REPORT_FILES = ("results.csv", "summary.md", "scatter.png", "report.html")  # eval, directly in REPORT_DIR
TUNE_FILES = ("pareto.png", "recommended.png", "tune.csv")  # tune, in OUT


# --------------------------------------------------------------------------------------------- parser


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser(
        "compare",
        help="run several methods on a photo and lay the results side by side with their time and metrics",
        description="Stylize PHOTO with each STYLE (one row per style) by each method, and write one labelled "
        "sheet: the photo, the style, then every method's result with its time and metrics.",
    )
    c.add_argument("photo", help="the photo")
    c.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s); each gets its own row")
    _common(c)
    c.add_argument("-o", "--output", help="the sheet to write (format from its extension, e.g. sheet.jpg)")
    c.add_argument("--json", action="store_true", help="print the times and metrics as JSON")
    c.add_argument("--tile", type=positive_int, default=256, help="tile size in the sheet (default: %(default)s)")
    c.set_defaults(run=run_compare)

    e = sub.add_parser(
        "eval",
        help="evaluate methods on every content × style pair of two folders: CSV, Markdown, HTML report, plot",
        description="Stylize every photo of --content with every painting of --styles by each method and measure "
        "the results. Writes REPORT_DIR/results.csv, summary.md, report.html, scatter.png, sheets/ and the outputs "
        "(outputs/METHOD/); a re-run reuses the finished outputs.",
    )
    e.add_argument("--content", required=True, metavar="DIR", help="folder of photos")
    e.add_argument("--styles", required=True, metavar="DIR", help="folder of style images")
    e.add_argument("--out", required=True, metavar="REPORT_DIR", help="folder of the report (created)")
    _common(e)
    e.add_argument("--limit", type=positive_int, metavar="N", help="only N pairs, spread evenly over all pairs")
    e.add_argument(
        "--results",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also evaluate existing results: DIR/<photo>__<style>.<ext> for each pair, reported as NAME",
    )
    e.add_argument("--tile", type=positive_int, default=192, help="tile size of the sheets (default: %(default)s)")
    add_ray(e)
    e.set_defaults(run=run_eval)

    t = sub.add_parser(
        "tune",
        help="search a method's controls for the best trade-off between keeping the photo and matching the style",
        description="Try a small grid of settings of --method on PHOTO with STYLE, measure content preservation "
        "(SSIM) and style distance for each, and report the Pareto front, the setting recommended for --target and "
        "the command line that reproduces it. Writes OUT/pareto.png, OUT/tune.csv and OUT/recommended.png.",
    )
    t.add_argument("photo", help="the photo")
    t.add_argument("style", help="the style image")
    t.add_argument("--method", default="fast", help="the method to tune (default: %(default)s)")
    t.add_argument(
        "--target",
        choices=["balanced", "content", "style"],
        default="balanced",
        help="what the recommendation favours (default: %(default)s)",
    )
    t.add_argument("-o", "--out", default="tune", metavar="DIR", help="output folder (default: %(default)s)")
    t.add_argument(
        "--grid",
        metavar="SPEC",
        help="the settings to try, e.g. 'strength=0.5,1;stroke_scale=1,2' (default: the method's own grid)",
    )
    t.add_argument(
        "--style-metric",
        choices=STYLE_METRICS,
        default="mean_std",
        help="style distance of the trade-off (default: %(default)s)",
    )
    _common(t, methods=False)
    t.add_argument("--json", action="store_true", help="print the settings and their metrics as JSON")
    t.set_defaults(run=run_tune)


def _common(p: argparse.ArgumentParser, methods: bool = True) -> None:
    if methods:
        p.add_argument(
            "--methods",
            default=DEFAULT_METHODS,
            help=f"comma-separated methods (default: {DEFAULT_METHODS}); '{REFERENCE}' adds the photo as a reference",
        )
    p.add_argument(
        "--max-size",
        type=positive_int,
        default=512,
        help="bound on the longer side of every result, in pixels (default: %(default)s)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[METHOD.]OPTION=VALUE",
        help="an option for one method (optimize.iterations=40) or all (strength=0.8); repeatable",
    )
    p.add_argument(
        "--metric-size",
        type=positive_int,
        default=384,
        help="longer side at which results are measured (default: %(default)s)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_device(p)


# --------------------------------------------------------------------------------------------- the API


def api_methods() -> dict[str, Any]:
    """The registered methods: ``brushwork.api.METHODS`` (name → spec)."""
    from brushwork import api

    return dict(api.METHODS)


def api_stylize(content: Any, styles: Sequence[Any], method: str, **options: Any) -> Any:
    """Every method runs through the contract: ``brushwork.api.stylize`` (returns a PIL image)."""
    from brushwork import api

    return api.stylize(content, list(styles), method=method, **options)


def parse_methods(text: str, allow_reference: bool = True) -> list[str]:
    """Comma-separated method names, checked against the API's registry (one-line InputError otherwise)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise InputError("give at least one method (--methods fast,adain,...)")
    known = api_methods()
    for m in names:
        if m == REFERENCE and allow_reference:
            continue
        if m not in known:
            raise InputError(f"method {m!r} is not available here; available: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise InputError(f"a method is named twice in {text!r}")
    return names


def parse_value(text: str) -> Any:
    """An option value from the command line: a number, true/false/none, a comma list, or the text itself."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if "," in text:
        return tuple(parse_value(t) for t in text.split(",") if t.strip())
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"option value {text!r} is not a finite number")
        return value
    return text


def parse_sets(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--set`` items → per-method options. ``METHOD.OPTION=VALUE`` for one method, ``OPTION=VALUE`` for all."""
    options: dict[str, dict[str, Any]] = {m: {} for m in methods}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: use OPTION=VALUE or METHOD.OPTION=VALUE")
        method, dot, name = key.strip().rpartition(".")
        name = name.replace("-", "_")
        targets = [method] if dot else [m for m in methods if m != REFERENCE]
        for m in targets:
            if m not in options:
                raise InputError(f"--set {item!r}: method {m!r} is not among those run ({', '.join(methods)})")
            options[m][name] = parse_value(value)
    return options


def check_options(method: str, options: dict[str, Any]) -> None:
    """One-line InputError for an option the method does not take or a value out of range, before any work."""
    from brushwork import api

    api.check_options(method, options)


def _image_file(path: str, what: str) -> Path:
    """``path`` checked as an image the methods can use (decoded once, at least MIN_SIDE pixels a side): a bad
    file is refused in one line before any network is loaded or any output made."""
    from brushwork import io
    from brushwork.options import MIN_SIDE

    p = Path(path)
    if not p.is_file() and not p.is_symlink():
        raise InputError(f"{what} not found: {path}")
    io.verify_image(p, min_side=MIN_SIDE)
    return p


def _to_rgb(image: Any) -> Any:
    import numpy as np

    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    return arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)


@dataclass
class Runner:
    """Runs methods through the API, timed, with the per-method options, warming each method up once."""

    options: dict[str, dict[str, Any]]
    max_size: int
    device: str
    # warm-up before the first timed run of a method: on the real photo, twice (the fast method prepares a runtime
    # per image size on its second call), or once on a 64-px copy (loading networks only; eval's many photos)
    warm_full: bool = False
    warmed: set[tuple[str, Any]] = field(default_factory=set)

    def call_options(self, method: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        opts = {"max_size": self.max_size, "device": self.device, **self.options.get(method, {})}
        return {**opts, **(extra or {})}

    def run(self, method: str, photo: Any, style: Any, extra: dict[str, Any] | None = None) -> tuple[Any, Any]:
        """The result (``H×W×3`` float32) of one method and its :class:`brushwork.evaluate.Cost`."""
        from brushwork import evaluate, io

        if method == REFERENCE:
            rgb = io.resize_to_max(io.load_image(photo).rgb, self.max_size)
            return rgb, evaluate.Cost(math.nan, math.nan, math.nan)
        opts = self.call_options(method, extra)
        key = (method, str(photo) if self.warm_full else None)
        if key not in self.warmed and method != "optimize":  # loading networks is not the method's time
            if self.warm_full:
                for _ in range(2):
                    api_stylize(photo, [style], method, **opts)
            else:
                small = io.resize_to_max(io.load_image(photo).rgb, 64)
                api_stylize(small, [style], method, **{**opts, "max_size": 64})
            self.warmed.add(key)
        image, cost = evaluate.measure(lambda: api_stylize(photo, [style], method, **opts))
        return _to_rgb(image), cost


def _label(method: str, cost: Any, metrics: dict[str, float]) -> str:
    time_text = "reference" if method == REFERENCE else f"{cost.seconds:.2f} s"
    return (
        f"{method}  {time_text}\n"
        f"SSIM {metrics['ssim']:.2f}  edges {metrics['edges']:.2f}\n"
        f"style {metrics['mean_std']:.2f}  code {metrics['style_code']:.2f}\n"
        f"colour dist. {metrics['color_style']:.2f}"
    )


def _progress(total: int, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="run", disable=quiet or None, file=sys.stderr, leave=False)


def _evaluator(args: argparse.Namespace) -> Any:
    return make_evaluator(args.device, args.metric_size)


def make_evaluator(device: str, metric_size: int) -> Any:
    from brushwork import evaluate
    from brushwork.methods.fast import resolve_device

    return evaluate.Evaluator(size=metric_size, device=resolve_device(device) if device != "mps" else "cpu")


def _prepare_output(path: str | None, protect: Sequence[Path]) -> Path | None:
    from brushwork import io

    return None if path is None else io.check_writable(path, protect)


def _check_tile(tile: int) -> None:
    if tile > MAX_TILE:
        raise InputError(f"--tile must be at most {MAX_TILE}, got {tile}")


def _output_folder(text: str, flag: str) -> Path:
    """The folder eval or tune writes, checked and not created (:func:`brushwork.io.check_output_folder`): an
    empty name (which would write into the current folder), a file, a missing parent folder or one that is not
    writable are one-line errors before any work."""
    from brushwork import io

    return io.check_output_folder(text)  # (an empty name is refused by the command line before this)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop (refused by check_output_folder already)
        return Path(os.path.abspath(path))


def _check_report_folder(out: Path, inputs: Sequence[tuple[str, Path]]) -> None:
    """OutputError unless the report folder of eval keeps clear of every input folder: not one of them, not
    inside one (a later run would find the report among its inputs, and scatter.png could replace a photo), and
    no input folder among the report's own folders (``sheets/``, ``outputs/``), whose files a re-run replaces."""
    from brushwork import io

    target = _resolved(out)
    own = [target / "sheets", target / "outputs"]
    for flag, folder in inputs:
        where = _resolved(folder)
        if where == target or io.same_file(out, folder):
            raise OutputError(f"--out {out} is the {flag} folder; give a folder of its own for the report")
        if target.is_relative_to(where):
            raise OutputError(f"--out {out} is inside the {flag} folder {folder}; give a folder of its own for the "
                              "report")  # fmt: skip
        if any(where.is_relative_to(o) for o in own):
            raise OutputError(f"--out {out} holds the {flag} folder {folder} among the report's own files "
                              "(sheets/, outputs/); give a folder of its own for the report")  # fmt: skip


def _check_files(out: Path, names: Sequence[str], protect: Sequence[Path] = ()) -> None:
    """Each ``out/NAME`` checked as an output before any work (name length; where ``out`` exists, also not a
    folder, writable and not one of the ``protect``-ed input files)."""
    from brushwork import io

    for name in names:
        dest = out / name
        if dest.parent.is_dir():
            io.check_output_path(dest, protect)
        else:
            io.check_name_length(dest)


def _check_subfolder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write into {folder}: it is a file")


class _Folders:
    """The folders a run creates; :meth:`removed_on_failure` removes them again (with what the run wrote into
    them) when the run fails, and never touches a folder that existed before."""

    def __init__(self) -> None:
        self.made: list[Path] = []

    def make(self, folder: Path) -> Path:
        missing = []
        for p in [folder, *folder.parents]:
            if p.is_dir():
                break
            missing.append(p)
        for p in reversed(missing):
            try:
                p.mkdir()
            except FileExistsError:
                if not p.is_dir():
                    raise OutputError(f"cannot write into {p}: it is a file") from None
                continue  # made by someone else meanwhile: not ours to remove
            except OSError as exc:
                raise OutputError(f"cannot create the folder {p}: {exc.strerror or exc}") from None
            self.made.append(p)
        return folder

    @contextmanager
    def removed_on_failure(self) -> Iterator[_Folders]:
        try:
            yield self
        except (BrushworkError, OSError):
            for p in self.made:
                if not any(q in self.made for q in p.parents):  # the outermost: its sub-folders go with it
                    shutil.rmtree(p, ignore_errors=True)
            raise


def _check_measurable(
    photos: Sequence[Path], styles: Sequence[Path], max_sizes: Sequence[int | None], max_size: int, metric_size: int
) -> None:
    """One-line InputError, before any work, for a photo that a method's max size makes too thin to stylize, and
    for a photo or style too small to measure at ``metric_size`` (after ``max_size``, as the metrics see it)."""
    from brushwork import evaluate, io
    from brushwork.options import MIN_SIDE

    checker = evaluate.Evaluator(size=metric_size)
    for photo in photos:
        size = io.image_size(photo)
        if size is None:  # unreadable: loading it will say why
            continue
        for bound in dict.fromkeys(max_sizes):
            io.check_bounded_size(size, io.bounded_size(size, bound), photo, bound, MIN_SIDE)
        checker.check_size(io.bounded_size(size, max_size), photo)
    for style in styles:
        size = io.image_size(style)
        if size is not None:
            checker.check_size(io.bounded_size(size, max_size), style)


# --------------------------------------------------------------------------------------------- compare


def run_compare(args: argparse.Namespace) -> int:
    from brushwork import draw, io

    photo = _image_file(args.photo, "photo")
    styles = [_image_file(s, "style image") for s in args.styles]
    methods = parse_methods(args.methods)
    options = parse_sets(args.set, methods)
    for m in methods:
        if m != REFERENCE:
            check_options(m, options[m])
    if args.output is None and not args.json:
        raise InputError("give -o SHEET to write the sheet, or --json for the numbers")
    output = _prepare_output(args.output, [photo, *styles])
    _check_tile(args.tile)
    max_sizes = [options[m].get("max_size", args.max_size) for m in methods if m != REFERENCE]
    _check_measurable([photo], styles, max_sizes, args.max_size, args.metric_size)
    runner = Runner(options, args.max_size, args.device, warm_full=True)
    evaluator = _evaluator(args)
    photo_rgb = io.resize_to_max(io.load_image(photo).rgb, args.max_size)
    records: list[dict[str, Any]] = []
    rows = []
    bar = _progress(len(styles) * len(methods), "compare", args.quiet)
    for style in styles:
        style_rgb = io.resize_to_max(io.load_image(style).rgb, args.max_size)
        results = []
        for m in methods:
            bar.set_postfix_str(f"{m} × {style.name}")
            rgb, cost = runner.run(m, photo, style)
            metrics = evaluator(rgb, photo_rgb, style_rgb)
            label = _label(m, cost, metrics)
            results.append((rgb, label))
            records.append({**_record(m, photo, style, rgb, cost, metrics, runner.call_options(m)), "label": label})
            bar.update()
        rows.append((style_rgb, f"style: {style.name}", results))
    bar.close()
    if output is not None:
        sheet = draw.compare_sheet(photo_rgb, rows, tile=args.tile, photo_label=f"photo: {photo.name}")
        io.save_image(sheet, output, quality=90, protect=[photo, *styles])
    if args.json:
        emit_json({"photo": str(photo), "sheet": str(output) if output else None, "results": records})
    else:
        _print_table(records)
        if output is not None:
            print(f"wrote {output}")
    return 0


def _record(method: str, photo: Path, style: Path, rgb: Any, cost: Any, metrics: dict, options: dict) -> dict:
    return {
        "method": method,
        "photo": str(photo),
        "style": str(style),
        "width": int(rgb.shape[1]),
        "height": int(rgb.shape[0]),
        "seconds": _round(cost.seconds),
        "memory_mb": _round(cost.delta_mb, 1),
        "gpu_mb": _round(cost.gpu_peak_mb, 1) if cost.gpu_peak_mb is not None else None,
        "metrics": {k: _round(v) for k, v in metrics.items()},
        "options": {k: v for k, v in options.items() if k != "device"} if method != REFERENCE else {},
    }


def _round(value: float, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _print_table(records: Sequence[dict]) -> None:
    from brushwork.evaluate import METRICS

    names = list(METRICS)
    print("method      style                seconds  " + "  ".join(f"{n:>11}" for n in names))
    for r in records:
        secs = "-" if r["seconds"] is None or r["method"] == REFERENCE else f"{r['seconds']:.2f}"
        cells = "  ".join(f"{r['metrics'][n]:11.3f}" for n in names)
        print(f"{r['method']:<11} {Path(r['style']).name[:20]:<20} {secs:>7}  {cells}")


# --------------------------------------------------------------------------------------------- eval


CSV_FIELDS = ["method", "photo", "style", "output", "width", "height", "seconds", "memory_mb"]


def spread_pairs(n_contents: int, n_styles: int, limit: int | None) -> list[tuple[int, int]]:
    """All (content, style) index pairs, or ``limit`` of them spread evenly (every content and style early)."""
    every = [(c, (c + k) % n_styles) for k in range(n_styles) for c in range(n_contents)]  # diagonals first
    if limit is None or limit >= len(every):
        return sorted(every)
    return sorted(every[:limit])


def _result_names(pairs: Sequence[tuple[Path, Path]]) -> Callable[[Path, Path], str]:
    """The file name of each result in the report: ``PHOTO__STYLE.jpg`` from their stems, or ``stem_ext`` for
    photos (styles) that share a stem (``a.png``, ``a.jpg``), so that no result replaces another."""
    from brushwork import io

    photos = io.unique_names(p for p, _ in pairs)
    styles = io.unique_names(s for _, s in pairs)
    return lambda photo, style: f"{photos[photo]}__{styles[style]}.jpg"


def _external_result(folder: Path, photo: Path, style: Path) -> Path | None:
    from brushwork.io import IMAGE_EXTENSIONS

    for ext in sorted(IMAGE_EXTENSIONS):
        candidate = folder / f"{photo.stem}__{style.stem}{ext}"
        if candidate.is_file():
            return candidate
    return None


def _results_name(item: str, name: str) -> None:
    """A --results NAME is a folder name of the report (outputs/NAME/): a plain name, never a path."""
    seps = {"/", os.sep, os.altsep} - {None}
    if name in (".", "..") or any(c in name for c in seps) or "\0" in name:
        raise InputError(f"--results {item!r}: the name {name!r} must be a plain name (no / and not . or ..)")


def run_eval(args: argparse.Namespace) -> int:
    from brushwork import io
    from brushwork.options import MIN_SIDE

    out = _output_folder(args.out, "--out")
    _check_tile(args.tile)
    contents, styles = (
        io.usable_images(io.list_images(folder), min_side=MIN_SIDE, where=folder)[0]
        for folder in (args.content, args.styles)
    )  # every file checked once, before any work: unusable ones are named in one warning each
    methods = parse_methods(args.methods)
    externals: dict[str, Path] = {}
    for item in args.results:
        name, sep, folder = item.partition("=")
        if not sep or not name or not Path(folder).is_dir():
            raise InputError(f"--results {item!r}: use NAME=DIR with an existing folder")
        _results_name(item, name)
        if name in methods or name in externals:
            raise InputError(f"--results {item!r}: the name {name!r} is already used")
        externals[name] = Path(folder)
    options = parse_sets(args.set, methods)
    for m in methods:
        if m != REFERENCE:
            check_options(m, options[m])
    inputs = [("--content", Path(args.content)), ("--styles", Path(args.styles))]
    _check_report_folder(out, inputs + [("--results", folder) for folder in externals.values()])
    pairs = [(contents[c], styles[s]) for c, s in spread_pairs(len(contents), len(styles), args.limit)]
    names = [*methods, *externals]
    max_sizes = [options[m].get("max_size", args.max_size) for m in methods if m != REFERENCE]
    used_photos, used_styles = (list(dict.fromkeys(p[k] for p in pairs)) for k in (0, 1))
    _check_measurable(used_photos, used_styles, max_sizes, args.max_size, args.metric_size)
    _check_report_outputs(out, pairs, names)
    cluster = ray_settings(args) if getattr(args, "ray", None) else None  # Ray missing: one line, before any work
    folders = _Folders()
    with folders.removed_on_failure():
        folders.make(out / "sheets")
        return _eval(args, out, folders, pairs, methods, externals, options, cluster)


def _check_report_outputs(out: Path, pairs: Sequence[tuple[Path, Path]], names: Sequence[str]) -> None:
    """Every file eval writes into ``out``, checked before any work: names the file system takes, and no folder
    (or file) where a file (or folder) goes."""
    from brushwork import io

    result_name = _result_names(pairs)
    _check_files(out, REPORT_FILES)
    for sub in ("sheets", "outputs"):
        _check_subfolder(out / sub)
    _check_files(out, [f"sheets/sheet-{k // SHEET_ROWS + 1:02d}.jpg" for k in range(0, len(pairs), SHEET_ROWS)])
    for m in names:
        folder = out / "outputs" / m
        _check_subfolder(folder)
        exists = folder.is_dir()
        for photo, style in pairs:
            dest = folder / result_name(photo, style)
            for path in (dest, dest.with_suffix(".json")):
                io.check_name_length(path)
                if exists and path.is_dir():
                    raise OutputError(f"cannot write {path}: it is a folder")


def _eval(
    args: argparse.Namespace,
    out: Path,
    folders: _Folders,
    pairs: Sequence[tuple[Path, Path]],
    methods: Sequence[str],
    externals: dict[str, Path],
    options: dict[str, dict[str, Any]],
    cluster: Any,
) -> int:
    """The work of ``brushwork eval``, once everything is checked and ``out`` exists."""
    from brushwork import io

    runner = Runner(options, args.max_size, args.device)
    evaluator = _evaluator(args) if cluster is None else None
    signature = {"max_size": args.max_size, "metric_size": args.metric_size}
    rows: list[dict[str, Any] | None] = []
    reused = 0
    names = [*methods, *externals]
    bar = _progress(len(pairs) * len(names), "eval", args.quiet)
    images: dict[tuple[str, str, str], Path] = {}
    loaded: dict[Path, Any] = {}
    result_name = _result_names(pairs)
    todo: list[tuple[int, str, Path, Path]] = []  # (row, method, photo, style) for the cluster

    def load(p: Path) -> Any:  # photos and styles read once, kept for the evaluator's caches
        if p not in loaded:
            loaded[p] = io.resize_to_max(io.load_image(p).rgb, args.max_size)
        return loaded[p]

    def finish(m: str, photo: Path, style: Path, rgb: Any, cost: Any, metrics: dict[str, float]) -> dict[str, Any]:
        dest = out / "outputs" / m / result_name(photo, style)
        folders.make(dest.parent)
        io.save_image(rgb, dest, quality=92, protect=[photo, style])
        row = {
            "method": m,
            "photo": photo.name,
            "style": style.name,
            "output": str(dest.relative_to(out)),
            "width": int(rgb.shape[1]),
            "height": int(rgb.shape[0]),
            "seconds": _round(cost.seconds),
            "memory_mb": _round(cost.delta_mb, 1),
            **{k: _round(v) for k, v in metrics.items()},
        }
        sig = {**signature, "options": runner.call_options(m) if m in methods else {"results": str(externals[m])}}
        io.write_atomic(dest.with_suffix(".json"), json.dumps({"signature": sig, "row": row}, indent=1).encode())
        return row

    for photo, style in pairs:
        for m in names:
            bar.set_postfix_str(f"{m}: {photo.name} × {style.name}")
            dest = out / "outputs" / m / result_name(photo, style)
            sig = {**signature, "options": runner.call_options(m) if m in methods else {"results": str(externals[m])}}
            row = _reuse(dest, dest.with_suffix(".json"), sig)
            if row is not None:
                reused += 1
            elif m in externals:
                found = _external_result(externals[m], photo, style)
                if found is None:
                    bar.update()
                    continue
                from brushwork import evaluate

                rgb, cost = io.load_image(found).rgb, evaluate.Cost(math.nan, math.nan, math.nan)
                if evaluator is None:
                    evaluator = _evaluator(args)
                row = finish(m, photo, style, rgb, cost, evaluator(rgb, load(photo), load(style)))
            elif cluster is not None:
                todo.append((len(rows), m, photo, style))
                rows.append(None)
                continue
            else:
                rgb, cost = runner.run(m, photo, style)
                row = finish(m, photo, style, rgb, cost, evaluator(rgb, load(photo), load(style)))
            rows.append(row)
            images[(m, photo.name, style.name)] = out / row["output"]
            bar.update()
    if todo:
        from brushwork import cluster as ray_cluster

        def done(task: tuple[int, str, Path, Path], rgb: Any, cost: Any, metrics: dict[str, float]) -> None:
            k, m, photo, style = task
            rows[k] = row = finish(m, photo, style, rgb, cost, metrics)
            images[(m, photo.name, style.name)] = out / row["output"]
            bar.set_postfix_str(f"{m}: {photo.name} × {style.name}")
            bar.update()

        ray_cluster.evaluate_pairs(todo, options, args.max_size, args.device, args.metric_size, cluster, done)
    bar.close()
    rows = [row for row in rows if row is not None]
    if not rows:
        raise InputError("nothing was evaluated: no pair had a result")
    written = write_report(out, rows, pairs, names, images, tile=args.tile)
    print(f"evaluated {len(pairs)} pairs × {len(names)} methods ({reused} reused) → {written['report']}")
    return 0


def _reuse(dest: Path, sidecar: Path, signature: dict) -> dict | None:
    """The stored row of a finished output made with the same settings, else None."""
    if not (dest.is_file() and sidecar.is_file()):
        return None
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if json.loads(json.dumps(signature)) != data.get("signature"):
        return None
    return data.get("row")


def summarize(rows: Sequence[dict], names: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per method, per metric (and seconds, memory_mb): mean, median, std and n."""
    from brushwork.evaluate import COST_COLUMNS, METRICS, describe

    columns = [*METRICS, *COST_COLUMNS]
    return {
        m: {c: describe(r.get(c) for r in rows if r["method"] == m and r.get(c) is not None) for c in columns}
        for m in names
    }


def _num(x: float) -> str:
    """A table number: 3 significant digits, no exponent for the sizes metrics take."""
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if a >= 0.001 or a == 0 else f"{x:.1e}"


def markdown_summary(summary: dict, n_pairs: int) -> str:
    from brushwork.evaluate import COST_COLUMNS, COST_NOTES, METRICS

    names = list(summary)
    lines = [
        f"# brushwork eval: {n_pairs} pairs",
        "",
        "Each cell: mean ± standard deviation (median). ↑ higher is better, ↓ lower is better.",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    notes = {**METRICS, **COST_NOTES}
    for c in [*METRICS, *COST_COLUMNS]:
        arrow = "↑" if notes[c][0] == "higher" else "↓"
        cells = []
        for m in names:
            d = summary[m][c]
            cells.append("–" if d["n"] == 0 else f"{_num(d['mean'])} ± {_num(d['std'])} ({_num(d['median'])})")
        lines.append(f"| {c} {arrow} | " + " | ".join(cells) + " |")
    lines += ["", "Metrics:", ""]
    lines += [f"- **{c}** ({notes[c][1]}): {notes[c][2]}" for c in [*METRICS, *COST_COLUMNS]]
    return "\n".join(lines) + "\n"


def write_report(
    out: Path,
    rows: Sequence[dict],
    pairs: Sequence[tuple[Path, Path]],
    names: Sequence[str],
    images: dict[tuple[str, str, str], Path],
    *,
    tile: int = 192,
) -> dict[str, Path]:
    """results.csv, summary.md, scatter.png, sheets/sheet-NN.jpg and report.html in ``out``."""
    from brushwork import draw, io
    from brushwork.evaluate import METRICS

    written: dict[str, Path] = {}
    fields = CSV_FIELDS + list(METRICS)
    buf = _stdio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    written["csv"] = io.write_atomic(out / "results.csv", buf.getvalue().encode())
    summary = summarize(rows, names)
    written["summary"] = io.write_atomic(out / "summary.md", markdown_summary(summary, len(pairs)).encode())
    plot = draw.scatter_plot(
        rows,
        "ssim",
        "mean_std",
        x_label="content preservation: SSIM to the photo (→ more kept)",
        y_label="style distance: mean/std in MobileNetV2 features (↓ closer)",
        title=f"{len(pairs)} pairs",
    )
    written["scatter"] = io.save_image(plot, out / "scatter.png")
    sheets = []
    for k in range(0, len(pairs), SHEET_ROWS):
        sheet_rows = []
        for photo, style in pairs[k : k + SHEET_ROWS]:
            results = []
            for m in names:
                path = images.get((m, photo.name, style.name))
                rgb = io.load_image(path).rgb if path is not None else _blank()
                results.append((rgb, m))
            sheet_rows.append((io.load_image(style).rgb, style.name[:30], results, io.load_image(photo).rgb))
        sheets.append(
            io.save_image(
                _pairs_sheet(sheet_rows, tile), out / "sheets" / f"sheet-{k // SHEET_ROWS + 1:02d}.jpg", quality=88
            )
        )
    written["report"] = io.write_atomic(out / "report.html", _html(summary, len(pairs), sheets, out).encode())
    return written


def _blank() -> Any:
    import numpy as np

    return np.ones((64, 64, 3), np.float32)


def _pairs_sheet(rows: Sequence[tuple[Any, str, list, Any]], tile: int) -> Any:
    from brushwork import draw

    images, labels = [], []
    for style, style_label, results, photo in rows:
        images += [photo, style] + [im for im, _ in results]
        labels += ["photo", style_label] + [t for _, t in results]
    return draw.labelled_grid(images, labels, columns=2 + len(rows[0][2]), tile=tile)


def _html(summary: dict, n_pairs: int, sheets: Sequence[Path], out: Path) -> str:
    from brushwork.evaluate import COST_COLUMNS, COST_NOTES, METRICS

    names = list(summary)
    notes = {**METRICS, **COST_NOTES}
    head = "".join(f"<th>{html.escape(m)}</th>" for m in names)
    body = []
    for c in [*METRICS, *COST_COLUMNS]:
        arrow = "↑" if notes[c][0] == "higher" else "↓"
        cells = []
        for m in names:
            d = summary[m][c]
            text = (
                "–" if d["n"] == 0 else f"{d['mean']:.3g} ± {d['std']:.2g}<br><small>median {d['median']:.3g}</small>"
            )
            cells.append(f"<td>{text}</td>")
        title = html.escape(f"{notes[c][2]} ({notes[c][1]})")
        body.append(f'<tr><th title="{title}">{html.escape(c)} {arrow}</th>{"".join(cells)}</tr>')
    imgs = "\n".join(f'<p><img src="{html.escape(str(p.relative_to(out)))}" alt="contact sheet"></p>' for p in sheets)
    defs = "\n".join(f"<li><b>{html.escape(c)}</b> ({html.escape(notes[c][1])}): {html.escape(notes[c][2])}</li>"
                     for c in [*METRICS, *COST_COLUMNS])  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>brushwork eval: {n_pairs} pairs</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style></head>
<body>
<h1>brushwork eval: {n_pairs} pairs</h1>
<p>Each cell: mean ± standard deviation, and the median. ↑ higher is better, ↓ lower is better.
Every row of every method: <a href="results.csv">results.csv</a>;
summary as Markdown: <a href="summary.md">summary.md</a>.</p>
<table><tr><th>metric</th>{head}</tr>
{"".join(body)}
</table>
<h2>Content preservation against style distance</h2>
<p><img src="scatter.png" alt="scatter plot of style distance against SSIM per method"></p>
<h2>Contact sheets</h2>
{imgs}
<h2>Metrics</h2>
<ul>{defs}</ul>
</body></html>
"""


# --------------------------------------------------------------------------------------------- tune


def default_grid(method: str, iterations: int | None = None) -> dict[str, list[Any]]:
    """The settings ``tune`` tries per method: strength and stroke scale for the feed-forward methods; the style
    weight (against content weight 1) and the iteration count for optimize."""
    if method == "optimize":
        n = iterations or 80
        return {"style_weight": [1e3, 1e4, 1e5], "iterations": [max(1, n // 2), n]}
    return {"strength": [0.25, 0.5, 0.75, 1.0], "stroke_scale": [0.5, 1.0, 2.0]}


def parse_grid(spec: str) -> dict[str, list[Any]]:
    """``'strength=0.5,1;stroke_scale=1,2'`` → ``{"strength": [0.5, 1], "stroke_scale": [1, 2]}``."""
    grid: dict[str, list[Any]] = {}
    for part in spec.split(";"):
        if not part.strip():
            continue
        key, sep, values = part.partition("=")
        parsed = [parse_value(v) for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not parsed:
            raise InputError(f"--grid {spec!r}: use OPTION=V1,V2;OPTION=V1,V2")
        grid[key.strip().replace("-", "_")] = parsed
    if not grid:
        raise InputError(f"--grid {spec!r}: no setting to try")
    return grid


def command_line(photo: Path, style: Path, method: str, settings: dict[str, Any], max_size: int) -> str:
    """The ``brushwork stylize`` command that reproduces one setting."""
    import shlex

    parts = ["brushwork", "stylize", str(photo), str(style), "--method", method, "-o", "result.png"]
    parts += ["--max-size", str(max_size)]
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif isinstance(value, tuple):  # several values (style weights, decoders, layers): one argument each
            parts += [flag, *(_fmt(v) for v in value)]
        else:
            parts += [flag, _fmt(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def run_tune(args: argparse.Namespace) -> int:
    photo = _image_file(args.photo, "photo")
    style = _image_file(args.style, "style image")
    method = parse_methods(args.method, allow_reference=False)[0]
    options = parse_sets(args.set, [method])
    grid = parse_grid(args.grid) if args.grid else default_grid(method, options[method].get("iterations"))
    settings = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    for setting in settings:
        check_options(method, {**options[method], **setting})
    out = _output_folder(args.out, "-o")
    _check_files(out, TUNE_FILES, [photo, style])
    max_sizes = [{**options[method], **s}.get("max_size", args.max_size) for s in settings]
    _check_measurable([photo], [style], max_sizes, args.max_size, args.metric_size)
    folders = _Folders()
    with folders.removed_on_failure():
        folders.make(out)
        return _tune(args, out, photo, style, method, options, grid, settings)


def _tune(
    args: argparse.Namespace,
    out: Path,
    photo: Path,
    style: Path,
    method: str,
    options: dict[str, dict[str, Any]],
    grid: dict[str, list[Any]],
    settings: Sequence[dict[str, Any]],
) -> int:
    """The work of ``brushwork tune``, once everything is checked and ``out`` exists."""
    from brushwork import draw, evaluate, io

    runner = Runner(options, args.max_size, args.device, warm_full=True)
    evaluator = _evaluator(args)
    photo_rgb = io.resize_to_max(io.load_image(photo).rgb, args.max_size)
    style_rgb = io.resize_to_max(io.load_image(style).rgb, args.max_size)
    records, results = [], []
    bar = _progress(len(settings), f"tune {method}", args.quiet)
    for s in settings:
        bar.set_postfix_str(", ".join(f"{k}={_fmt(v)}" for k, v in s.items()))
        rgb, cost = runner.run(method, photo, style, s)
        metrics = evaluator(rgb, photo_rgb, style_rgb)
        results.append(rgb)
        records.append({"settings": s, "seconds": _round(cost.seconds), **{k: _round(v) for k, v in metrics.items()}})
        bar.update()
    bar.close()
    points = [(r[CONTENT_METRIC], -r[args.style_metric]) for r in records]
    front = evaluate.pareto_front(points)
    chosen = evaluate.recommend(points, args.target)
    for i, r in enumerate(records):
        r["pareto"] = i in front
        r["recommended"] = i == chosen
    best = {**options[method], **records[chosen]["settings"]}
    command = command_line(photo, style, method, best, args.max_size)

    def short(s: dict) -> str:
        return " ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in s.items())

    plot = draw.pareto_plot(
        [(a, -b) for a, b in points],
        front,
        labels=[short(r["settings"]) for r in records],
        thumbnails=[evaluate.fit(im, 160) for im in results],
        chosen=chosen,
        x_label="content preservation: SSIM to the photo (→ more kept)",
        y_label=f"style distance: {args.style_metric} (↓ closer to the style)",
        title=f"tune {method} on {photo.name} × {style.name} (target: {args.target})",
    )
    paths = {
        "plot": io.save_image(plot, out / "pareto.png", protect=[photo, style]),
        "recommended": io.save_image(results[chosen], out / "recommended.png", protect=[photo, style]),
    }
    buf = _stdio.StringIO()
    keys = list(grid)
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*keys, "seconds", *evaluate.METRICS, "pareto", "recommended"])
    for r in records:
        writer.writerow([_fmt(r["settings"][k]) for k in keys] + [r["seconds"]]
                        + [r[m] for m in evaluate.METRICS] + [int(r["pareto"]), int(r["recommended"])])  # fmt: skip
    paths["csv"] = io.write_atomic(out / "tune.csv", buf.getvalue().encode())
    if args.json:
        emit_json(
            {
                "method": method,
                "target": args.target,
                "style_metric": args.style_metric,
                "settings": records,
                "recommended": records[chosen]["settings"],
                "command": command,
                "files": {k: str(v) for k, v in paths.items()},
            }
        )
        return 0
    print(f"{'setting':<36} {'SSIM':>6} {args.style_metric:>10}  front")
    for i in sorted(range(len(records)), key=lambda i: points[i][0]):
        r = records[i]
        mark = "★" if i == chosen else ("•" if r["pareto"] else "")
        print(f"{short(r['settings']):<36} {r[CONTENT_METRIC]:6.3f} {r[args.style_metric]:10.3f}  {mark}")
    print(f"recommended ({args.target}): {short(records[chosen]['settings'])}")
    print(f"reproduce: {command}")
    print(f"wrote {paths['plot']}, {paths['recommended']}, {paths['csv']}")
    return 0
