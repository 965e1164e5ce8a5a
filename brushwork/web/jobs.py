"""The studio's job queue: bounded concurrency, bounded memory, cancellation, expiry.

- ``workers`` threads run jobs (the methods release the GIL in their native code); at most ``max_queued`` jobs
  wait. A job beyond that is refused with :class:`Overloaded` (HTTP 429), and one whose estimated memory would
  take the admitted jobs over ``memory_mb`` with :class:`Overloaded` (HTTP 503); both carry a Retry-After.
- A job's events (queued, started, progress, done, failed, cancelled) are numbered; server-sent events replay
  them from any number. Only the newest event keeps its preview image, so a long optimization stays small.
- Cancelling a queued job removes it; a running job stops at its next progress event (the progress callback
  raises :class:`Cancelled`), and its worker takes the next job.
- Finished jobs are forgotten and their result files deleted ``ttl`` seconds after they finish.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("brushwork.studio")

TERMINAL = frozenset({"done", "failed", "cancelled"})
MAX_EVENTS = 500


class Cancelled(Exception):
    """Raised inside a job's progress callback once the job is cancelled: unwinds the method's loop."""


class Overloaded(Exception):
    """The queue is full (status 429) or the memory budget is taken (status 503)."""

    def __init__(self, message: str, status: int, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Job:
    id: str
    kind: str  # "image" (a method on a photo) or "video"
    method: str
    summary: dict[str, Any]  # what was asked, as shown by GET /api/jobs/{id}
    work: Callable[[Job], Path]  # runs in a worker; returns the result file
    cost_mb: int
    created: float = field(default_factory=time.time)
    state: str = "queued"
    error: str | None = None
    result: Path | None = None
    started: float | None = None
    finished: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    _events: deque = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    _seq: itertools.count = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, kind: str, **data: Any) -> None:
        with self._lock:
            if data.get("preview") is not None:
                for event in self._events:  # only the newest event keeps its preview
                    event.pop("preview", None)
            self._events.append({"seq": next(self._seq), "type": kind, **data})

    def events_after(self, seq: int) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self._events if e["seq"] > seq]

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def check_cancelled(self) -> None:
        if self.cancel_requested.is_set():
            raise Cancelled

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "state": self.state,
            "created": self.created,
            "request": self.summary,
        }
        if self.started is not None:
            out["started"] = self.started
        if self.finished is not None:
            out["finished"] = self.finished
            out["seconds"] = round(self.finished - (self.started or self.created), 3)
        if self.error:
            out["error"] = self.error
        if self.state == "done":
            out["result"] = f"/api/jobs/{self.id}/result"
        return out


class JobQueue:
    def __init__(
        self,
        *,
        workers: int,
        max_queued: int,
        memory_mb: int,
        ttl: float,
        max_kept: int = 1000,
        private: Path | None = None,
    ) -> None:
        self.workers = workers
        self.private = private  # the server's own folder: never named in a message to a user
        self.max_queued = max_queued
        self.memory_mb = memory_mb
        self.ttl = ttl
        self.max_kept = max_kept
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._reserved_mb = 0
        self._waiting = 0
        self._running = 0
        self._durations: deque[float] = deque(maxlen=20)
        self._threads = [
            threading.Thread(target=self._worker, name=f"studio-worker-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    # -- admission

    def retry_after(self) -> int:
        """Seconds until a slot is likely to free: the mean recent job time times the queue per worker."""
        mean = sum(self._durations) / len(self._durations) if self._durations else 2.0
        return max(1, min(120, math.ceil(mean * (1 + self._waiting / max(1, self.workers)))))

    def submit(self, job: Job) -> Job:
        with self._lock:
            if self._waiting >= self.max_queued:
                raise Overloaded(
                    f"the queue is full ({self._waiting} jobs waiting); try again later", 429, self.retry_after()
                )
            if self._reserved_mb + job.cost_mb > self.memory_mb:
                if job.cost_mb > self.memory_mb:
                    raise Overloaded(
                        f"this job needs about {job.cost_mb} MB, more than this server's {self.memory_mb} MB: "
                        "use a smaller max_size",
                        503,
                        self.retry_after(),
                    )
                raise Overloaded("the server's memory budget is taken; try again later", 503, self.retry_after())
            self._reserved_mb += job.cost_mb
            self._waiting += 1
            self._jobs[job.id] = job
        job.emit("queued", position=self._waiting)
        log.info("job queued", extra={"job": job.id, "method": job.method, "kind": job.kind, "cost_mb": job.cost_mb})
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job: Job) -> None:
        with self._lock:
            if job.terminal:
                return
            job.cancel_requested.set()
            queued = job.state == "queued"
        log.info("job cancel requested", extra={"job": job.id, "state": job.state})
        if queued:  # its worker will skip it; the user sees it cancelled now
            self._finish(job, "cancelled")

    # -- running

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._waiting -= 1
                self._running += 1
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running -= 1
                    self._reserved_mb -= job.cost_mb

    def _run(self, job: Job) -> None:
        with self._lock:
            if job.cancel_requested.is_set() or job.terminal:
                return
            job.state, job.started = "running", time.time()
        job.emit("started")
        log.info("job started", extra={"job": job.id, "method": job.method})
        try:
            result = job.work(job)
            job.check_cancelled()
        except Cancelled:
            self._finish(job, "cancelled")
        except Exception as exc:  # one line for the user; the trace goes to the log only for our own bugs
            from brushwork.errors import BrushworkError

            message = str(exc)
            if (
                self.private is not None
            ):  # "cannot read /tmp/brushwork-studio-x/<id>.clip: ..." → "cannot read <id>.clip"
                message = message.replace(f"{self.private}{os.sep}", "").replace(str(self.private), "the server")
            message = " ".join(message.split())[:300] or type(exc).__name__
            if isinstance(exc, BrushworkError):
                self._finish(job, "failed", message)
            elif isinstance(exc, MemoryError) or "memory" in message.lower():
                self._finish(job, "failed", "out of memory: use a smaller max_size")
            else:
                log.exception("job crashed", extra={"job": job.id})
                self._finish(job, "failed", f"internal error ({type(exc).__name__})")
        else:
            job.result = result
            self._finish(job, "done")

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.finished = time.time()
        job.error = error
        if state != "done" and job.result is not None:
            job.result.unlink(missing_ok=True)
            job.result = None
        job.state = state
        if state == "done" and job.started is not None:
            self._durations.append(job.finished - job.started)
        job.emit(
            state,
            **({"error": error} if error else {}),
            **({"result": f"/api/jobs/{job.id}/result"} if state == "done" else {}),
        )
        log.info(
            f"job {state}",
            extra={
                "job": job.id,
                "method": job.method,
                "seconds": round(job.finished - job.created, 3),
                "error": error,
            },
        )

    # -- housekeeping

    def expire(self, now: float | None = None) -> int:
        """Forget finished jobs older than ``ttl`` (and beyond ``max_kept``), deleting their results."""
        now = time.time() if now is None else now
        with self._lock:
            done = sorted((j for j in self._jobs.values() if j.terminal), key=lambda j: j.finished or 0)
            old = [j for j in done if (j.finished or 0) < now - self.ttl]
            extra = len(self._jobs) - len(old) - self.max_kept
            if extra > 0:
                old += [j for j in done if j not in old][:extra]
            for job in old:
                self._jobs.pop(job.id, None)
        for job in old:
            if job.result is not None:
                job.result.unlink(missing_ok=True)
                job.result = None
            job.state = "expired" if job.state == "done" else job.state
        if old:
            log.info("jobs expired", extra={"count": len(old)})
        return len(old)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "workers": self.workers,
                "running": self._running,
                "queued": self._waiting,
                "max_queued": self.max_queued,
                "reserved_mb": self._reserved_mb,
                "memory_mb": self.memory_mb,
                "kept": len(self._jobs),
            }

    def shutdown(self) -> None:
        with self._lock:
            pending = [j for j in self._jobs.values() if not j.terminal]
        for job in pending:
            job.cancel_requested.set()
        for _ in self._threads:
            self._queue.put(None)
