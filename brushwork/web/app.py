"""The studio's FastAPI application: a JSON API (documented at /docs and /openapi.json) and one static page.

Build it with :func:`create_app` and serve it with uvicorn (``brushwork serve`` does both). Everything the server
keeps (uploads, latent swatches, results) lives in a private temporary folder under names it makes itself, and
expires after ``Settings.ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError

from brushwork import __version__, io
from brushwork.errors import BrushworkError, InputError
from brushwork.web import engine
from brushwork.web.jobs import Job, JobQueue, Overloaded
from brushwork.web.library import (
    ID,
    MIN_SIDE,
    Latent,
    Library,
    NotFound,
    Picture,
    TooLarge,
    jpeg,
    new_id,
    samples_table,
)

log = logging.getLogger("brushwork.studio")
TOKEN_ENV = "BRUSHWORK_TOKEN"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
JSON_BODY_LIMIT = 64 * 1024
PREVIEW_EVERY_S = 0.5  # at most two preview images a second in a job's events
# rough working memory per output pixel, by method (bytes), for admission control
BYTES_PER_PIXEL = {"fast": 400, "adain": 800, "wct": 1200, "microast": 600, "optimize": 4000}


@dataclass
class Settings:
    """What a studio server allows. Sizes in bytes or pixels, times in seconds."""

    token: str | None = None
    workers: int = 2  # jobs run at once
    max_queued: int = 16  # jobs waiting beyond those
    memory_mb: int = 3072  # estimated working memory of all admitted jobs
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 40_000_000  # per uploaded picture
    max_video_bytes: int = 200 * 1024 * 1024
    video_max_size: int = 512  # longer side of a stylized video
    max_size: int = 2048  # longer side of a result
    preview_size: int = 320  # longer side of a quick preview
    camera_size: int = 320  # longer side of a camera frame
    ttl: float = 3600.0  # uploads and results are deleted this long after they are made
    device: str = "auto"
    hosts: tuple[str, ...] = ()  # extra Host header values allowed without a token (loopback names always are)
    folder: Path | None = None  # where files are kept; None: a new temporary folder, removed at shutdown
    warm: bool = False  # load the fast method's networks at start, so that the first request is quick
    extra: dict[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


# ---------------------------------------------------------------- request models


class JobRequest(BaseModel):
    """A stylization: ``content`` and ``styles`` are references (upload:<id>, sample:<name>, builtin:<N>,
    latent:<id>); ``options`` use the method's vocabulary (strength, style_weights, preserve_color, max_size,
    stroke_scale, ...; see GET /api/methods)."""

    method: str = Field("fast", max_length=40)
    content: str = Field(..., max_length=80)
    styles: list[str] = Field(..., min_length=1, max_length=engine.MAX_STYLES)
    options: dict[str, Any] = Field(default_factory=dict, max_length=40)


class PreviewRequest(JobRequest):
    size: int = Field(256, ge=32, le=1024, description="longer side of the preview (at most the server's limit)")


class SampleRequest(BaseModel):
    n: int = Field(6, ge=1, le=12)
    seed: int = Field(0, ge=0, lt=2**63)
    temperature: float = Field(1.0, gt=0, le=10)


class MixRequest(BaseModel):
    styles: list[str] = Field(..., min_length=1, max_length=engine.MAX_STYLES)
    weights: list[float] | None = Field(None, max_length=engine.MAX_STYLES)


# ---------------------------------------------------------------- logging


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    _skip = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._skip and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
        if record.exc_info:
            out["trace"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: int = logging.INFO) -> None:
    """Structured logs on stderr for the studio and uvicorn (uvicorn's access log, which shows query strings and
    so tokens, is replaced by the studio's own request log)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("brushwork.studio", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


# ---------------------------------------------------------------- the guard: host, token, body size, request log


class Guard:
    """ASGI middleware in front of everything (pages, API, WebSocket).

    - With a token, every request must carry it: ``Authorization: Bearer T``, ``X-Brushwork-Token: T``, a
      ``token`` query parameter (EventSource and WebSocket cannot set headers) or the ``brushwork_token`` cookie
      the page sets (SameSite=Strict). Missing or wrong → 401.
    - Without a token (loopback only) the Host header must be a loopback name: a web page elsewhere cannot reach
      the studio through DNS rebinding.
    - JSON bodies are at most 64 KiB and must declare their length; uploads are limited by their route.
    - One structured log line per request (path without its query string).
    """

    def __init__(self, app: Callable, settings: Settings) -> None:
        self.app = app
        self.token = settings.token
        self.hosts = {h.lower() for h in (*LOOPBACK_HOSTS, *settings.hosts)}

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        problem = self._check(scope, headers)
        start = time.perf_counter()
        status_box = {"status": 0}

        async def logged_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
            await send(message)

        if problem is not None:
            status, message = problem
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": message[:100]})
            else:
                await _error(status, message)(scope, receive, logged_send)
        else:
            try:
                await self.app(scope, receive, logged_send)
            finally:
                pass
        if scope["type"] == "http":
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": path[:200],
                    "status": status_box["status"] or (problem[0] if problem else 0),
                    "ms": round(1000 * (time.perf_counter() - start), 1),
                },
            )
        else:
            log.info("websocket", extra={"path": path[:200], "refused": problem is not None})

    def _check(self, scope: dict, headers: dict[str, str]) -> tuple[int, str] | None:
        if self.token is None:
            host = headers.get("host", "").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host not in self.hosts and name not in self.hosts:
                return 403, "this studio answers on loopback names only (start it with --token to serve others)"
        else:
            supplied = _token_of(scope, headers)
            if supplied is None:
                return 401, "this studio needs a token (Authorization: Bearer ..., or ?token=...)"
            if not hmac.compare_digest(supplied.encode(), self.token.encode()):
                return 401, "wrong token"
        if scope["type"] == "http" and scope.get("method") in ("POST", "PUT", "PATCH"):
            if not scope.get("path", "").startswith(("/api/uploads", "/api/videos")):
                length = headers.get("content-length")
                if length is None:
                    if headers.get("transfer-encoding"):
                        return 411, "send a Content-Length"
                elif not length.isdigit() or int(length) > JSON_BODY_LIMIT:
                    return 413, f"request body over {JSON_BODY_LIMIT} bytes"
        return None


