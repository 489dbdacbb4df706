"""In-memory stand-ins for unit tests of pure code (the pipeline, the sweeper, task retries).

MemoryStore keeps, in dicts, what the pipeline and the sweeper use of a ResultStore, and hands
rows back the way the Cassandra adapter does (naive UTC times, messages rebuilt from JSON); the
integration tests run the same paths on the real database. Fakes here never stand in for a fault
that could be produced for real.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gateway.auth import KeyRing
from model.recogniser import BatchOutcome, Prediction
from model.registry import ModelInfo, UnknownModel
from shared.decode import ImageRejected
from shared.jobs import DONE, QUEUED, RUNNING, minute_bucket, seen_status, utcnow
from shared.keys import SCOPES, ApiKey, new_key
from shared.messaging import stored_messages
from shared.parts import PartCount, refused_count
from shared.store import StoreUnavailable


class MemoryKeys:
    """The api_keys table of shared/store/api_keys.py, in a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, ApiKey] = {}

    def add(self, key: ApiKey) -> None:
        self.rows[key.key_id] = key

    def get(self, key_id: str) -> ApiKey | None:
        return self.rows.get(key_id)

    def every(self) -> list[ApiKey]:
        return sorted(self.rows.values(), key=lambda k: (k.name, k.created_at))

    def revoke(self, key_id: str, at) -> None:
        self.rows[key_id] = dataclasses.replace(self.rows[key_id], revoked_at=at)


def memory_keyed_client(app, scopes=SCOPES, tenant: str = "tenant-a"):
    """A Flask test client whose requests carry a key its gateway knows: the app's KeyRing reads
    it from MemoryKeys, as these tests run with Cassandra unreachable."""
    table = MemoryKeys()
    row, key = new_key("test-key", tenant, tuple(scopes), utcnow())
    table.add(row)
    app.extensions["recog"].keys = KeyRing(lambda: table, seconds=10)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


