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
