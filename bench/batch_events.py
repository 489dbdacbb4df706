"""Cost of the Flower task events sent for gathered single-image jobs (workers/batch_events.py).

Baseline: one event message per event (three per job), as a plain Celery dispatcher sends them.
recog: the flush's events buffered into one message. Against a private redis-server.

    .venv/bin/python bench/batch_events.py --json bench/batch_events.json
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from celery import Celery  # noqa: E402

from workers.batch_events import report_flush  # noqa: E402

ROUNDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unbuffered(dispatcher, requests) -> None:
    started = time.time()
    for request in requests:
        dispatcher.send("task-received", uuid=request.id, name=request.name, timestamp=started)
        dispatcher.send("task-started", uuid=request.id, timestamp=started)
        dispatcher.send("task-succeeded", uuid=request.id, runtime=0.0, timestamp=time.time())


def per_flush_ms(send, requests) -> float:
    send(requests[:1])  # connect first
    started = time.perf_counter()
    for _ in range(ROUNDS):
        send(requests)
    return (time.perf_counter() - started) / ROUNDS * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        app = Celery("bench", broker=f"redis://127.0.0.1:{port}/0")
        plain = app.events.Dispatcher(app.connection_for_write(), hostname="bench@host", enabled=True)
        rows = []
        for size in (1, 8, 64):
            requests = [
                SimpleNamespace(id=f"job-{i}", name="recog.recognise", request_dict={"argsrepr": "['x']"})
                for i in range(size)
            ]
            base = per_flush_ms(lambda r: unbuffered(plain, r), requests)
            ours = per_flush_ms(lambda r: report_flush(app, r, time.time(), "bench@host"), requests)
            rows.append(
                {"jobs_per_flush": size, "one_message_per_event_ms": base, "one_message_per_flush_ms": ours}
            )
    finally:
        redis.terminate()
        redis.wait()
    print(f"{'jobs per flush':>15} {'per event (ms)':>15} {'per flush (ms)':>15} {'speed-up':>9}")
    for row in rows:
        base, ours = row["one_message_per_event_ms"], row["one_message_per_flush_ms"]
        print(f"{row['jobs_per_flush']:>15} {base:>15.2f} {ours:>15.2f} {base / ours:>8.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"rounds": ROUNDS, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