class MemoryStore:
    """The job, open-work, lease and cache rows of a ResultStore, in dicts; batch lines by job id
    (status, cached, finished_at) and batch parts by part id. `down = True` makes every call raise
    StoreUnavailable."""

    def __init__(self) -> None:
        self.jobs: dict[uuid.UUID, dict] = {}
        self.open: dict[str, dict[uuid.UUID, dict]] = {}
        self.settled: set[str] = set()
        self.lease_rows: dict[str, dict] = {}
        self.cache: dict[tuple[str, str, str], dict] = {}
        self.lines: dict[uuid.UUID, dict] = {}
        self.parts: dict[uuid.UUID, PartCount] = {}
        self.members: dict[uuid.UUID, tuple] = {}
        self.part_batch: dict[uuid.UUID, uuid.UUID] = {}
        self.marked_running: list = []
        self.upload_keys: dict[tuple[str, str], dict] = {}
        self.starts: dict[uuid.UUID, list[str]] = {}
        self.statuses_read = 0
        # A batch's cancel as its header keeps it: True for the whole batch, else its jobs' ids.
        self.cancels: dict[uuid.UUID, set | bool] = {}
        self.cancels_read = 0
        self.keys = MemoryKeys()
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the memory store is down (a test said so)")

    def close(self) -> None:
        pass

    def ping(self) -> None:
        self._check()

    def insert_jobs(self, jobs, work=(), refused=(), parts=()) -> None:
        self._check()
        for w in work:
            self.resent(minute_bucket(w.sent_at), w)
        for part in parts:  # as the adapter's INSERT: members, and a total beside any counts
            self.members[part.part_id] = part.members
            self.part_batch[part.part_id] = part.batch_id
            if part.refused_at is None:
                count = self.parts.get(part.part_id, PartCount(0))
                self.parts[part.part_id] = dataclasses.replace(count, total=len(part.members))
        for job in jobs:
            self.jobs[job.job_id] = {"job_id": job.job_id, "status": QUEUED, "sha256": job.sha256}
            if job.batch_id is not None:
                self.lines[job.job_id] = {"status": QUEUED}
        for job, outcome in refused:
            self.jobs[job.job_id] = {"job_id": job.job_id, "sha256": job.sha256}
            self.finish([outcome])
        for part in parts:
            if part.refused_at is not None:
                self.parts[part.part_id] = refused_count(part)

    def record_waited(self, job, work) -> None:
        self._check()
        self.resent(minute_bucket(work.sent_at), work)
        # Stamped before anything the worker wrote: what is there already wins.
        self.jobs[job.job_id] = {
            "job_id": job.job_id,
            "status": QUEUED,
            "sha256": job.sha256,
        } | self.jobs.get(job.job_id, {})

    def get_job(self, job_id):
        self._check()
        return self.jobs.get(job_id)

    def claim_upload(self, scope, key, seed, claimed_at, ttl):
        self._check()
        row = self.upload_keys.get((scope, key))
        if row is not None:
            return dict(row)
        self.upload_keys[(scope, key)] = {
            "seed": seed,
            "claimed_at": claimed_at,
            "fingerprint": None,
            "answer": None,
        }
        return None

    def update_upload(self, scope, key, was, row, ttl) -> bool:
        self._check()
        current = self.upload_keys.get((scope, key))
        if current is None or current["claimed_at"] != was:
            return False
        current.update(row)
        return True

    def start_work(self, work_id, worker) -> int:
        self._check()
        earlier = self.starts.setdefault(work_id, [])
        earlier.append(worker)
        return len(earlier) - 1

    def look_up(self, job_ids, recall_keys, meanwhile=None):
        self._check()
        if meanwhile is not None:
            meanwhile()
        self.statuses_read += len(job_ids)
        rows = {j: self.jobs[j] for j in job_ids if j in self.jobs}
        statuses = {j: seen_status(row["status"], row.get("cancel_requested_at")) for j, row in rows.items()}
        return statuses, [self.cache.get(tuple(key)) for key in recall_keys]

    def cancel_job(self, job, at) -> None:
        self._check()
        self.jobs[job["job_id"]]["cancel_requested_at"] = at
        if job.get("batch_id") is not None and self.cancels.get(job["batch_id"]) is not True:
            self.cancels.setdefault(job["batch_id"], set()).add(job["job_id"])

    def cancel_batch(self, batch_id, at) -> None:
        self._check()
        self.cancels[batch_id] = True

    def cancelled_batch_jobs(self, keys):
        self._check()
        self.cancels_read += 1
        return {
            k.job_id
            for k in keys
            if self.cancels.get(k.batch_id) is True or k.job_id in (self.cancels.get(k.batch_id) or ())
        }

    def mark_running(self, keys, worker, started_at, wait=True):
        self._check()
        self.marked_running.extend(keys)
        for key in keys:  # as the adapter does: a batch job's line stays as it is, its part counts it
            if key.batch_id is None:  # an UPDATE makes the row if it is not there
                self.jobs.setdefault(key.job_id, {"job_id": key.job_id})["status"] = RUNNING
        for (batch, part), n in Counter((k.batch_id, k.part) for k in keys if k.part is not None).items():
            # An UPDATE makes the row if it is not there.
            self.parts[part] = dataclasses.replace(self.parts.get(part, PartCount(0)), running=n)
            self.part_batch[part] = batch
        return []

    def finish(self, outcomes, after=(), pace=None) -> None:
        self._check()
        for o in outcomes:
            row = self.jobs.setdefault(o.job_id, {"job_id": o.job_id})
            row.update(status=o.status, label=o.label, error=o.error, worker=o.worker)
            if o.batch_id is not None:
                line = {"status": row["status"], "cached": o.cached, "finished_at": o.finished_at}
                self.lines[o.job_id] = line
            if o.status == DONE and not o.cached:
                self.cache[(o.sha256, o.model_name, o.model_version, o.tenant)] = {
                    "label": o.label,
                    "confidence": o.confidence,
                    "probabilities": o.probabilities,
                    "reason": o.reason,
                }

    def open_work(self, minute):
        self._check()
        return [
            {name: row[name] for name in ("work_id", "chunk", "sent_at")}
            for row in self.open.get(minute, {}).values()
        ]

    def work_messages(self, minute, work_ids):
        self._check()
        rows = self.open.get(minute, {})
        return {w: stored_messages(rows[w]["messages"]) for w in work_ids if w in rows}

    def resent(self, minute, work) -> None:
        self._check()
        # Stored as the adapter stores it: JSON text and a naive UTC time.
        self.open.setdefault(minute, {})[work.work_id] = {
            "work_id": work.work_id,
            "chunk": work.chunk,
            "messages": work.to_json(),
            "sent_at": work.sent_at.replace(tzinfo=None),
        }

    def settled_minutes(self, day):
        self._check()
        return {minute for minute in self.settled if minute.startswith(day)}

    def settle(self, minutes) -> None:
        self._check()
        self.settled.update(minutes)

    def renew_lease(self, instance, held, newest_sent, ttl) -> None:
        self._check()
        self.lease_rows[instance] = {
            "instance": instance,
            "held": set(held),
            "newest_sent": dict(newest_sent),
        }

    def leases(self):
        self._check()
        return list(self.lease_rows.values())

    def batch_parts(self, batch_id):
        self._check()
        return {p: count for p, count in self.parts.items() if self.part_batch[p] == batch_id}

    def part_count(self, batch_id, part_id):
        self._check()
        return self.parts.get(part_id)

    def part_members(self, batch_id, part_id):
        self._check()
        return self.members.get(part_id)

    def batch_lines(self, keys):
        self._check()
        return [dict(self.lines.get(k.job_id, {})) for k in keys]

    def count_part(self, batch_id, part_id, count) -> None:
        self._check()
        self.parts[part_id] = count
        self.part_batch[part_id] = batch_id


