"""Count the parts of a batch that a chunk touched, once the chunk has ended (shared/parts.py).

A part's counts are written whole from its members' lines, so a chunk run twice, sent again by the
sweeper or by Celery, writes the same numbers. What this run just finished is known without a
read; only members it did not finish (an earlier run's, or a resent chunk's others) are read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from shared.jobs import Outcome
from shared.messaging import JobMessage
from shared.parts import count_lines

log = logging.getLogger(__name__)


def count_parts(store, messages: Sequence[JobMessage], outcomes: Iterable[Outcome] = ()) -> int:
    """How many parts were counted."""
    known = {o.job_id: _line(o) for o in outcomes}
    counted = 0
    for batch_id, part_id in sorted({(m.batch_id, m.part) for m in messages if m.part is not None}, key=str):
        members = store.part_members(batch_id, part_id)
        if members is None:
            log.error("part %s of batch %s has no members; its progress is not counted", part_id, batch_id)
            continue
        unknown = [k for k in members if k.job_id not in known]
        lines = [known[k.job_id] for k in members if k.job_id in known]
        lines += store.batch_lines(unknown) if unknown else []
        store.count_part(batch_id, part_id, count_lines(lines))
        counted += 1
    return counted


def _line(o: Outcome) -> dict:
    return {"status": o.status, "cached": o.cached, "finished_at": o.finished_at}
