"""Folders of photos and videos on a Ray cluster (``brushwork stylize/video … --ray [ADDRESS]``).

The driver (the process that runs the command) plans the work and writes every output; Ray actors, one per
worker slot, load the method's networks once (``brushwork.api.renderer``) and render what the driver sends them:

* photos travel as file bytes in batches (no shared storage needed); a worker writes them to its own temporary
  folder, renders them exactly as ``brushwork stylize`` does (``Renderer.render_picture``, ``io.encode_image``) and
  returns the encoded output, which the driver writes atomically under the output folder with the names of the
  single-process run. Outputs are byte-identical to it.
* videos are split at key frames into segments (PyAV reads the packet index, nothing is decoded); a worker decodes
  its segment from the shared path, warms the temporal history (optical-flow blending, :mod:`brushwork.video`) on
  a few frames before the segment's start so that the seam does not flicker, and returns the segment's frames as
  PNG. The driver keeps them in a cache folder beside the output (``--resume`` reuses finished segments) and
  encodes the video in order as segments arrive, copying the audio.

A worker that dies (killed, out of memory, its node lost) loses nothing: its unfinished batches go back to the
queue, a fresh actor takes its place wherever the cluster has room, and a batch is given up only after
:data:`ATTEMPTS` tries. Nothing is written until a result is complete, so no partial file is left.

Ray is optional (``pip install 'brushwork[ray]'``) and imported only here, only when ``--ray`` is given.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brushwork import errors
from brushwork.api import Progress, Reporter
from brushwork.errors import BrushworkError, ClusterError, InputError

ProgressFn = Callable[[Progress], object]

INSTALL_HINT = "--ray needs Ray: pip install 'brushwork[ray]'"
ATTEMPTS = 3  # tries of one batch or segment before the job gives up (each on a fresh worker)
DEPTH = 2  # calls queued on each worker, so that it never waits for the driver
BATCH = 4  # photos per call
WARM_FRAMES = 8  # stylized frames before a segment's start that warm its temporal history (× keyframes frames)
SEGMENT_FRAMES = (24, 240)  # bounds on a segment's length (frames): enough to amortise the warm-up, small results
SEGMENT_SUFFIX = ".brushwork-segments"


# ---------------------------------------------------------------------------------------------- runtime


def require_ray() -> Any:
    """The ``ray`` module, or ClusterError with the one line that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return ray