@dataclass
class FakeRecogniser:
    """Reads its answer from the bytes: b"digit:7" is a 7, b"blank" no digit, anything else is
    refused as an image, the way a truncated upload is."""

    info: ModelInfo = field(
        default_factory=lambda: ModelInfo("digits", "v1", Path("none"), tuple("0123456789"))
    )
    calls: list[list[bytes]] = field(default_factory=list)  # what each model call was given
    prepared: list[bytes] = field(default_factory=list)  # every image prepared, in order

    def prepare(self, blob: bytes, max_pixels: int) -> bytes:
        self.prepared.append(blob)
        return blob  # the answer is read from the bytes when the model is called

    def recognise_bytes(self, blobs: list[bytes], max_pixels: int) -> BatchOutcome:
        return self.recognise_prepared([self.prepare(b, max_pixels) for b in blobs])

    def recognise_prepared(self, blobs: list[bytes]) -> BatchOutcome:
        self.calls.append(list(blobs))
        answers = [self._answer(b) for b in blobs]
        # Like the real one: the batch is what reached the model, not what failed or had no ink.
        inked = sum(not isinstance(a, ImageRejected) and a.label is not None for a in answers)
        return BatchOutcome(answers, inference_ms=2.5, batch_size=inked)

    @staticmethod
    def _answer(data: bytes):
        if data.startswith(b"digit:"):
            label = data.decode()[6:]
            probabilities = [0.9 if str(d) == label else 0.1 / 9 for d in range(10)]
            return Prediction(label, 0.9, probabilities)
        if data == b"blank":
            return Prediction(None, None, [], reason="no digit found")
        return ImageRejected("the PNG image is damaged or truncated", code="corrupt_image")


class FakeRedis:
    """Records what the pipeline announces, and what it takes off tenants' queued sets."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.removed: list[tuple[str, str]] = []
        self.expiring: dict[str, float] = {}  # key: when it expires (time.monotonic())

    def set(self, key: str, value, px: int) -> None:
        self.expiring[key] = time.monotonic() + px / 1000

    def exists(self, key: str) -> int:
        return int(self.expiring.get(key, 0) > time.monotonic())

    def pipeline(self, transaction: bool = False) -> FakeRedis:
        return self

    def publish(self, channel: str, message: str) -> None:
        self.published.append(channel)

    def zrem(self, key: str, member: str) -> None:
        self.removed.append((key, member))

    def execute(self) -> None:
        pass


class FakeRuntime:
    """What run_jobs needs of a WorkerRuntime: store, images, redis, settings and models by name."""

    def __init__(self, settings, images, store: MemoryStore | None = None) -> None:
        self.settings = settings
        self.images = images
        self.store = store or MemoryStore()
        self.redis = FakeRedis()
        self.model = FakeRecogniser()

    def recogniser(self, name: str) -> FakeRecogniser:
        if name != self.model.info.name:
            raise UnknownModel(f"no model called {name!r}; available: digits")
        return self.model