def _token_of(scope: dict, headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if "x-brushwork-token" in headers:
        return headers["x-brushwork-token"]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "brushwork_token":
            return value
    return None


# ---------------------------------------------------------------- the application


class Studio:
    """The server's state: settings, its folder, the picture library, the job queue, the preview gate."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.own_folder = settings.folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="brushwork-studio-")) if settings.folder is None else settings.folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.library = Library(self.folder, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
        self.jobs = JobQueue(
            workers=settings.workers,
            max_queued=settings.max_queued,
            memory_mb=settings.memory_mb,
            ttl=settings.ttl,
            private=self.folder,
        )
        self.previews = threading.BoundedSemaphore(max(1, settings.workers))
        self.cameras = threading.BoundedSemaphore(max(1, settings.workers))
        self.builtin_thumbs: dict[int, bytes] = {}
        self.videos: dict[str, tuple[Path, Any, float]] = {}  # id -> (file, io.VideoInfo, time made)
        self.started = time.time()
        self._stop = threading.Event()
        self._janitor = threading.Thread(target=self._sweep, name="studio-janitor", daemon=True)
        self._janitor.start()
        if settings.warm:
            threading.Thread(target=self._warm_up, name="studio-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            photo = io.resize_to_max(io.load_image(samples_table()["photo-sample_photo"].path).rgb, 64)
            style = io.resize_to_max(io.load_image(samples_table()["swirls"].path).rgb, 64)
            engine.stylize(photo, [style], "fast", {}, device=self.settings.device)
            engine.stylize(photo, ["builtin:0"], "fast", {}, device=self.settings.device)
            log.info("warm", extra={"seconds": round(time.time() - self.started, 2)})
            style_space()  # the latent space (imports torch): the pad's first mix is quick too
            log.info("warm latent space", extra={"seconds": round(time.time() - self.started, 2)})
        except Exception as exc:  # a missing model shows up again, as a one-line error, on the first job
            log.warning("warm-up failed", extra={"why": " ".join(str(exc).split())[:200]})

    def _sweep(self) -> None:
        period = max(0.5, min(60.0, self.settings.ttl / 10))
        while not self._stop.wait(period):
            self.expire()

    def expire(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.jobs.expire(now)
        self.library.expire(now - self.settings.ttl)
        for vid, (path, _, made) in list(self.videos.items()):
            if made < now - self.settings.ttl:
                self.videos.pop(vid, None)
                path.unlink(missing_ok=True)

    def close(self) -> None:
        self._stop.set()
        self.jobs.shutdown()
        if self.own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- resolving a request

    def resolve_styles(self, refs: list[str], method: str) -> tuple[list[np.ndarray | str], np.ndarray | None]:
        """Style references → pictures for the method, or (fast with latent styles) one blended code."""
        entries = [self.library.resolve(r, f"styles[{i}]") for i, r in enumerate(refs)]
        return [self._style_value(e) for e in entries], None

    def _style_value(self, entry: Picture | Latent | str) -> np.ndarray | str:
        if isinstance(entry, str):
            return entry
        picture = entry.swatch if isinstance(entry, Latent) else entry
        return io.resize_to_max(io.load_image(picture.path).rgb, 1024)

    def latent_code(self, refs: list[str], weights: tuple[float, ...] | None) -> np.ndarray | None:
        """For the fast method: the weighted mean code of styles when any is a latent style, else None."""
        entries = [self.library.resolve(r, f"styles[{i}]") for i, r in enumerate(refs)]
        if not any(isinstance(e, Latent) for e in entries):
            return None
        if any(isinstance(e, str) for e in entries):
            raise InputError("latent styles cannot be blended with built-in styles")
        images = [io.load_image(e.path).rgb for e in entries if isinstance(e, Picture)]
        image_codes = iter(engine.style_codes(images)) if images else iter(())
        codes = np.stack([e.code if isinstance(e, Latent) else next(image_codes) for e in entries])
        w = np.full(len(codes), 1.0 / len(codes)) if weights is None else np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise InputError("style weights must be non-negative and not all zero")
        return (w[:, None] / w.sum() * codes).sum(0).astype(np.float32)

    def cost_mb(self, method: str, content: Picture, max_size: int | None) -> int:
        w, h = content.width, content.height
        scale = min(1.0, (max_size or max(w, h)) / max(w, h))
        pixels = w * h * scale * scale
        return math.ceil(64 + pixels * BYTES_PER_PIXEL.get(method, 2000) / 2**20)

    def render(
        self,
        req: JobRequest,
        options: dict[str, Any],
        progress: Callable[[Any], object] | None,
        max_side: int | None = None,
    ) -> np.ndarray:
        """Run a checked request (in a worker thread) → H×W×3 float32."""
        content = self.library.resolve(req.content, "content")
        if not isinstance(content, Picture):
            raise InputError("content: give an uploaded or sample photo")
        limit = max_side or options.get("max_size") or self.settings.max_size
        rgb = io.resize_to_max(io.load_image(content.path).rgb, limit)
        if req.method == "fast":
            code = self.latent_code(req.styles, options.get("style_weights"))
            if code is not None:
                opts = {k: v for k, v in options.items() if k != "style_weights"}
                return engine.stylize_code(rgb, code, opts, device=self.settings.device)
        styles, _ = self.resolve_styles(req.styles, req.method)
        return engine.stylize(rgb, styles, req.method, options, progress, device=self.settings.device)


def _validation_message(errors: Any) -> str:
    """The first of pydantic's validation errors as one short line: where, and what was wrong (no URLs)."""
    first = errors[0] if errors else {}
    where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
    return f"{where or 'request'}: {first.get('msg', 'invalid')}"[:300]


def _progress_json(event: Any) -> dict[str, Any]:
    """A Progress event (brushwork.api.Progress) as JSON; its preview as a small JPEG data URL."""
    out: dict[str, Any] = {
        "stage": str(getattr(event, "stage", "")),
        "step": int(getattr(event, "step", 0)),
        "total": int(getattr(event, "total", 0)),
        "elapsed": round(float(getattr(event, "elapsed", 0.0)), 3),
        "message": str(getattr(event, "message", "")),
        "losses": {
            str(k): float(v) for k, v in dict(getattr(event, "losses", {}) or {}).items() if math.isfinite(float(v))
        },
    }
    preview = getattr(event, "preview", None)
    if preview is not None:
        out["preview"] = "data:image/jpeg;base64," + base64.b64encode(jpeg(preview, 256, 80)).decode()
    return out


def create_app(settings: Settings | None = None) -> FastAPI:
    """The studio as an ASGI application (call ``app.state.studio.close()`` or let the lifespan end it)."""
    settings = settings or Settings()
    studio = Studio(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        studio.close()

    app = FastAPI(
        title="brushwork studio",
        version=__version__,
        description="Neural style transfer as a service: upload a photo and styles, run a method, watch its "
        "progress, download the result. Pictures are named by references: upload:<id>, sample:<name>, "
        "builtin:<N>, latent:<id>.",
        lifespan=lifespan,
    )
    app.state.studio = studio

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return _error(exc.status, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> JSONResponse:
        return _error(413, str(exc))

    @app.exception_handler(BrushworkError)
    async def _user_error(request: Request, exc: BrushworkError) -> JSONResponse:
        return _error(422, str(exc))

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc.errors()))

    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail) if exc.detail else HTTPStatus(exc.status_code).phrase)

    static = resources.files("brushwork.web") / "static"

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        response = FileResponse(str(static / "index.html"), media_type="text/html")
        supplied = request.query_params.get("token")
        if supplied and settings.token:  # reaching here means it is right: keep it for the page's requests
            response.set_cookie("brushwork_token", supplied, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
            "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
        return response

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    # -- service

    @app.get("/api/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness and load: jobs running and waiting, the memory budget taken, uptime."""
        return {
            "status": "ok",
            "version": __version__,
            "uptime": round(time.time() - studio.started, 1),
            "jobs": studio.jobs.stats(),
            "video": engine_video_available(),
        }

    @app.get("/api/methods", tags=["service"])
    async def list_methods() -> dict[str, Any]:
        """The methods this server runs, with the options a request may set and their defaults."""
        return {
            "methods": [
                {
                    "name": m.name,
                    "summary": m.summary,
                    "quick": m.quick,
                    "options": [o.as_json() for o in m.options.values()],
                }
                for m in engine.methods().values()
            ],
            "limits": {
                "max_size": settings.max_size,
                "max_upload_bytes": settings.max_upload_bytes,
                "max_pixels": settings.max_pixels,
                "max_styles": engine.MAX_STYLES,
                "preview_size": settings.preview_size,
                "camera_size": settings.camera_size,
            },
        }

    @app.get("/api/styles", tags=["pictures"])
    async def list_styles() -> dict[str, Any]:
        """Built-in styles (fast method only) and the sample photos and styles shipped with brushwork."""
        table = await anyio.to_thread.run_sync(samples_table)
        return {
            "builtin": [
                {"ref": f"builtin:{i}", "name": f"built-in {i}", "thumb": f"/api/styles/builtin/{i}/thumb"}
                for i in range(26)
            ],
            "samples": [
                {
                    "ref": f"sample:{name}",
                    "name": name,
                    "kind": "photo" if name.startswith("photo-") else "style",
                    "width": p.width,
                    "height": p.height,
                    "thumb": f"/api/samples/{name}/thumb",
                    "image": f"/api/samples/{name}/image",
                }
                for name, p in table.items()
            ],
        }

    def _jpeg_response(data: bytes) -> Response:
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=600"})

    @app.get("/api/styles/builtin/{index}/thumb", tags=["pictures"], response_class=Response)
    async def builtin_thumb(index: int) -> Response:
        """A built-in style shown on the sample photo (made once, on first request)."""
        if not 0 <= index < 26:
            raise ApiError(404, "built-in styles are 0 to 25")
        if index not in studio.builtin_thumbs:

            def make() -> bytes:
                photo = io.resize_to_max(io.load_image(samples_table()["photo-sample_photo"].path).rgb, 160)
                return jpeg(engine.stylize(photo, [f"builtin:{index}"], "fast", {}, device=settings.device), 160)

            studio.builtin_thumbs[index] = await anyio.to_thread.run_sync(make)
        return _jpeg_response(studio.builtin_thumbs[index])

    @app.get("/api/samples/{name}/thumb", tags=["pictures"], response_class=Response)
    async def sample_thumb(name: str) -> Response:
        entry = samples_table().get(name)
        if entry is None:
            raise ApiError(404, "no such sample")
        return _jpeg_response(entry.thumb)

    @app.get("/api/samples/{name}/image", tags=["pictures"], response_class=Response)
    async def sample_image(name: str) -> Response:
        entry = samples_table().get(name)
        if entry is None:
            raise ApiError(404, "no such sample")
        return FileResponse(entry.path, media_type="image/jpeg")

    # -- uploads

    @app.post(
        "/api/uploads",
        tags=["pictures"],
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                "description": "the picture's bytes (JPEG, PNG, WebP, TIFF, BMP or GIF; recognised by content)",
            }
        },
    )
    async def upload(request: Request) -> JSONResponse:
        """Upload a photo or a style picture as the request body. 413 over the byte or pixel limit, 422 if it is
        not a picture. Returns its reference (``upload:<id>``) for jobs."""
        limit = settings.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise ApiError(413, f"upload over the limit of {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"upload over the limit of {limit} bytes")
            chunks.append(chunk)
        entry = await anyio.to_thread.run_sync(studio.library.add, b"".join(chunks))
        log.info("upload", extra={"upload": entry.id, "bytes": size, "width": entry.width, "height": entry.height})
        return JSONResponse(_picture_json(entry), status_code=201)

    def _picture_json(entry: Picture) -> dict[str, Any]:
        return {
            "id": entry.id,
            "ref": f"upload:{entry.id}",
            "width": entry.width,
            "height": entry.height,
            "thumb": f"/api/uploads/{entry.id}/thumb",
            "image": f"/api/uploads/{entry.id}/image",
        }

    def _upload(upload_id: str) -> Picture:
        try:
            return studio.library.picture(upload_id)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None

    @app.get("/api/uploads/{upload_id}", tags=["pictures"])
    async def upload_info(upload_id: str) -> dict[str, Any]:
        return _picture_json(_upload(upload_id))

    @app.get("/api/uploads/{upload_id}/thumb", tags=["pictures"], response_class=Response)
    async def upload_thumb(upload_id: str) -> Response:
        return _jpeg_response(_upload(upload_id).thumb)

    @app.get("/api/uploads/{upload_id}/image", tags=["pictures"], response_class=Response)
    async def upload_image(upload_id: str) -> Response:
        entry = _upload(upload_id)
        kinds = {".jpg": "jpeg", ".png": "png", ".webp": "webp", ".tif": "tiff", ".bmp": "bmp", ".gif": "gif"}
        return FileResponse(entry.path, media_type=f"image/{kinds.get(entry.path.suffix, 'png')}")

    # -- jobs

    def _checked(req: JobRequest, max_side: int | None = None, *, content: bool = True) -> dict[str, Any]:
        """A request's options, checked as the method will check them, and its references resolved: everything
        that can be refused is refused here (422), before a job is queued."""
        options = engine.check_options(req.method, req.options, max_size_limit=settings.max_size)
        if max_side is not None and "max_size" in options:
            options["max_size"] = min(options["max_size"] or max_side, max_side)
        if content:
            studio.library.resolve(req.content, "content")
        entries = [studio.library.resolve(ref, f"styles[{i}]") for i, ref in enumerate(req.styles)]
        weights = options.get("style_weights")
        if weights is not None and len(weights) != len(req.styles):
            raise InputError(f"got {len(weights)} style_weights for {len(req.styles)} styles")
        builtin = [isinstance(e, str) for e in entries]
        if any(builtin) and req.method != "fast":
            raise InputError(f"built-in styles belong to the fast method; {req.method} needs style pictures")
        if any(builtin) and not all(builtin):
            kind = "latent styles" if any(isinstance(e, Latent) for e in entries) else "style pictures"
            raise InputError(f"built-in styles cannot be blended with {kind}")
        engine.check_request(req.method, options)
        return options

    @app.post("/api/jobs", tags=["jobs"], status_code=202)
    async def create_job(req: JobRequest) -> JSONResponse:
        """Queue a stylization. 202 with the job; 422 for a bad request; 429 (queue full) or 503 (memory budget
        taken) with Retry-After when the server is busy. Follow it at ``events`` (server-sent events)."""
        if req.content.startswith("video:"):
            if not engine_video_available():
                raise ApiError(501, "video needs PyAV: pip install 'brushwork[video]'")
            options = _checked(req, content=False)
            job = studio.jobs.submit(_video_job(req, options))
            return JSONResponse(_job_json(job), status_code=202)
        options = _checked(req)
        content = studio.library.resolve(req.content, "content")
        if not isinstance(content, Picture):
            raise InputError("content: give an uploaded or sample photo")
        job_id = new_id()

        def work(job: Job) -> Path:
            last = [0.0]

            def progress(event: Any) -> None:
                job.check_cancelled()
                now = time.monotonic()
                data = _progress_json(event)
                if "preview" in data and now - last[0] < PREVIEW_EVERY_S:
                    del data["preview"]
                elif "preview" in data:
                    last[0] = now
                job.emit("progress", **data)

            out = studio.render(req, options, progress)
            job.check_cancelled()
            return io.save_image(out, studio.folder / f"{job.id}.png")

        summary = {
            "content": req.content,
            "styles": req.styles,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        }
        job = Job(
            job_id, "image", req.method, summary, work, studio.cost_mb(req.method, content, options.get("max_size"))
        )
        studio.jobs.submit(job)
        return JSONResponse(_job_json(job), status_code=202)

    def _job(job_id: str) -> Job:
        job = studio.jobs.get(job_id) if ID.fullmatch(job_id) else None
        if job is None:
            raise ApiError(404, "no such job (it may have expired)")
        return job

    def _job_json(job: Job) -> dict[str, Any]:
        return {**job.status(), "events": f"/api/jobs/{job.id}/events"}

    @app.get("/api/jobs/{job_id}", tags=["jobs"])
    async def job_status(job_id: str) -> dict[str, Any]:
        return _job_json(_job(job_id))

    @app.get("/api/jobs/{job_id}/events", tags=["jobs"], response_class=StreamingResponse)
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        """Server-sent events: ``queued``, ``started``, ``progress`` (stage, step, total, losses, elapsed,
        message and, for optimization, a small JPEG ``preview`` data URL), then one of ``done``, ``failed`` or
        ``cancelled``. Reconnecting with Last-Event-ID resumes after that event."""
        job = _job(job_id)
        last_id = request.headers.get("last-event-id", "")
        after = int(last_id) if last_id.isdigit() else -1

        async def stream():  # noqa: ANN202
            nonlocal after
            quiet = 0.0
            while True:
                events = job.events_after(after)
                for event in events:
                    after = event["seq"]
                    yield f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
                if job.terminal and not job.events_after(after):
                    return
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.1)
                quiet = 0.0 if events else quiet + 0.1
                if quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    @app.get("/api/jobs/{job_id}/result", tags=["jobs"], response_class=Response)
    async def job_result(job_id: str, download: bool = False) -> Response:
        """The result as PNG (``?download=1``: as an attachment). 409 while the job is not done."""
        job = _job(job_id)
        if job.state != "done" or job.result is None or not job.result.is_file():
            raise ApiError(409, f"job is {job.state}, no result")
        suffix = job.result.suffix
        name = f"brushwork-{job.method}-{job.id[:8]}{suffix}"
        return FileResponse(
            job.result,
            media_type="video/mp4" if suffix == ".mp4" else "image/png",
            filename=name if download else None,
            content_disposition_type="attachment" if download else "inline",
        )

    @app.post("/api/jobs/{job_id}/cancel", tags=["jobs"])
    async def cancel_job(job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job (a running one stops at its next progress step)."""
        job = _job(job_id)
        studio.jobs.cancel(job)
        return _job_json(job)

    @app.delete("/api/jobs/{job_id}", tags=["jobs"])
    async def delete_job(job_id: str) -> dict[str, Any]:
        return await cancel_job(job_id)

    @app.post("/api/videos", tags=["video"], status_code=201)
    async def upload_video(request: Request) -> JSONResponse:
        """Upload a clip as the request body (any container FFmpeg reads; recognised by content). Returns its
        reference ``video:<id>``: give it as a job's ``content`` to stylize it into an MP4. 501 without video
        support (pip install 'brushwork[video]')."""
        if not engine_video_available():
            raise ApiError(501, "video needs PyAV: pip install 'brushwork[video]'")
        limit = settings.max_video_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise ApiError(413, f"video over the limit of {limit} bytes")
        vid = new_id()
        path = studio.folder / f"{vid}.clip"
        size = 0
        with open(path, "wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    fh.close()
                    path.unlink(missing_ok=True)
                    raise ApiError(413, f"video over the limit of {limit} bytes")
                fh.write(chunk)

        def probe() -> Any:
            try:
                return io.probe_video(path, min_side=MIN_SIDE)
            except BrushworkError as exc:
                path.unlink(missing_ok=True)
                raise InputError(str(exc).replace(str(path), "upload")) from None

        info = await anyio.to_thread.run_sync(probe)
        studio.videos[vid] = (path, info, time.time())
        body = {"id": vid, "ref": f"video:{vid}", "width": info.width, "height": info.height, "fps": info.fps}
        return JSONResponse({**body, "frames": info.frames, "duration": info.duration}, status_code=201)

    def _video_job(req: JobRequest, options: dict[str, Any]) -> Job:
        entry = studio.videos.get(req.content.partition(":")[2]) if ID.fullmatch(req.content[6:]) else None
        if entry is None:
            raise InputError("content: no such video (it may have expired)")
        src, info, _ = entry
        size = min(options.pop("max_size", None) or settings.video_max_size, settings.video_max_size)

        def work(job: Job) -> Path:
            from brushwork import video

            def progress(event: Any) -> None:
                job.check_cancelled()
                data = _progress_json(event)
                data.pop("preview", None)
                job.emit("progress", **data)

            styles, _ = studio.resolve_styles(req.styles, req.method)
            renderer = engine.renderer(styles, req.method, options, device=settings.device)
            dst = studio.folder / f"{job.id}.mp4"
            video.stylize_video(
                src, dst, req.styles, method=req.method, max_size=size, progress=progress, renderer=renderer
            )
            return dst

        summary = {"content": req.content, "styles": req.styles, "options": {**options, "max_size": size}}
        scale = min(1.0, size / max(info.width, info.height))
        cost = math.ceil(128 + info.width * info.height * scale * scale * BYTES_PER_PIXEL.get(req.method, 2000) / 2**20)
        return Job(new_id(), "video", req.method, summary, work, cost)

    # -- quick previews

    @app.post("/api/preview", tags=["previews"], response_class=Response)
    async def preview(req: PreviewRequest) -> Response:
        """A quick low-resolution JPEG of a request, for sliders. Slow methods preview with the fast method.
        429 with Retry-After while every preview slot is busy."""
        method = engine.methods().get(req.method)
        if method is not None and not method.quick:
            fast_options = engine.methods()["fast"].options
            req = PreviewRequest(
                method="fast",
                content=req.content,
                styles=req.styles,
                options={k: v for k, v in req.options.items() if k in fast_options},
                size=req.size,
            )
        side = min(req.size, settings.preview_size)
        options = _checked(req, side)
        options["max_size"] = min(options.get("max_size") or side, side)
        if not studio.previews.acquire(blocking=False):
            raise ApiError(429, "previews are busy", {"Retry-After": "1"})
        try:
            out = await anyio.to_thread.run_sync(lambda: studio.render(req, options, None, side))
        finally:
            studio.previews.release()
        return Response(jpeg(out, side, 85), media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # -- the latent space of styles

    @app.post("/api/latent/sample", tags=["latent"])
    async def latent_sample(req: SampleRequest) -> dict[str, Any]:
        """Draw ``n`` new styles from the style VAE's prior; each comes back as a ``latent:<id>`` reference with
        a swatch (the style on the sample photo), usable as a style by every method."""

        def run() -> list[Latent]:
            from brushwork.methods import latent

            space = style_space()
            codes = latent.sample_codes(space, req.n, temperature=req.temperature, seed=req.seed).cpu().numpy()
            return [_keep_latent(code) for code in codes]

        entries = await _gated(run)
        return {"styles": [_latent_json(e) for e in entries]}

    @app.post("/api/latent/mix", tags=["latent"])
    async def latent_mix(req: MixRequest) -> dict[str, Any]:
        """Mix up to four styles (pictures or latent styles) in the latent space with ``weights`` (e.g. the
        bilinear weights of a point on the 2-D pad); returns the mix as a ``latent:<id>`` reference."""
        entries = [studio.library.resolve(r, f"styles[{i}]") for i, r in enumerate(req.styles)]
        if any(isinstance(e, str) for e in entries):
            raise InputError("built-in styles have no place in the latent space: mix pictures or latent styles")
        if req.weights is not None and len(req.weights) != len(entries):
            raise InputError(f"got {len(req.weights)} weights for {len(entries)} styles")

        def run() -> Latent:
            import torch

            from brushwork.methods import latent

            space = style_space()
            images = [io.load_image(e.path).rgb for e in entries if isinstance(e, Picture)]
            image_codes = iter(engine.style_codes(images)) if images else iter(())
            codes = np.stack([e.code if isinstance(e, Latent) else next(image_codes) for e in entries])
            code = latent.mix_codes(space, torch.from_numpy(codes), req.weights).cpu().numpy()
            return _keep_latent(code)

        return _latent_json(await _gated(run))

    def _keep_latent(code: np.ndarray) -> Latent:
        photo = io.resize_to_max(io.load_image(samples_table()["photo-sample_photo"].path).rgb, 256)
        swatch = engine.stylize_code(photo, code, {}, device=settings.device)
        return studio.library.add_latent(code, swatch)

    def _latent_json(entry: Latent) -> dict[str, Any]:
        return {"id": entry.id, "ref": f"latent:{entry.id}", "thumb": f"/api/uploads/{entry.swatch.id}/thumb"}

    async def _gated(fn: Callable[[], Any]) -> Any:
        if not studio.previews.acquire(blocking=False):
            raise ApiError(429, "the server is busy with previews", {"Retry-After": "1"})
        try:
            return await anyio.to_thread.run_sync(fn)
        finally:
            studio.previews.release()

    # -- the live camera

    @app.websocket("/api/camera")
    async def camera(ws: WebSocket) -> None:
        """Live camera: send a JSON text message ``{"styles": [...], "method": "fast", "options": {...}}``, then
        JPEG frames as binary messages (longer side at most the camera size, larger ones are shrunk); each frame
        is answered with the stylized JPEG, or a JSON ``{"error": ...}`` text message. Send the next frame when
        the answer arrives. A new JSON message changes the style."""
        if not studio.cameras.acquire(blocking=False):
            await ws.close(code=1013, reason="too many cameras")
            return
        await ws.accept()
        render: Callable[[np.ndarray], np.ndarray] | None = None
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is not None:
                    try:
                        render = await anyio.to_thread.run_sync(_camera_renderer, message["text"])
                        await ws.send_text(json.dumps({"ready": True}))
                    except (BrushworkError, ValueError) as exc:
                        await ws.send_text(json.dumps({"error": " ".join(str(exc).split())[:200]}))
                    continue
                data = message.get("bytes") or b""
                if render is None:
                    await ws.send_text(json.dumps({"error": "send the style settings first"}))
                    continue
                try:
                    out = await anyio.to_thread.run_sync(_camera_frame, render, data)
                except BrushworkError as exc:
                    await ws.send_text(json.dumps({"error": " ".join(str(exc).split())[:200]}))
                    continue
                await ws.send_bytes(out)
        except WebSocketDisconnect:
            return
        finally:
            studio.cameras.release()

    def _camera_renderer(text: str) -> Callable[[np.ndarray], np.ndarray]:
        if len(text) > 4096:
            raise InputError("camera settings are too long")
        try:
            raw = json.loads(text)
        except ValueError:
            raise InputError("camera settings must be JSON") from None
        if not isinstance(raw, dict):
            raise InputError("camera settings must be a JSON object")
        method = raw.get("method", "fast")
        quick = [name for name, m in engine.methods().items() if m.quick]
        if not isinstance(method, str) or method not in quick:
            raise InputError(f"the camera runs quick methods only ({', '.join(quick)})")
        try:
            req = JobRequest(
                method=method,
                content="sample:photo-sample_photo",
                styles=raw.get("styles") or [],
                options=raw.get("options") or {},
            )
        except ValidationError as exc:
            raise InputError(_validation_message(exc.errors())) from None
        options = _checked(req, settings.camera_size)
        options.pop("max_size", None)
        styles, _ = studio.resolve_styles(req.styles, method)
        return engine.renderer(styles, method, options, device=settings.device).render

    def _camera_frame(render: Callable[[np.ndarray], np.ndarray], data: bytes) -> bytes:
        if len(data) > 2 * 1024 * 1024:
            raise InputError("camera frame over 2 MB")
        import io as bytes_io

        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(bytes_io.BytesIO(data), formats=["JPEG", "PNG", "WEBP"]) as img:
                if img.width * img.height > 4096 * 4096:
                    raise InputError("camera frame too large")
                rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise InputError("camera frames must be JPEG, PNG or WebP pictures") from None
        rgb = io.resize_to_max(rgb, settings.camera_size)
        if min(rgb.shape[:2]) < 16:
            raise InputError("camera frame too small")
        return jpeg(render(rgb), settings.camera_size, 80)

    return _guarded(app, settings)


@lru_cache(maxsize=1)
def style_space() -> Any:
    """The shipped style VAE (brushwork.latent), loaded once per process, on the CPU."""
    from brushwork.latent import load_style_space

    return load_style_space(device="cpu")


def engine_video_available() -> bool:
    """Whether video jobs can run: brushwork.video and PyAV are importable."""
    import importlib.util

    return importlib.util.find_spec("brushwork.video") is not None and importlib.util.find_spec("av") is not None


def _guarded(app: FastAPI, settings: Settings) -> FastAPI:
    app.add_middleware(Guard, settings=settings)
    return app
