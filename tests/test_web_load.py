"""A load test of a real studio server on loopback: 50 clients submit a job at once and follow it over
server-sent events. Every job must finish or be refused with 429/503 and a Retry-After; no 5xx; the server's
peak memory stays under a stated bound. Bounded in count (50 jobs of 128 px) and time (the whole run < 180 s).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from brushwork import samples

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from studio_server import peak_rss_mb, serve  # noqa: E402

CLIENTS = 50
MEMORY_BOUND_MB = 1500  # peak resident memory of the server process (models, 2 workers, queue of 16)
TIME_BOUND_S = 180


def _client_run(base: str, photo: str, barrier: threading.Barrier, out: list, i: int) -> None:
    record: dict = {"i": i}
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            barrier.wait(30)
            body = {
                "content": photo,
                "styles": ["sample:swirls" if i % 2 else "builtin:5"],
                "options": {"max_size": 128},
            }
            r = client.post("/api/jobs", json=body)
            record["status"] = r.status_code
            record["retry_after"] = r.headers.get("retry-after")
            if r.status_code == 202:
                job = r.json()
                with client.stream("GET", job["events"], timeout=120) as stream:
                    record["events_status"] = stream.status_code
                    for line in stream.iter_lines():
                        if line.startswith("data: "):
                            event = json.loads(line[6:])
                            record["last"] = event["type"]
                            record["error"] = event.get("error")
                if record.get("last") == "done":
                    result = client.get(f"/api/jobs/{job['id']}/result")
                    record["result_status"] = result.status_code
                    record["result_bytes"] = len(result.content)
    except Exception as exc:  # recorded and asserted on below
        record["exception"] = repr(exc)
    out.append(record)


@pytest.mark.slow
def test_fifty_concurrent_jobs(tmp_path: Path) -> None:
    start = time.monotonic()
    with serve("--workers", "2", "--queue", "16") as (base, proc):
        photo = httpx.post(base + "/api/uploads", content=samples.SAMPLE_PHOTO.read_bytes()).json()["ref"]
        barrier = threading.Barrier(CLIENTS)
        records: list[dict] = []
        threads = [
            threading.Thread(target=_client_run, args=(base, photo, barrier, records, i)) for i in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIME_BOUND_S)
        assert not any(t.is_alive() for t in threads), "clients still running after the time bound"
        peak = peak_rss_mb(proc.pid)
        health = httpx.get(base + "/api/health").json()
    elapsed = time.monotonic() - start

    assert len(records) == CLIENTS
    assert [r for r in records if "exception" in r] == []
    statuses = [r["status"] for r in records]
    assert all(s in (202, 429, 503) for s in statuses), statuses  # nothing else, and no 5xx beyond 503
    refused = [r for r in records if r["status"] in (429, 503)]
    assert all(r["retry_after"] and int(r["retry_after"]) >= 1 for r in refused)
    accepted = [r for r in records if r["status"] == 202]
    assert len(accepted) >= 18  # two running and sixteen waiting fit at once
    unfinished = [r for r in accepted if r.get("last") != "done" or r.get("result_status") != 200]
    assert unfinished == []
    assert all(r["result_bytes"] > 1000 for r in accepted)
    assert health["jobs"]["running"] == 0 and health["jobs"]["queued"] == 0 and health["jobs"]["reserved_mb"] == 0
    assert peak < MEMORY_BOUND_MB, f"peak memory {peak:.0f} MB"
    assert elapsed < TIME_BOUND_S
    print(f"\nload: {len(accepted)} done, {len(refused)} refused, peak {peak:.0f} MB, {elapsed:.1f} s")
