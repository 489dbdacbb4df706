"""Task events for the single-image jobs celery-batches gathered into one model call.

celery-batches 0.11 sends no task events for the requests it gathers (support was merged upstream
after that release), so Flower would never list a single-image job (the gateway sends no
task-sent event either: shared/messaging.py). After each flush this sends, per request, the
received/started/succeeded events a plain task would have sent, as one message from one event
dispatcher per pool process. Best effort: a lost event costs a stale row in Flower, never a job.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

_dispatchers: dict[str, object] = {}


def report_flush(app, requests, started: float, hostname: str) -> None:
    """started: time.time() when the flush began; runtime is measured from it for every request."""
    finished = time.time()
    try:
        dispatcher = _dispatchers.get(hostname)
        if dispatcher is None:
            # Buffered: one message of all the flush's events ("task.multi"), not three per job.
            dispatcher = app.events.Dispatcher(
                app.connection_for_write(),
                hostname=hostname,
                enabled=True,
                buffer_group=["task"],
                buffer_limit=10**6,
            )
            _dispatchers[hostname] = dispatcher
        for request in requests:
            dispatcher.send(
                "task-received",
                uuid=request.id,
                name=request.name,
                args=(request.request_dict or {}).get("argsrepr") or "",
                kwargs="{}",
                timestamp=started,
            )
            dispatcher.send("task-started", uuid=request.id, timestamp=started)
            dispatcher.send(
                "task-succeeded",
                uuid=request.id,
                result=f"batch of {len(requests)}",
                runtime=finished - started,
                timestamp=finished,
            )
        dispatcher.flush()
    except Exception as exc:
        broken = _dispatchers.pop(hostname, None)  # the next flush connects afresh
        if broken is not None:
            broken.close()
        log.warning("could not send task events for %d gathered jobs: %s", len(requests), exc)
