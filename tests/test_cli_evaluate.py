"""brushwork compare / eval / tune: files written and parsed, labels matching the methods, one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork import io
from brushwork.cli import main
from brushwork.samples import SAMPLE_PHOTOS, STYLES

SIZE = "80"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small photos and two small styles, made from the samples that ship with brushwork."""
    root = tmp_path_factory.mktemp("eval_inputs")
    content, styles = root / "content", root / "styles"
    content.mkdir()
    styles.mkdir()
    for p in SAMPLE_PHOTOS:
        io.save_image(io.resize_to_max(io.load_image(p).rgb, 96), content / f"{p.stem}.png")
    for name in ("swirls", "dots"):
        io.save_image(io.resize_to_max(io.load_image(STYLES[name]).rgb, 96), styles / f"{name}.png")
    return content, styles


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("brushwork: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_compare_labels_match_the_methods_run(tmp_path: Path, folders, capsys) -> None:
    content, styles = folders
    photo, style_files = content / "sample_photo.png", sorted(styles.iterdir())
    sheet = tmp_path / "sheet.jpg"
    args = ["compare", str(photo), *map(str, style_files), "--methods", "photo,fast,adain", "--max-size", SIZE]
    code = main([*args, "-o", str(sheet), "--json", "-q", "--metric-size", SIZE])
    out = capsys.readouterr().out
    assert code == 0
    record = json.loads(out)
    methods = [r["method"] for r in record["results"]]
    assert methods == ["photo", "fast", "adain"] * 2
    for r in record["results"]:
        assert r["label"].split()[0] == r["method"]
        assert set(r["metrics"]) >= {"ssim", "edges", "mean_std", "style_code", "color_style"}
        assert max(r["width"], r["height"]) == int(SIZE)
    assert record["results"][0]["metrics"]["ssim"] == pytest.approx(1.0, abs=1e-3)  # the photo itself
    assert [r["style"] for r in record["results"]] == [str(s) for s in style_files for _ in range(3)]
    w, h = Image.open(sheet).size
    assert w > h > 0  # two rows of five tiles (photo, style, three methods)


def test_compare_errors_are_one_line(tmp_path: Path, folders, capsys) -> None:
    content, styles = folders
    photo, style = str(content / "sample_photo.png"), str(styles / "dots.png")
    out = str(tmp_path / "s.jpg")
    err = _one_line_error(capsys, main(["compare", photo, style, "--methods", "fast,nosuch", "-o", out]))
    assert "nosuch" in err and "available" in err
    _one_line_error(capsys, main(["compare", str(tmp_path / "missing.jpg"), style, "-o", out]))
    _one_line_error(capsys, main(["compare", photo, style, "--methods", "fast", "-o", str(tmp_path / "s.xyz")]))
    _one_line_error(capsys, main(["compare", photo, style, "--methods", "fast"]))  # neither -o nor --json
    _one_line_error(capsys, main(["compare", photo, style, "--methods", "fast", "--set", "strength", "--json"]))
    _one_line_error(capsys, main(["compare", photo, style, "--methods", "fast", "--set", "wct.strength=1", "--json"]))
    fast = ["compare", photo, style, "--methods", "fast", "--json"]
    err = _one_line_error(capsys, main([*fast, "--set", "iterations=3"]))
    assert "iterations" in err  # an option the method does not take
    _one_line_error(capsys, main([*fast, "--set", "strength=2"]))
    assert not list(tmp_path.iterdir())


def test_eval_writes_a_report_and_reuses_outputs(tmp_path: Path, folders, capsys) -> None:
    content, styles = folders
    report = tmp_path / "report"
    args = ["eval", "--content", str(content), "--styles", str(styles), "--out", str(report)]
    args += ["--methods", "photo,fast", "--limit", "3", "--max-size", SIZE, "--metric-size", SIZE, "-q"]
    assert main(args) == 0
    capsys.readouterr()
    with open(report / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["method"] for r in rows} == {"photo", "fast"}
    assert len({(r["photo"], r["style"]) for r in rows}) == 3
    assert {r["photo"] for r in rows} == {"astronaut.png", "sample_photo.png"}  # spread over both photos
    for r in rows:
        assert (report / r["output"]).is_file()
        assert -1 <= float(r["ssim"]) <= 1 and float(r["mean_std"]) >= 0
    fast = [r for r in rows if r["method"] == "fast"]
    photo = [r for r in rows if r["method"] == "photo"]
    assert np.mean([float(r["mean_std"]) for r in fast]) < np.mean([float(r["mean_std"]) for r in photo])
    summary = (report / "summary.md").read_text()
    assert "| ssim ↑ |" in summary and "| photo | fast |" in summary
    page = (report / "report.html").read_text()
    assert page.startswith("<!doctype html>") and 'src="scatter.png"' in page and "sheets/sheet-01.jpg" in page
    assert Image.open(report / "scatter.png").size[0] > 300
    assert Image.open(report / "sheets" / "sheet-01.jpg").size[0] > 0
    stamp = (report / rows[1]["output"]).stat().st_mtime_ns
    assert main(args) == 0  # a re-run: everything reused
    assert "(6 reused)" in capsys.readouterr().out
    assert (report / rows[1]["output"]).stat().st_mtime_ns == stamp


def test_eval_reads_existing_results(tmp_path: Path, folders, capsys) -> None:
    content, styles = folders
    mine = tmp_path / "mine"
    mine.mkdir()
    grey = np.full((40, 60, 3), 0.5, np.float32)
    io.save_image(grey, mine / "sample_photo__dots.png")  # one pair only; the others are missing
    report = tmp_path / "r"
    args = ["eval", "--content", str(content), "--styles", str(styles), "--out", str(report), "-q"]
    assert main([*args, "--methods", "photo", "--results", f"grey={mine}", "--max-size", SIZE]) == 0
    with open(report / "results.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["method"] == "grey"]
    assert len(rows) == 1 and rows[0]["style"] == "dots.png" and rows[0]["seconds"] == ""
    assert float(rows[0]["ssim"]) < 0.5
    capsys.readouterr()
    _one_line_error(capsys, main([*args, "--methods", "photo", "--results", "grey"]))
    _one_line_error(capsys, main(["eval", "--content", str(tmp_path / "none"), "--styles", str(styles), "--out", "x"]))


def test_tune_returns_a_front_and_a_command(tmp_path: Path, folders, capsys) -> None:
    content, styles = folders
    photo, style = str(content / "sample_photo.png"), str(styles / "swirls.png")
    out = tmp_path / "tune"
    args = ["tune", photo, style, "--method", "fast", "--grid", "strength=0.2,0.6,1;stroke_scale=1,2"]
    assert main([*args, "-o", str(out), "--max-size", SIZE, "--metric-size", SIZE, "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    settings = record["settings"]
    assert len(settings) == 6
    assert sum(s["recommended"] for s in settings) == 1
    front = [s for s in settings if s["pareto"]]
    assert front and all(not s["recommended"] or s["pareto"] for s in settings)
    # stronger stylization keeps less of the photo and comes closer to the style (at a given stroke scale)
    by = {(s["settings"]["strength"], s["settings"]["stroke_scale"]): s for s in settings}
    assert by[(0.2, 1)]["ssim"] > by[(1, 1)]["ssim"] and by[(0.2, 1)]["mean_std"] > by[(1, 1)]["mean_std"]
    assert record["command"].startswith(f"brushwork stylize {photo} {style} --method fast")
    assert f"--strength {record['recommended']['strength']:g}" in record["command"]
    with open(out / "tune.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 6
    assert Image.open(out / "pareto.png").size[0] > 300 and (out / "recommended.png").is_file()


@pytest.mark.slow
def test_tune_optimize_tiny(tmp_path: Path, folders, capsys) -> None:
    content, styles = folders
    photo, style = str(content / "sample_photo.png"), str(styles / "dots.png")
    args = ["tune", photo, style, "--method", "optimize", "--grid", "style_weight=100,10000", "--set", "iterations=2"]
    assert main([*args, "-o", str(tmp_path / "t"), "--max-size", "48", "--metric-size", "48", "-q"]) == 0
    text = capsys.readouterr().out
    assert "reproduce: brushwork stylize" in text and "--method optimize" in text and "--iterations 2" in text


def test_tune_errors_are_one_line(tmp_path: Path, folders, capsys) -> None:
    content, styles = folders
    photo, style = str(content / "sample_photo.png"), str(styles / "dots.png")
    _one_line_error(capsys, main(["tune", photo, style, "--method", "nosuch", "-o", str(tmp_path / "t")]))
    _one_line_error(capsys, main(["tune", photo, style, "--grid", "strength", "-o", str(tmp_path / "t")]))
    _one_line_error(capsys, main(["tune", photo, style, "--method", "photo", "-o", str(tmp_path / "t")]))
    with pytest.raises(SystemExit) as exc:  # argparse's own one-line error
        main(["tune", photo, style, "--target", "prettiest"])
    assert exc.value.code == 2 and capsys.readouterr().err.count("\n") == 1


# ------------------------------------------------------------------ bad input: one line, nothing written


def _tree(root: Path, folders) -> Path:
    """A fixture tree of 64-px images: C/scatter.png (a photo named like eval's plot), S/dots.png (a style),
    D/pareto.png and D/recommended.png (styles named like tune's outputs), photo.png and style.png."""
    content, styles = folders
    photo = io.resize_to_max(io.load_image(content / "sample_photo.png").rgb, 64)
    style = io.resize_to_max(io.load_image(styles / "dots.png").rgb, 64)
    for sub in ("C", "S", "D"):
        (root / sub).mkdir()
    io.save_image(photo, root / "C" / "scatter.png")
    io.save_image(photo, root / "photo.png")
    for path in ("S/dots.png", "D/pareto.png", "D/recommended.png", "style.png"):
        io.save_image(style, root / path)
    return root


def _snapshot(root: Path) -> dict[str, tuple[bool, bytes]]:
    return {str(p.relative_to(root)): (p.is_dir(), b"" if p.is_dir() else p.read_bytes()) for p in root.rglob("*")}


def _refused(capsys, root: Path, argv: list[str], *words: str) -> str:
    """``argv`` exits with code 2 and one error line (naming ``words``), and leaves the tree as it was."""
    before = _snapshot(root)
    err = _one_line_error(capsys, main(argv))
    for word in words:
        assert word in err, err
    assert _snapshot(root) == before, err
    return err


FAST = ["--max-size", "64", "--metric-size", "64", "-q"]


def _eval(root: Path, out: str, *extra: str, content: str = "C", styles: str = "S") -> list[str]:
    args = ["eval", "--content", str(root / content), "--styles", str(root / styles), "--out", out]
    return [*args, "--methods", "fast", *FAST, *extra]


def _tune(root: Path, photo: str, style: str, out: str, *extra: str) -> list[str]:
    return ["tune", str(root / photo), str(root / style), "-o", out, "--grid", "strength=1", *FAST, *extra]


def test_eval_out_may_not_be_an_input_folder(tmp_path: Path, folders, capsys) -> None:
    root = _tree(tmp_path, folders)
    _refused(capsys, root, _eval(root, str(root / "C")), "is the --content folder")  # scatter.png is a photo
    _refused(capsys, root, _eval(root, str(root / "S")), "is the --styles folder")
    _refused(capsys, root, _eval(root, str(root / "C" / "report")), "inside the --content folder")
    _refused(capsys, root, _eval(root, str(root / "S" / ".." / "S" / "r")), "inside the --styles folder")
    (root / "r" / "sheets").mkdir(parents=True)  # a re-run would replace the photos in sheets/
    io.save_image(io.load_image(root / "photo.png").rgb, root / "r" / "sheets" / "sheet-01.jpg")
    _refused(capsys, root, _eval(root, str(root / "r"), content="r/sheets"), "report's own files")
    (root / "mine").mkdir()
    _refused(capsys, root, _eval(root, str(root / "mine"), "--results", f"mine={root / 'mine'}"), "--results")
    _refused(capsys, root, _eval(root, str(root / "r2"), "--results", f"../C={root / 'D'}"), "plain name")


def test_tune_never_overwrites_an_input(tmp_path: Path, folders, capsys) -> None:
    root = _tree(tmp_path, folders)
    out = str(root / "D")
    _refused(capsys, root, _tune(root, "photo.png", "D/pareto.png", out), "D/pareto.png", "input file")
    _refused(capsys, root, _tune(root, "D/recommended.png", "style.png", out), "D/recommended.png", "input file")
    _refused(capsys, root, _tune(root, "D/recommended.png", "D/pareto.png", out), "input file")


def test_eval_and_tune_check_sizes_before_making_folders(tmp_path: Path, folders, capsys) -> None:
    root = _tree(tmp_path, folders)
    r2 = str(root / "r2")
    _refused(capsys, root, _eval(root, r2, "--metric-size", "8"), "scatter.png", "metric size 8")
    _refused(capsys, root, _eval(root, r2, "--set", "max_size=16"), "scatter.png", "max size 16")
    t2 = str(root / "t2")
    _refused(capsys, root, _tune(root, "photo.png", "style.png", t2, "--metric-size", "10"), "metric size 10")
    _refused(capsys, root, [*_tune(root, "photo.png", "style.png", t2), "--grid", "max_size=16"], "max size 16")
    _refused(capsys, root, [*_tune(root, "photo.png", "style.png", t2), "--grid", "strength=9"], "strength")


def test_a_failed_run_removes_only_the_folders_it_made(tmp_path: Path, folders, capsys, monkeypatch) -> None:
    from brushwork.cli import evaluate as cli_evaluate
    from brushwork.errors import InputError

    def fail(*_: object, **__: object) -> None:
        raise InputError("the method failed")

    monkeypatch.setattr(cli_evaluate.Runner, "run", fail)
    root = _tree(tmp_path, folders)
    _refused(capsys, root, _eval(root, str(root / "r2")), "the method failed")  # r2/, r2/sheets/ removed
    _refused(capsys, root, _tune(root, "photo.png", "style.png", str(root / "t2")), "the method failed")
    (root / "r3").mkdir()  # made before: kept, while the sheets/ the run made in it goes
    (root / "t3").mkdir()
    _refused(capsys, root, _eval(root, str(root / "r3")), "the method failed")
    _refused(capsys, root, _tune(root, "photo.png", "style.png", str(root / "t3")), "the method failed")


def test_eval_and_tune_refuse_a_missing_parent_folder(tmp_path: Path, folders, capsys) -> None:
    root = _tree(tmp_path, folders)
    _refused(capsys, root, _eval(root, str(root / "nope" / "r2")), "folder", "nope", "does not exist")
    _refused(capsys, root, _tune(root, "photo.png", "style.png", str(root / "missing" / "t2")), "does not exist")


def test_eval_tile_is_bounded_as_in_compare(tmp_path: Path, folders, capsys) -> None:
    root = _tree(tmp_path, folders)
    _refused(capsys, root, _eval(root, str(root / "r2"), "--tile", "99999"), "--tile", "at most 1024")


def test_eval_and_tune_refuse_an_empty_output_name(tmp_path: Path, folders, capsys, monkeypatch) -> None:
    root = _tree(tmp_path, folders)
    monkeypatch.chdir(root)  # an empty name would write here
    _refused(capsys, root, _tune(root, "photo.png", "style.png", ""), "output name is empty")
    _refused(capsys, root, _eval(root, ""), "output name is empty")


def test_eval_keeps_results_of_photos_that_share_a_stem(tmp_path: Path) -> None:
    from PIL import Image

    content, styles = tmp_path / "content", tmp_path / "styles"
    content.mkdir()
    styles.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "a.jpg"):
        Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(content / name)
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(styles / "s.png")
    out = tmp_path / "report"
    argv = ["eval", "--content", str(content), "--styles", str(styles), "--out", str(out)]
    assert main([*argv, "--methods", "fast", "--max-size", "64", "--metric-size", "64", "-q"]) == 0
    assert sorted(p.name for p in (out / "outputs" / "fast").glob("*.jpg")) == ["a_jpg__s.jpg", "a_png__s.jpg"]