@contextmanager
def connect(address: str | None = None) -> Iterator[Any]:
    """Ray for the length of a job: ``address`` None (or "local") starts a local runtime on this machine; otherwise
    the driver joins the cluster at ``address`` (``host:port``, ``auto``, or ``ray://host:port``). The workers get
    the driver's ``BRUSHWORK_*`` settings (model cache, pixel limit)."""
    ray = require_ray()
    import logging

    env = {k: v for k, v in os.environ.items() if k.startswith("BRUSHWORK_") and k != "BRUSHWORK_THREADS"}
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False, "configure_logging": True}
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    if ray.is_initialized():  # a caller (a test, a notebook) already holds a connection: use it as it is
        yield ray
        return
    if address not in (None, "", "local", "auto") and not str(address).startswith("ray://"):
        _reachable(str(address))
    try:
        if address in (None, "", "local"):
            ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)  # this machine only
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "start a local Ray runtime" if address in (None, "", "local") else f"join the Ray cluster at {address}"
        raise ClusterError(f"cannot {where}: {' '.join(str(exc).split())[:300]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _reachable(address: str, timeout: float = 10.0) -> None:
    """ClusterError at once when nothing listens at ``host:port`` (Ray itself would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray {address}: give the cluster's address as host:port, auto or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def _worker_slots(ray: Any, workers: int | None, cpus: float, gpus: float = 0.0) -> int:
    """How many workers to start; InputError when one worker asks for more CPUs or GPUs than the cluster has (Ray
    would wait for them for ever)."""
    resources = ray.cluster_resources()
    have_cpus, have_gpus = float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))
    if cpus > have_cpus:
        raise InputError(f"a worker asks for {cpus:g} CPUs (--worker-cpus) and the cluster has {have_cpus:g}")
    if gpus > have_gpus:
        raise InputError(f"a worker asks for {gpus:g} GPUs (--worker-gpus) and the cluster has {have_gpus:g}")
    if workers is not None:
        return workers
    return max(1, int(have_cpus // max(cpus, 1e-3)))


def _death(ray: Any, exc: BaseException) -> bool:
    """True when ``exc`` says a worker (process or node) was lost, not that the work itself failed."""
    exceptions = ray.exceptions
    return isinstance(exc, exceptions.RayError) and not isinstance(exc, exceptions.RayTaskError)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    return " ".join(str(exc).split())[:limit]


def run_pool(
    ray: Any,
    spawn: Callable[[], Any],
    slots: int,
    tasks: Sequence[Any],
    submit: Callable[[Any, Any], Any],
    handle: Callable[[Any, Any], None],
    depth: int = DEPTH,
    attempts: int = ATTEMPTS,
) -> None:
    """Run ``tasks`` on ``slots`` actors made by ``spawn``: ``submit(actor, task)`` returns an ObjectRef, and
    ``handle(task, result)`` gets each result on the driver, in completion order. A lost actor is replaced by a
    fresh one and its unfinished tasks go back to the front of the queue; a task that loses its worker
    ``attempts`` times raises ClusterError."""
    queue: deque[int] = deque(range(len(tasks)))
    actors = [spawn() for _ in range(min(slots, max(1, len(tasks))))]
    generation = [0] * len(actors)
    load = [0] * len(actors)
    tries = [0] * len(tasks)
    inflight: dict[Any, tuple[int, int, int]] = {}

    def feed(slot: int) -> None:
        while queue and load[slot] < depth:
            tid = queue.popleft()
            inflight[submit(actors[slot], tasks[tid])] = (slot, generation[slot], tid)
            load[slot] += 1

    try:
        for slot in range(len(actors)):
            feed(slot)
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            ref = ready[0]
            slot, gen, tid = inflight.pop(ref)
            if gen == generation[slot]:
                load[slot] -= 1
            try:
                result = ray.get(ref)
            except BaseException as exc:
                if not _death(ray, exc):
                    raise
                tries[tid] += 1
                if tries[tid] >= attempts:
                    raise ClusterError(
                        f"a worker was lost {attempts} times on the same work, giving up: {_one_line(exc)}"
                    ) from None
                queue.appendleft(tid)
                if gen == generation[slot]:  # replace the dead actor once, however many of its calls fail
                    ray.kill(actors[slot], no_restart=True)
                    actors[slot] = spawn()
                    generation[slot] += 1
                    load[slot] = 0
                feed(slot)
                continue
            handle(tasks[tid], result)
            feed(slot)
    finally:
        closing = []
        for actor in actors:  # a worker's own clean-up first: ray.kill ends its process without any
            try:
                closing.append(actor.close.remote())
            except Exception:
                pass
        try:
            ray.wait(closing, num_returns=len(closing), timeout=10)
        except Exception:
            pass
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass


# ------------------------------------------------------------------------------------------------ worker


def _blob(path: str | Path) -> tuple[str, bytes]:
    """A file as (suffix, bytes), to travel to a worker that may not see the driver's disk."""
    p = Path(path)
    try:
        return p.suffix, p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {(exc.strerror or str(exc)).lower()}") from None


def _style_blobs(styles: Sequence[str]) -> list[str | tuple[str, bytes]]:
    return [s if s.startswith("builtin:") else _blob(s) for s in styles]


class Stylizer:
    """One Ray actor: a method with its styles prepared once, rendering photos and video segments."""

    def __init__(
        self,
        styles: list[str | tuple[str, bytes]],
        method: str,
        options: dict[str, Any],
        masks: list[tuple[str, bytes]] | None = None,
        max_pixels: int | None = None,
        threads: int = 0,
    ) -> None:
        if threads:
            os.environ["BRUSHWORK_THREADS"] = str(threads)  # onnxruntime: the CPUs Ray gave this worker
        from brushwork import api, io

        # the style and mask files live only while they are read: Ray ends a worker's process without running
        # its clean-up, so nothing may be left in a folder for later
        with tempfile.TemporaryDirectory(prefix="brushwork-worker-") as tmp:
            self.folder = Path(tmp)
            refs = [s if isinstance(s, str) else str(self._file(f"style{i}", *s)) for i, s in enumerate(styles)]
            masks_read = [
                io.load_image(self._file(f"mask{i}", *m), max_pixels=max_pixels) for i, m in enumerate(masks or [])
            ]
            self.renderer = api.renderer(refs, method=method, max_pixels=max_pixels, **options)
        self.mask: Any = masks_read[0] if len(masks_read) == 1 else (masks_read or None)
        self.where = f"{socket.gethostname()}:{os.getpid()}"

    def _file(self, stem: str, suffix: str, data: bytes) -> Path:
        path = self.folder / f"{stem}{suffix}"
        path.write_bytes(data)
        return path

    def pid(self) -> int:
        return os.getpid()

    def images(self, batch: list[tuple[str, str, bytes, str, int]]) -> list[tuple[str, bytes | None, str, int, int]]:
        """Render ``(name, suffix, data, ext, quality)`` photos; returns ``(name, output bytes or None, error,
        width, height)`` each, in order."""
        from brushwork import io

        results: list[tuple[str, bytes | None, str, int, int]] = []
        for name, suffix, data, ext, quality in batch:
            with tempfile.TemporaryDirectory(prefix="brushwork-worker-") as tmp:
                self.folder = Path(tmp)
                path = self._file("content", suffix, data)
                try:
                    picture = self.renderer.render_picture(str(path), self.mask)
                    h, w = picture.rgb.shape[:2]
                    results.append((name, io.encode_image(picture, ext, quality), "", w, h))
                except BrushworkError as exc:
                    results.append((name, None, str(exc).replace(str(path), name), 0, 0))
        return results

    def segment(self, job: SegmentJob) -> tuple[list[float], list[bytes], str]:
        """Stylize one video segment; returns its frame times, PNG frames, and an error ('' when none)."""
        from brushwork import io
        from brushwork import video as bv

        src = Path(job.source)
        if not src.is_file():
            return [], [], f"cannot read {src} on worker {self.where}: put videos where every node sees them"
        try:
            flow = bv.FlowEstimator(job.flow_size, job.flow_preset, forward=job.keyframes > 1)
            pipeline = bv.Frames(self.renderer, job.consistency, job.keyframes, job.feed)
            times: list[float] = []
            frames: list[bytes] = []

            def keep(ready: list[tuple[float, Any]]) -> None:
                for t, out in ready:
                    if t >= job.start - 1e-6 and (job.end is None or t < job.end - 1e-6):
                        times.append(t)
                        frames.append(bv.encode_png(out))

            prev = None
            # frame indices from the clip's first stylized frame (warm frames before it), so that the keyframes
            # fall where the one-process pipeline puts them
            for k, frame in enumerate(io.read_video(src, start=job.warm_from, end=job.until)):
                rgb = bv._resize_frame(frame.rgb, job.max_size)
                g = bv.gray(rgb)
                motion = flow.motion(prev, g) if prev is not None else None
                keep(pipeline.push(job.first - job.warm + k, rgb, g, motion, frame.time))
                prev = g
            keep(pipeline.finish())
        except BrushworkError as exc:
            return [], [], str(exc)
        return times, frames, ""

    def close(self) -> None:
        """Nothing to clean up: this worker keeps no files between calls."""


def _threads(cpus: float) -> int:
    """A worker's compute threads: the whole CPUs Ray gave it (at least one)."""
    return max(1, math.floor(cpus))


def _spawner(ray: Any, worker_cpus: float, worker_gpus: float, *args: Any) -> Callable[[], Any]:
    remote = ray.remote(Stylizer).options(num_cpus=worker_cpus, num_gpus=worker_gpus, max_restarts=0)
    threads = _threads(worker_cpus)

    def spawn() -> Any:
        return remote.remote(*args, threads=threads)

    return spawn


# ------------------------------------------------------------------------------------------------ photos


@dataclass
class Settings:
    """How the job uses the cluster."""

    address: str | None = None  # None: a local runtime
    workers: int | None = None  # actors (default: the cluster's CPUs / worker_cpus)
    worker_cpus: float = 1.0
    worker_gpus: float = 0.0
    batch: int = BATCH


def stylize_images(
    pairs: Sequence[tuple[Path, Path]],
    styles: Sequence[str],
    *,
    method: str = "fast",
    options: dict[str, Any] | None = None,
    mask: Sequence[str] | None = None,
    quality: int = 95,
    max_pixels: int | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
    on_error: Callable[[Path, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Stylize ``(input, output)`` photo pairs on the cluster; outputs are written atomically by this process as
    they arrive. A photo the method cannot use is passed to ``on_error(path, message)`` (default: raise
    InputError). Returns one record per written image (input, output, width, height, seconds)."""
    settings = settings or Settings()
    style_blobs = _style_blobs(styles)
    mask_blobs = [_blob(m) for m in mask or []] or None
    by_name = {str(src): (src, dst) for src, dst in pairs}
    batches = [list(pairs[i : i + max(1, settings.batch)]) for i in range(0, len(pairs), max(1, settings.batch))]
    reporter = Reporter(progress, "batch", len(pairs))
    records: list[dict[str, Any]] = []
    done = 0
    t0 = time.perf_counter()

    def submit(actor: Any, batch: list[tuple[Path, Path]]) -> Any:
        items = [(str(src), *_blob(src), dst.suffix.lower(), quality) for src, dst in batch]
        return actor.images.remote(items)

    def handle(batch: list[tuple[Path, Path]], results: list[tuple[str, bytes | None, str, int, int]]) -> None:
        nonlocal done
        from brushwork import io

        for name, data, error, w, h in results:
            src, dst = by_name[name]
            done += 1
            if data is None:
                if on_error is None:
                    raise InputError(error)
                on_error(src, error)
            else:
                io.write_atomic(dst, data)
                records.append({"input": str(src), "output": str(dst), "width": w, "height": h})
            reporter.step(done, message=src.name)

    with connect(settings.address) as ray:
        slots = _worker_slots(ray, settings.workers, settings.worker_cpus, settings.worker_gpus)
        opts = dict(options or {})
        spawn = _spawner(
            ray, settings.worker_cpus, settings.worker_gpus, style_blobs, method, opts, mask_blobs, max_pixels
        )
        run_pool(ray, spawn, slots, batches, submit, handle)
    seconds = time.perf_counter() - t0
    for r in records:
        r["seconds"] = round(seconds / max(1, len(pairs)), 4)  # the job's mean: photos render concurrently
    return records


# ---------------------------------------------------------------------------------------------- eval


class Measurer:
    """One Ray actor of ``brushwork eval --ray``: the methods (warmed once each) and the metric networks."""

    def __init__(
        self, options: dict[str, dict[str, Any]], max_size: int, device: str, metric_size: int, threads: int = 0
    ) -> None:
        if threads:
            os.environ["BRUSHWORK_THREADS"] = str(threads)
        from brushwork.cli.evaluate import Runner, make_evaluator

        self.runner = Runner(options, max_size, device)
        self.evaluator = make_evaluator(device, metric_size)
        self.max_size = max_size
        self.folder = Path(tempfile.mkdtemp(prefix="brushwork-eval-"))

    def _file(self, kind: str, name: str, data: bytes) -> Path:
        path = self.folder / kind / name  # the original name: the runner's caches and warm-up key on it
        if not path.is_file():
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
        return path

    def run(self, items: list[tuple[str, str, bytes, str, bytes]]) -> list[tuple[Any, Any, dict[str, float]]]:
        """``(method, photo name, photo bytes, style name, style bytes)`` -> (result, cost, metrics) each."""
        from brushwork import io

        results = []
        for method, photo_name, photo_data, style_name, style_data in items:
            photo = self._file("photos", photo_name, photo_data)
            style = self._file("styles", style_name, style_data)
            rgb, cost = self.runner.run(method, photo, style)
            reference = [io.resize_to_max(io.load_image(p).rgb, self.max_size) for p in (photo, style)]
            results.append((rgb, cost, self.evaluator(rgb, *reference)))
        return results

    def close(self) -> None:
        """Remove this worker's copies of the photos and styles (called by the pool before it ends the worker)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __del__(self) -> None:
        folder = getattr(self, "folder", None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def evaluate_pairs(
    tasks: Sequence[tuple[int, str, Path, Path]],
    options: dict[str, dict[str, Any]],
    max_size: int,
    device: str,
    metric_size: int,
    settings: Settings,
    done: Callable[[tuple[int, str, Path, Path], Any, Any, dict[str, float]], None],
) -> None:
    """``brushwork eval`` on the cluster: each ``(row, method, photo, style)`` task runs on a worker, and
    ``done(task, result, cost, metrics)`` gets its result on the driver (which writes the report). Costs are each
    worker's own (workers share their machines, so times are longer than one process's)."""
    with connect(settings.address) as ray:
        slots = _worker_slots(ray, settings.workers, settings.worker_cpus, settings.worker_gpus)
        remote = ray.remote(Measurer).options(
            num_cpus=settings.worker_cpus, num_gpus=settings.worker_gpus, max_restarts=0
        )
        batches = [list(tasks[i : i + settings.batch]) for i in range(0, len(tasks), settings.batch)]

        def submit(actor: Any, batch: list[tuple[int, str, Path, Path]]) -> Any:
            items = [(m, photo.name, _blob(photo)[1], style.name, _blob(style)[1]) for _, m, photo, style in batch]
            return actor.run.remote(items)

        def handle(batch: list[tuple[int, str, Path, Path]], results: list[tuple[Any, Any, dict[str, float]]]) -> None:
            for task, (rgb, cost, metrics) in zip(batch, results, strict=True):
                done(task, rgb, cost, metrics)

        threads = _threads(settings.worker_cpus)
        spawn = lambda: remote.remote(options, max_size, device, metric_size, threads)  # noqa: E731
        run_pool(ray, spawn, slots, batches, submit, handle)


# ------------------------------------------------------------------------------------------------ videos


@dataclass(frozen=True)
class SegmentJob:
    """One stretch of a video for one worker: output frames with ``start <= time < end`` (``end`` None: to the
    end), decoded from ``warm_from`` so that the frames before ``start`` warm the temporal history."""

    clip: int
    number: int
    source: str
    first: int  # index of the segment's first frame in the clip (from the clip's first stylized frame)
    count: int
    start: float
    end: float | None
    warm_from: float
    consistency: float
    feed: float
    max_size: int | None
    flow_size: int | None
    flow_preset: str
    keyframes: int = 1  # brushwork.video.Frames: the network stylizes every keyframes-th frame
    warm: int = 0  # frames decoded before the segment's first (from warm_from)
    until: float | None = None  # decoding stops here: past ``end`` to the next keyframe, so that the segment's last
    # frames are propagated as in one process (not all keyframes)


def frame_times(path: str | os.PathLike) -> tuple[list[float], list[bool]]:
    """Presentation times (seconds, on :func:`brushwork.io.read_video`'s clock) of every frame of the first video
    stream, and which are key frames, from the packet index: nothing is decoded."""
    from brushwork import io

    container = io._open_input(path)
    try:
        stream = container.streams.video[0]
        packets = [(p.pts, bool(p.is_keyframe)) for p in container.demux(stream) if p.pts is not None and p.size]
    except Exception as exc:
        raise InputError(f"cannot read {os.fspath(path)}: {_one_line(exc)}") from None
    finally:
        container.close()
    packets.sort()
    if not packets:
        return [], []
    origin = stream.start_time if stream.start_time is not None else packets[0][0]
    return [float((pts - origin) * stream.time_base) for pts, _ in packets], [k for _, k in packets]


def plan_segments(times: Sequence[float], keys: Sequence[bool], length: int) -> list[tuple[int, int]]:
    """Split frames ``0..len(times)`` into ``(first, stop)`` runs that start at key frames and hold about
    ``length`` frames each (a run only ends where a key frame follows)."""
    bounds = [0]
    for i in range(1, len(times)):
        if keys[i] and i - bounds[-1] >= length:
            bounds.append(i)
    bounds.append(len(times))
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def segment_length(frames: int, slots: int, warm: int) -> int:
    """Frames per segment: enough segments for two per worker, each long enough to amortise its warm-up."""
    low, high = max(SEGMENT_FRAMES[0], 3 * warm), SEGMENT_FRAMES[1]
    return int(min(high, max(low, math.ceil(frames / max(1, 2 * slots)))))


@dataclass
class _Clip:
    """A video being assembled on the driver."""

    src: Path
    dst: Path
    times: list[float]
    segments: list[SegmentJob]
    cache: Any  # brushwork.video.FrameCache of the segments' frames
    first: float
    end: float | None
    info: Any
    done: set[int]
    flushed: int = 0
    writer: Any = None
    frames: int = 0
    resumed: int = 0
    shape: tuple[int, ...] = ()


def stylize_videos(
    pairs: Sequence[tuple[Path, Path]],
    styles: Sequence[str],
    *,
    method: str = "fast",
    options: dict[str, Any] | None = None,
    consistency: float | None = None,
    keyframes: int | None = None,
    feed: float = 0.0,
    crf: int = 20,
    start: float | None = None,
    end: float | None = None,
    max_size: int | None = None,
    resume: bool = False,
    warm: int = WARM_FRAMES,
    segment_frames: int | None = None,
    settings: Settings | None = None,
    progress: ProgressFn | None = None,
    protect: Sequence[str | os.PathLike] = (),
) -> list[dict[str, Any]]:
    """Stylize videos ``(input, output)`` on the cluster, each split at key frames into segments that workers
    stylize in parallel (``warm`` frames before each segment warm its history); the outputs keep timing, rotation
    and audio like :func:`brushwork.video.stylize_video`. The inputs must be readable at the same path on every
    node (shared storage). ``resume`` reuses the segments an interrupted run finished."""
    from brushwork import io
    from brushwork import video as bv
    from brushwork.options import MIN_SIDE

    settings = settings or Settings()
    consistency = bv.CONSISTENCY if consistency is None else consistency
    keyframes = bv.check_keyframes(keyframes, method, consistency)
    options = dict(options or {})
    t0 = time.perf_counter()
    with connect(settings.address) as ray:
        slots = _worker_slots(ray, settings.workers, settings.worker_cpus, settings.worker_gpus)
        clips: list[_Clip] = []
        for c, (src, dst) in enumerate(pairs):
            info = io.probe_video(src, min_side=MIN_SIDE)
            io.check_video_writable(dst, [src, *protect])
            all_times, all_keys = frame_times(src)
            keep = [i for i, t in enumerate(all_times) if (start is None or t >= start - 1e-6)]
            keep = [i for i in keep if end is None or all_times[i] < end - 1e-6]
            if not keep:
                raise InputError(f"cannot read {src}: no frames between --start and --end")
            times = [all_times[i] for i in keep]
            keys = [all_keys[i] for i in keep]
            keys[0] = True  # the window's first frame starts a segment (decoding seeks back to its key frame)
            # the history warms over ``warm`` stylized frames: warm × keyframes frames
            warm_span = warm * keyframes
            length = segment_frames or segment_length(len(times), slots, warm_span)
            video_settings = bv.VideoSettings(
                tuple(str(s) for s in styles), method, tuple(sorted((k, repr(v)) for k, v in options.items())),
                consistency, feed, max_size, start, end, bv.FLOW_SIZE, bv.FLOW_PRESET, keyframes=keyframes,
            )  # fmt: skip
            key = hashlib.sha256(
                f"{bv._cache_key(src, video_settings)}:{length}:{warm}:{len(times)}".encode()
            ).hexdigest()
            cache = bv.FrameCache(dst, key, SEGMENT_SUFFIX)
            jobs = []
            for n, (a, b) in enumerate(plan_segments(times, keys, length)):
                w = keep[a] - max(0, keep[a] - warm_span)
                after = -(b - 1) % keyframes  # frames after the segment up to the next keyframe
                until = times[b + after] if b + after < len(times) else end
                warm_from = all_times[keep[a] - w] if n > 0 else times[0]
                jobs.append(
                    SegmentJob(
                        c,
                        n,
                        str(src),
                        a,
                        b - a,
                        times[a],
                        times[b] if b < len(times) else end,
                        warm_from,
                        consistency,
                        feed,
                        max_size,
                        bv.FLOW_SIZE,
                        bv.FLOW_PRESET,
                        keyframes,
                        w if n > 0 else 0,
                        until,
                    )  # fmt: skip
                )
            done = _finished_segments(cache, len(jobs)) if resume else set()
            if not done:
                cache.reset()
            clips.append(_Clip(src, dst, times, jobs, cache, start or 0.0, end, info, done))
        total = sum(len(c.times) for c in clips)
        reporter = Reporter(progress, "video", total)
        count = sum(sum(c.segments[n].count for n in c.done) for c in clips)
        for clip in clips:
            clip.resumed = sum(clip.segments[n].count for n in clip.done)
        reporter.step(count) if count else None

        def flush(clip: _Clip) -> None:
            while clip.flushed < len(clip.segments) and clip.flushed in clip.done:
                job = clip.segments[clip.flushed]
                if clip.writer is None:
                    clip.writer = io.VideoWriter(
                        clip.dst,
                        fps=clip.info.fps,
                        crf=crf,
                        rotation=clip.info.rotation,
                        audio_from=clip.src,
                        audio_start=clip.first,
                        audio_end=clip.end,
                        protect=[clip.src, *protect],
                    )
                for i in range(job.first, job.first + job.count):
                    rgb = clip.cache.load(i)
                    if rgb is None:
                        raise errors.OutputError(f"the segment cache {clip.cache.folder} lost frame {i}")
                    clip.shape = rgb.shape
                    clip.writer.write(rgb, clip.times[i] - clip.first)
                    clip.frames += 1
                clip.flushed += 1
            if clip.flushed == len(clip.segments) and clip.writer is not None:
                clip.writer.close()
                clip.writer = None
                clip.cache.remove()

        def handle(job: SegmentJob, result: tuple[list[float], list[bytes], str]) -> None:
            nonlocal count
            times, frames, error = result
            clip = clips[job.clip]
            if error:
                raise InputError(error)
            if len(frames) != job.count:
                raise InputError(
                    f"cannot read {clip.src}: segment {job.number} decoded {len(frames)} frames, expected {job.count}"
                )
            for k, data in enumerate(frames):
                clip.cache.store_png(job.first + k, data)
            io.write_atomic(clip.cache.folder / f"segment{job.number:05d}.json", json.dumps(times).encode())
            clip.done.add(job.number)
            count += job.count
            reporter.step(count, message=clip.src.name)
            flush(clip)

        video_options = {k: v for k, v in options.items() if k != "max_size"}
        spawn = _spawner(ray, settings.worker_cpus, settings.worker_gpus, _style_blobs(styles), method, video_options)
        todo = [job for clip in clips for job in clip.segments if job.number not in clip.done]
        try:
            for clip in clips:
                flush(clip)  # clips whose segments were all cached
            run_pool(ray, spawn, slots, todo, lambda actor, job: actor.segment.remote(job), handle)
        except BaseException:
            for clip in clips:
                if clip.writer is not None:
                    clip.writer.abort()
            raise
    seconds = time.perf_counter() - t0
    records = []
    for clip in clips:
        h, w = clip.shape[:2] if clip.shape else (0, 0)
        records.append(
            {
                "input": str(clip.src),
                "output": str(clip.dst),
                "frames": clip.frames,
                "resumed_frames": clip.resumed,
                "segments": len(clip.segments),
                "width": w,
                "height": h,
                "fps": round(clip.info.fps, 3),
                "audio": clip.info.audio,
                "rotation": clip.info.rotation,
                "seconds": round(seconds, 3),
                "frames_per_second": round((clip.frames - clip.resumed) / seconds, 3) if seconds > 0 else 0.0,
            }
        )
    return records


def _finished_segments(cache: Any, n: int) -> set[int]:
    """Segments an interrupted run finished (their marker written after their frames), when the cache's key
    matches; an empty set otherwise."""
    try:
        if json.loads((cache.folder / "manifest.json").read_text()).get("key") != cache.key:
            return set()
    except (OSError, ValueError):
        return set()
    return {k for k in range(n) if (cache.folder / f"segment{k:05d}.json").is_file()}
