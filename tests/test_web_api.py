"""The studio's HTTP API through FastAPI's TestClient: uploads, jobs, progress, previews, latent styles, camera,
limits, hostile input and the token."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from brushwork import samples

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from brushwork.web import engine  # noqa: E402
from brushwork.web.app import JsonFormatter, Settings, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token-for-tests"


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(hosts=("testserver",), folder=tmp_path / "studio", **kw)


@pytest.fixture
def client(tmp_path: Path):
    with TestClient(create_app(_settings(tmp_path))) as c:
        yield c


def _png(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    rgb[:] = colour
    rgb[::4] = 255 - np.array(colour, np.uint8)  # some structure for the style predictor
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` (no pixel data to speak of): a decompression bomb's face."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _upload(client: TestClient, data: bytes | None = None) -> str:
    r = client.post("/api/uploads", content=data or samples.SAMPLE_PHOTO.read_bytes())
    assert r.status_code == 201, r.text
    return r.json()["ref"]


def _events(client: TestClient, job_id: str, **kw: Any) -> list[dict[str, Any]]:
    out = []
    with client.stream("GET", f"/api/jobs/{job_id}/events", **kw) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


def _wait(client: TestClient, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["state"] in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


# ---------------------------------------------------------------- a controllable method for queue tests


@dataclass(frozen=True)
class FakeProgress:
    stage: str
    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    preview: np.ndarray | None = None
    elapsed: float = 0.0
    message: str = ""


class Gate:
    """A stand-in for engine.stylize that emits progress steps, each after a permit (``step``) or once ``release``
    is set."""

    def __init__(self, steps: int = 5) -> None:
        self.steps = steps
        self.release = threading.Event()
        self.permits = threading.Semaphore(0)
        self.started = threading.Semaphore(0)
        self.calls = 0

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.permits.release()

    def _wait(self) -> None:
        deadline = time.monotonic() + 10
        while not self.release.is_set() and not self.permits.acquire(timeout=0.02):
            if time.monotonic() > deadline:
                raise AssertionError("gate never released")

    def __call__(self, content, styles, method, options, progress=None, *, device="auto"):
        self.calls += 1
        self.started.release()
        for i in range(1, self.steps + 1):
            preview = np.full((32, 32, 3), i / self.steps, np.float32)
            if progress is not None:
                progress(FakeProgress("optimize", i, self.steps, {"style": 1.0 / i}, preview, 0.01 * i))
            self._wait()
        return content * 0.5


# ---------------------------------------------------------------- service


def test_health_methods_styles_openapi(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["jobs"]["workers"] == 2
    methods = client.get("/api/methods").json()
    names = [m["name"] for m in methods["methods"]]
    assert "fast" in names
    fast = next(m for m in methods["methods"] if m["name"] == "fast")
    options = {o["name"] for o in fast["options"]}
    assert {"strength", "max_size", "stroke_scale", "preserve_color"} <= options
    assert not options & engine.SERVER_ONLY  # no device, file or runtime option reaches a request
    styles = client.get("/api/styles").json()
    assert len(styles["builtin"]) == 26
    kinds = {s["kind"] for s in styles["samples"]}
    assert kinds == {"photo", "style"}
    thumb = client.get(styles["samples"][0]["thumb"])
    assert thumb.headers["content-type"] == "image/jpeg"
    schema = client.get("/openapi.json").json()
    for path in ("/api/uploads", "/api/jobs", "/api/jobs/{job_id}/events", "/api/preview", "/api/latent/mix"):
        assert path in schema["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "brushwork studio" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/studio.js").status_code == 200


# ---------------------------------------------------------------- uploads


def test_upload_is_sniffed_by_content(client: TestClient) -> None:
    r = client.post("/api/uploads", content=_png((40, 30)), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 201
    info = r.json()
    assert (info["width"], info["height"]) == (40, 30)
    assert client.get(f"/api/uploads/{info['id']}/image").headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(client.get(info["thumb"]).content)) as thumb:
        assert thumb.format == "JPEG"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, not a picture",
        b"<html><script>alert(1)</script></html>",
        b"%PDF-1.4 fake",
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40,  # a PNG signature and nothing sensible
        _png((64, 64))[:60],  # truncated
    ],
)
def test_non_images_are_422(client: TestClient, data: bytes) -> None:
    r = client.post("/api/uploads", content=data)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"]


def test_size_and_pixel_limits_are_413(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, max_upload_bytes=20_000, max_pixels=1_000_000))) as c:
        big = c.post("/api/uploads", content=b"\0" * 20_001)
        assert big.status_code == 413 and "limit" in big.json()["error"]
        huge = c.post("/api/uploads", content=_png_header(100_000, 100_000))
        assert huge.status_code == 413 and "pixels" in huge.json()["error"]
        over = c.post("/api/uploads", content=_png((1100, 1000)))
        assert over.status_code == 413
        tiny = c.post("/api/uploads", content=_png((8, 8)))
        assert tiny.status_code == 422
        assert c.post("/api/uploads", content=_png((200, 100))).status_code == 201


# ---------------------------------------------------------------- jobs


def test_fast_job_events_result_and_download(client: TestClient) -> None:
    photo = _upload(client)
    r = client.post("/api/jobs", json={"content": photo, "styles": ["sample:swirls"], "options": {"max_size": 128}})
    assert r.status_code == 202, r.text
    job = r.json()
    events = _events(client, job["id"])
    kinds = [e["type"] for e in events]
    assert kinds[0] == "queued" and kinds[-1] == "done" and "started" in kinds
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    result = client.get(f"/api/jobs/{job['id']}/result")
    assert result.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(result.content)) as img:
        assert max(img.size) == 128
        assert abs(img.size[0] / img.size[1] - 600 / 400) < 0.02  # the photo's aspect ratio
        rgb = np.asarray(img.convert("RGB"), np.float32)
        assert rgb.std() > 10  # a picture, not a flat fill
    download = client.get(f"/api/jobs/{job['id']}/result?download=1")
    assert download.headers["content-disposition"].startswith("attachment")
    assert "brushwork-fast-" in download.headers["content-disposition"]
    # reconnecting with Last-Event-ID replays only what came after
    later = _events(client, job["id"], headers={"Last-Event-ID": str(events[0]["seq"])})
    assert [e["seq"] for e in later] == [e["seq"] for e in events[1:]]


@pytest.mark.slow
def test_optimization_streams_losses_and_previews(client: TestClient) -> None:
    options = {"max_size": 32, "iterations": 3, "optimizer": "adam", "init": "content", "preview_every": 1}
    body = {"method": "optimize", "content": "sample:photo-astronaut", "styles": ["sample:mosaic"], "options": options}
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 202, r.text
    events = _events(client, r.json()["id"])
    assert events[-1]["type"] == "done", events[-1]
    progress = [e for e in events if e["type"] == "progress" and e["stage"] == "optimize"]
    assert [e["step"] for e in progress] == [1, 2, 3] and all(e["total"] == 3 for e in progress)
    assert all({"content", "style"} <= set(e["losses"]) for e in progress)
    previews = [e["preview"] for e in progress if "preview" in e]  # at most two a second
    assert previews and all(p.startswith("data:image/jpeg;base64,") for p in previews)
    replay = _events(client, r.json()["id"])  # stored events keep only the newest picture
    assert len([e for e in replay if "preview" in e]) == 1


def test_builtin_and_blend_and_sample_photo(client: TestClient) -> None:
    body = {
        "content": "sample:photo-astronaut",
        "styles": ["builtin:3", "builtin:7"],
        "options": {"max_size": 96, "style_weights": [1, 3], "strength": 0.7},
    }
    job = client.post("/api/jobs", json=body).json()
    assert _wait(client, job["id"])["state"] == "done"
    assert job["request"]["options"]["style_weights"] == [1, 3]


def test_progress_previews_and_cancel_frees_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(steps=50)
    monkeypatch.setattr(engine, "stylize", gate)
    with TestClient(create_app(_settings(tmp_path, workers=1))) as c:
        photo = _upload(c, _png())
        body = {"content": photo, "styles": ["sample:ink"], "options": {"max_size": 64}}
        first = c.post("/api/jobs", json=body).json()
        second = c.post("/api/jobs", json=body).json()
        assert gate.started.acquire(timeout=10)
        gate.step(3)  # let three steps through
        time.sleep(0.2)
        assert c.get(f"/api/jobs/{first['id']}").json()["state"] == "running"
        assert c.post(f"/api/jobs/{first['id']}/cancel").status_code == 200
        gate.release.set()  # the next progress step sees the cancel and unwinds
        assert _wait(c, first["id"])["state"] == "cancelled"
        events = _events(c, first["id"])
        progress = [e for e in events if e["type"] == "progress"]
        assert progress and progress[0]["stage"] == "optimize" and progress[0]["total"] == 50
        assert progress[0]["losses"]["style"] == pytest.approx(1.0)
        previews = [e for e in events if "preview" in e]
        assert len(previews) <= 1  # only the newest keeps its picture
        assert all(p["preview"].startswith("data:image/jpeg;base64,") for p in previews)
        assert c.get(f"/api/jobs/{first['id']}/result").status_code == 409
        # the single worker took the next job
        assert _wait(c, second["id"])["state"] == "done"
        assert gate.calls == 2


def test_cancel_a_queued_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(steps=1)
    monkeypatch.setattr(engine, "stylize", gate)
    with TestClient(create_app(_settings(tmp_path, workers=1))) as c:
        photo = _upload(c, _png())
        body = {"content": photo, "styles": ["sample:ink"], "options": {"max_size": 64}}
        running = c.post("/api/jobs", json=body).json()
        queued = c.post("/api/jobs", json=body).json()
        assert c.delete(f"/api/jobs/{queued['id']}").json()["state"] == "cancelled"
        gate.release.set()
        assert _wait(c, running["id"])["state"] == "done"
        time.sleep(0.1)
        assert gate.calls == 1  # the cancelled job never ran


def test_queue_overflow_429_and_memory_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = Gate(steps=1)
    monkeypatch.setattr(engine, "stylize", gate)
    with TestClient(create_app(_settings(tmp_path, workers=1, max_queued=2, memory_mb=1000))) as c:
        photo = _upload(c, _png())
        body = {"content": photo, "styles": ["sample:ink"], "options": {"max_size": 64}}
        codes = [c.post("/api/jobs", json=body).status_code for _ in range(3)]
        assert codes == [202, 202, 202]  # one runs (or waits for the worker), two wait at most
        assert gate.started.acquire(timeout=10)
        full = c.post("/api/jobs", json=body)
        assert full.status_code == 429 and int(full.headers["retry-after"]) >= 1
        gate.release.set()
    with TestClient(create_app(_settings(tmp_path / "b", memory_mb=80))) as c:
        photo = _upload(c, samples.SAMPLE_PHOTO.read_bytes())
        r = c.post("/api/jobs", json={"content": photo, "styles": ["sample:ink"], "options": {"max_size": 2048}})
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert "max_size" in r.json()["error"]


def test_results_and_uploads_expire(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, ttl=60))) as c:
        studio = c.app.state.studio
        photo = _upload(c, _png())
        job = c.post("/api/jobs", json={"content": photo, "styles": ["builtin:1"], "options": {"max_size": 64}}).json()
        assert _wait(c, job["id"])["state"] == "done"
        files = sorted(p.name for p in studio.folder.iterdir())
        assert len(files) == 2  # the upload and the result, under names the server made
        studio.expire(time.time() + 61)
        assert c.get(f"/api/jobs/{job['id']}").status_code == 404
        assert c.get(f"/api/uploads/{photo.split(':')[1]}/thumb").status_code == 404
        assert list(studio.folder.iterdir()) == []


@pytest.mark.slow
def _clip(tmp_path: Path) -> Path:
    """A 6-frame 96×64 H.264 clip with a moving edge."""
    av = pytest.importorskip("av")
    pytest.importorskip("brushwork.video")
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(6):
            rgb = np.zeros((64, 96, 3), np.uint8)
            rgb[:, : 16 + 10 * i] = (220, 120, 40)
            rgb[::6] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return clip


def test_video_job(client: TestClient, tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    clip = _clip(tmp_path)
    assert client.post("/api/videos", content=b"not a video at all").status_code == 422
    r = client.post("/api/videos", content=clip.read_bytes())
    assert r.status_code == 201, r.text
    assert (r.json()["width"], r.json()["height"]) == (96, 64)
    job = client.post("/api/jobs", json={"content": r.json()["ref"], "styles": ["builtin:4"], "options": {}})
    assert job.status_code == 202, job.text
    events = _events(client, job.json()["id"])
    assert events[-1]["type"] == "done", events[-1]
    assert any(e["type"] == "progress" and e["stage"] == "video" for e in events)
    result = client.get(f"/api/jobs/{job.json()['id']}/result")
    assert result.headers["content-type"] == "video/mp4"
    saved = tmp_path / "out.mp4"
    saved.write_bytes(result.content)
    with av.open(str(saved)) as check:
        frames = sum(1 for _ in check.decode(video=0))
    assert frames == 6


def test_optimize_video_job_and_video_mistakes(client: TestClient, tmp_path: Path) -> None:
    clip = client.post("/api/videos", content=_clip(tmp_path).read_bytes()).json()["ref"]
    tiny = client.post("/api/videos", content=_png((1, 1)))  # a still that FFmpeg reads as one frame
    assert tiny.status_code == 422 and "too small" in tiny.json()["error"], tiny.text
    wrong = client.post(
        "/api/jobs", json={"content": clip, "styles": ["sample:ink"], "options": {"style_weights": [1, 2]}}
    )
    assert wrong.status_code == 422 and "style_weights" in wrong.json()["error"]  # checked before the job, as images
    options = {"iterations": 1, "max_size": 48, "init": "content"}
    job = client.post(
        "/api/jobs", json={"content": clip, "method": "optimize", "styles": ["sample:ink"], "options": options}
    )
    assert job.status_code == 202, job.text
    events = _events(client, job.json()["id"])
    assert events[-1]["type"] == "done", events[-1]
    assert client.get(f"/api/jobs/{job.json()['id']}/result").headers["content-type"] == "video/mp4"


def test_job_errors_never_name_the_server_folder(tmp_path: Path) -> None:
    from brushwork.errors import InputError
    from brushwork.web.jobs import Job, JobQueue

    folder = tmp_path / "private"
    queue = JobQueue(workers=1, max_queued=2, memory_mb=1000, ttl=60, private=folder)

    def work(job: Job) -> Path:
        raise InputError(f"cannot read {folder / 'abc.clip'}: too small, see {folder}")

    job = queue.submit(Job("0" * 32, "video", "fast", {}, work, 1))
    for _ in range(100):
        if job.terminal:
            break
        time.sleep(0.05)
    queue.shutdown()
    assert job.error == "cannot read abc.clip: too small, see the server", job.error


# ---------------------------------------------------------------- options and previews


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"device": "cuda"}, "device"),
        ({"decoder": "/etc/passwd"}, "decoder"),
        ({"runtime": "torch"}, "runtime"),
        ({"strength": 2}, "strength"),
        ({"strength": "1"}, "strength"),
        ({"stroke_scale": 0}, "stroke_scale"),
        ({"max_size": 10**6}, "max_size"),
        ({"preserve_color": "yes"}, "preserve_color"),
        ({"style_weights": [1, 2, 3]}, "style_weights"),
        ({"nonsense": 1}, "nonsense"),
        ({"strength": 10**400}, "strength"),  # an integer JSON allows and a float cannot hold
        ({"style_weights": [0]}, "not all be zero"),
        ({"style_weights": [-1]}, "not negative"),
        ({"tile": 5}, "tile"),
    ],
)
def test_bad_options_are_422(client: TestClient, options: dict[str, Any], needle: str) -> None:
    r = client.post(
        "/api/jobs", json={"content": "sample:photo-astronaut", "styles": ["sample:ink"], "options": options}
    )
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]


@pytest.mark.parametrize(
    ("method", "styles", "options", "needle"),
    [
        ("adain", ["builtin:3"], {}, "built-in styles belong to the fast method"),
        ("fast", ["builtin:3", "sample:ink"], {}, "cannot be blended"),
        ("fast", ["builtin:²"], {}, "builtin:0 to builtin:25"),
        ("microast", ["sample:ink"], {"style_size": 0}, "style_size"),
        ("optimize", ["sample:ink"], {"content_weight": -1}, "content_weight"),
        ("optimize", ["sample:ink"], {"learning_rate": 0}, "learning rate"),
        ("optimize", ["sample:ink"], {"min_size": 16, "iterations": 2, "max_size": 512}, "iterations must be at least"),
    ],
)
def test_mistakes_are_refused_before_the_job_is_queued(
    client: TestClient, method: str, styles: list[str], options: dict[str, Any], needle: str
) -> None:
    body = {"content": "sample:photo-astronaut", "method": method, "styles": styles, "options": options}
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 422, r.text
    assert needle in r.json()["error"]


def test_a_lower_server_max_size_is_the_default(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, max_size=256))) as c:
        r = c.post("/api/jobs", json={"content": "sample:photo-astronaut", "styles": ["sample:ink"], "method": "adain"})
        assert r.status_code == 202, r.text
        assert r.json()["request"]["options"]["max_size"] == 256
        assert (
            c.post("/api/preview", json={"content": "sample:photo-astronaut", "styles": ["builtin:1"]}).status_code
            == 200
        )
        too_big = c.post(
            "/api/jobs",
            json={"content": "sample:photo-astronaut", "styles": ["sample:ink"], "options": {"max_size": 512}},
        )
        assert too_big.status_code == 422 and "limit of 256" in too_big.json()["error"]


def test_camera_jpeg_with_extra_frames_is_an_upload(client: TestClient) -> None:
    buf = io.BytesIO()
    first, second = Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (64, 48), (30, 30, 200))
    first.save(buf, "MPO", save_all=True, append_images=[second])
    r = client.post("/api/uploads", content=buf.getvalue())
    assert r.status_code == 201, r.text
    assert r.json()["width"] == 64 and client.get(r.json()["image"]).headers["content-type"] == "image/jpeg"


def test_preview_is_small_and_quick(client: TestClient) -> None:
    photo = _upload(client)
    body = {"content": photo, "styles": ["sample:mosaic"], "options": {"strength": 0.5}, "size": 200}
    r = client.post("/api/preview", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(r.content)) as img:
        assert max(img.size) == 200
    assert client.post("/api/preview", json={**body, "size": 5000}).status_code == 422


@pytest.mark.slow
def test_latent_sample_and_mix(client: TestClient) -> None:
    r = client.post("/api/latent/sample", json={"n": 2, "seed": 3})
    assert r.status_code == 200, r.text
    styles = r.json()["styles"]
    assert len(styles) == 2 and all(s["ref"].startswith("latent:") for s in styles)
    again = client.post("/api/latent/sample", json={"n": 2, "seed": 3}).json()["styles"]
    a = np.asarray(Image.open(io.BytesIO(client.get(styles[0]["thumb"]).content)), np.float32)
    b = np.asarray(Image.open(io.BytesIO(client.get(again[0]["thumb"]).content)), np.float32)
    assert np.abs(a - b).mean() < 2.0  # the same seed draws the same style
    mix = client.post("/api/latent/mix", json={"styles": [styles[0]["ref"], "sample:ink"], "weights": [0.3, 0.7]})
    assert mix.status_code == 200, mix.text
    ref = mix.json()["ref"]
    job = client.post(
        "/api/jobs", json={"content": "sample:photo-astronaut", "styles": [ref], "options": {"max_size": 64}}
    )
    assert _wait(client, job.json()["id"])["state"] == "done"
    bad = client.post("/api/latent/mix", json={"styles": ["builtin:1", "sample:ink"]})
    assert bad.status_code == 422


def test_camera_websocket(client: TestClient) -> None:
    buf = io.BytesIO()
    Image.open(samples.SAMPLE_PHOTO).convert("RGB").resize((480, 320)).save(buf, "JPEG")
    with client.websocket_connect("/api/camera") as ws:
        ws.send_bytes(buf.getvalue())
        assert "error" in json.loads(ws.receive_text())  # settings come first
        ws.send_text(json.dumps({"styles": ["../../etc/passwd"]}))
        assert "error" in json.loads(ws.receive_text())
        ws.send_text(json.dumps({"styles": ["sample:dots"], "options": {"strength": 0.9}}))
        assert json.loads(ws.receive_text()) == {"ready": True}
        ws.send_bytes(buf.getvalue())
        with Image.open(io.BytesIO(ws.receive_bytes())) as frame:
            assert frame.format == "JPEG" and max(frame.size) == 320
        ws.send_bytes(b"not a frame")
        assert "error" in json.loads(ws.receive_text())
        for settings in ({"styles": ["sample:dots"], "method": ["fast"]}, {"styles": "sample:dots"}):
            ws.send_text(json.dumps(settings))  # wrong JSON types: an error message, the connection stays
            error = json.loads(ws.receive_text())["error"]
            assert "pydantic" not in error and "http" not in error, error
        ws.send_text(json.dumps({"styles": ["sample:dots"], "method": "microast"}))
        assert json.loads(ws.receive_text()) == {"ready": True}


# ---------------------------------------------------------------- hostile input

TRAVERSALS = [
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "upload:../../etc/passwd",
    "sample:../../../etc/passwd",
    "sample:..%2f..%2fetc%2fpasswd",
    "builtin:../1",
    "latent:../../x",
    "upload:" + "0" * 31 + "/",
    "file:///etc/passwd",
    "upload:\0",
]


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_path_traversal_in_every_field(client: TestClient, bad: str, tmp_path: Path) -> None:
    photo = _upload(client, _png())
    folder = client.app.state.studio.folder
    before = sorted(p.name for p in folder.iterdir())
    bodies = [
        {"content": bad, "styles": ["sample:ink"]},
        {"content": photo, "styles": [bad]},
        {"content": photo, "styles": ["sample:ink", bad]},
        {"method": bad, "content": photo, "styles": ["sample:ink"]},
        {"content": photo, "styles": ["sample:ink"], "options": {bad: 1}},
        {"content": photo, "styles": ["sample:ink"], "options": {"max_size": bad}},
        {"content": photo, "styles": ["sample:ink"], "options": {"init": bad}},
    ]
    for body in bodies:
        for path in ("/api/jobs", "/api/preview"):
            r = client.post(path, json=body)
            assert r.status_code == 422, (path, body, r.status_code, r.text)
            assert r.json()["error"]
    for body in ({"styles": [bad]}, {"styles": ["sample:ink", bad], "weights": [1, 1]}):
        assert client.post("/api/latent/mix", json=body).status_code == 422
    quoted, raw = quote(bad, safe=""), quote(bad, safe="/:\\")
    for url in (
        f"/api/jobs/{quoted}",
        f"/api/jobs/{quoted}/events",
        f"/api/jobs/{quoted}/result",
        f"/api/uploads/{quoted}/image",
        f"/api/samples/{quoted}/image",
        f"/api/jobs/{raw}/result",
        f"/api/uploads/{raw}/image",
        f"/api/samples/{raw}/image",
        f"/static/{raw}",
        f"/static/{quoted}",
    ):
        r = client.get(url)
        assert r.status_code in (400, 404, 405), (url, r.status_code)
        assert b"root:" not in r.content
    assert client.post(f"/api/jobs/{quoted}/cancel").status_code == 404
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written, nothing named by a request


def test_oversized_json_and_unbounded_bodies(client: TestClient) -> None:
    big = {"content": "sample:photo-astronaut", "styles": ["sample:ink"], "options": {"x": "y" * 100_000}}
    assert client.post("/api/jobs", json=big).status_code == 413
    many = {"content": "sample:photo-astronaut", "styles": ["sample:ink"] * 5}
    assert client.post("/api/jobs", json=many).status_code == 422
    assert (
        client.post("/api/jobs", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
    )


# ---------------------------------------------------------------- the token and the host


def test_token_is_required_everywhere(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, token=TOKEN))) as c:
        for url in ("/", "/api/health", "/api/methods", "/static/studio.js", "/openapi.json", "/docs"):
            assert c.get(url).status_code == 401, url
            assert c.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/api/uploads", content=_png()).status_code == 401
        assert c.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/api/health", headers={"X-Brushwork-Token": TOKEN}).status_code == 200
        assert c.get(f"/api/health?token={TOKEN}").status_code == 200
        page = c.get(f"/?token={TOKEN}")  # the page keeps the token in a same-site cookie
        assert page.status_code == 200
        assert "samesite=strict" in page.headers["set-cookie"].lower()
        assert c.get("/api/health").status_code == 200  # the cookie now
        c.cookies.clear()
        from starlette.websockets import WebSocketDisconnect

        with pytest.raises(WebSocketDisconnect), c.websocket_connect("/api/camera") as ws:
            ws.receive_text()
        with c.websocket_connect(f"/api/camera?token={TOKEN}") as ws:
            ws.send_text(json.dumps({"styles": ["builtin:2"]}))
            assert json.loads(ws.receive_text()) == {"ready": True}


def test_loopback_server_refuses_foreign_host_names(client: TestClient) -> None:
    assert client.get("/api/health", headers={"Host": "evil.example"}).status_code == 403
    assert client.get("/api/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "localhost"}).status_code == 200


def test_serve_refuses_other_addresses_without_a_token() -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-m", "brushwork", "serve", "--host", "0.0.0.0"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "token" in r.stderr
    short = subprocess.run(
        [sys.executable, "-m", "brushwork", "serve", "--host", "10.1.2.3", "--token", "abc"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert short.returncode == 2 and len(short.stderr.strip().splitlines()) == 1


def test_serve_says_in_one_line_that_the_port_is_taken() -> None:
    import socket

    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        r = subprocess.run(
            [sys.executable, "-m", "brushwork", "serve", "--port", port], capture_output=True, text=True, env=env
        )
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and f"port {port}" in r.stderr, r.stderr


def test_logs_are_json_without_query_strings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="brushwork.studio"):
        with TestClient(create_app(_settings(tmp_path, token=TOKEN))) as c:
            c.get(f"/api/health?token={TOKEN}")
    requests = [r for r in caplog.records if r.getMessage() == "request"]
    assert requests and requests[-1].path == "/api/health" and requests[-1].status == 200
    line = JsonFormatter().format(requests[-1])
    data = json.loads(line)
    assert data["path"] == "/api/health" and data["status"] == 200 and "ms" in data
    assert TOKEN not in "\n".join(JsonFormatter().format(r) for r in caplog.records)
