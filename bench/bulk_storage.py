"""What bulk would cost if a chunk's results were stored per chunk instead of per image: the design
issue 12's bulk target points at, measured before anyone builds it.

The worker's own pipeline, as `recog classify` runs it (model/local_files.py: the files read and
prepared in a pool of one process a core, a chunk of 256 ahead of one model call a chunk), over
`bench/throughput.py`'s 10,000 bulk images, with each chunk's results written to a Cassandra of
its own three ways, alternated round by round:

- none: no store at all, the floor of any bulk path on this machine;
- per image: the rows recog writes for a batch job today (intake: its job row and its batch
  line; the end: its job row, audit row, batch line and cache row, 8 jobs to a logged batch),
  which put 3 writes a file in partitions of their own (job row twice, cache row once);
- per chunk: only rows in partitions a chunk shares, one logged batch a chunk (the batch lines
  as queued at intake, then the lines with their results and the audit rows). What that design
  gives up: a job row for each file (GET /v1/jobs/<id>) and the cache of repeated bytes.

The gateway, Celery, Redis and the client are left out on purpose: this is what the storage
design alone allows. Prints images/s and CPU ms an image (this process with its pool, and
Cassandra), medians of the rounds.

    .venv/bin/python bench/bulk_storage.py --json bench/bulk_storage.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import process_cpu  # noqa: E402
from bench.own_cassandra import own_cassandra  # noqa: E402
from bench.throughput import STATE, make_folder  # noqa: E402
from devstack import processes  # noqa: E402
from model.local_files import CHUNK, recognise_files  # noqa: E402
from model.recogniser import Prediction, Recogniser, configure_threads  # noqa: E402
from shared.jobs import NewJob, Outcome, utcnow  # noqa: E402
from shared.settings import PROJECT_ROOT  # noqa: E402
from shared.store import statements as cql  # noqa: E402
from shared.store.cassandra_results import CassandraStore, finish_statements  # noqa: E402

WORKER = "bench"
# The writes of a finished job whose partition is its own: its job row and its cache row.
PER_IMAGE = {
    cql.FINISH_LABELLED,
    cql.FINISH_BLANK,
    cql.FINISH_FAILED,
    cql.REMEMBER_LABELLED,
    cql.REMEMBER_BLANK,
}


def run(store: CassandraStore, how: str, recogniser: Recogniser, files: list[Path]) -> int:
    """Recognise every file, storing each chunk's results the named way; the files read right."""
    batch_id, right, chunk = uuid.uuid4(), 0, []
    for path, result in recognise_files(recogniser, files, 16_000_000):
        chunk.append((path, result))
        if len(chunk) == CHUNK:
            right += _store(store, how, batch_id, recogniser, chunk)
            chunk = []
    if chunk:
        right += _store(store, how, batch_id, recogniser, chunk)
    return right


def _store(store: CassandraStore, how: str, batch_id: uuid.UUID, recogniser: Recogniser, chunk: list) -> int:
    now = utcnow()
    info = recogniser.info
    jobs, outcomes = [], []
    for path, result in chunk:
        data = path.read_bytes()  # the gateway hashed it at intake; both designs record the hash
        job = NewJob(
            uuid.uuid4(),
            path.name,
            hashlib.sha256(data).hexdigest(),
            len(data),
            "PNG",
            0,
            0,
            info.name,
            now,
            batch_id,
        )
        labelled = isinstance(result, Prediction) and result.label is not None
        jobs.append(job)
        outcomes.append(
            Outcome(
                job.job_id,
                job.sha256,
                job.filename,
                WORKER,
                now,
                label=str(result.label) if labelled else None,
                confidence=result.confidence if labelled else None,
                probabilities=list(result.probabilities) if labelled else [],
                reason=None if labelled else "no digit",
                model_name=info.name,
                model_version=info.version,
                batch_id=batch_id,
            )
        )
    if how == "per image":
        store.insert_jobs(jobs)
        store.finish(outcomes)
    elif how == "per chunk":
        queued = [(cql.INSERT_BATCH_ROW, (batch_id, j.filename, j.job_id, "queued")) for j in jobs]
        store.session.execute(store.cql_batch(queued))
        store.session.execute(store.cql_batch([s for o in outcomes for s in _chunk_rows(o)]))
    return sum(1 for path, o in zip(chunk, outcomes, strict=True) if o.label == _label(path[0]))


def _chunk_rows(o: Outcome) -> list[tuple[str, tuple]]:
    """A finished job's batch line and audit row, as CassandraStore.finish writes them; neither
    its job row nor its cache row."""
    return [s for s in finish_statements(o) if s[0] not in PER_IMAGE]


def _label(path: Path) -> str:
    return path.stem.rsplit("-", 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folder = STATE / f"folder-{args.images}"
    make_folder(folder, args.images, PROJECT_ROOT / ".recog" / "cache" / "training")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    settings, stack = own_cassandra("bench-bulk-storage", 29152, 27110)
    configure_threads(2)
    recogniser = Recogniser(settings.models_dir, settings.model)
    ways = ("none", "per image", "per chunk")
    rates: dict[str, list[float]] = {how: [] for how in ways}
    cpu: dict[str, dict[str, list[float]]] = {how: {"pipeline": [], "cassandra": []} for how in ways}
    accuracy: dict[str, float] = {}
    try:
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(settings)
        run(store, "per image", recogniser, files[:1000])  # Cassandra's first writes cost more: warm it
        run(store, "per chunk", recogniser, files[:1000])
        for _ in range(args.rounds):  # alternated, so drift on a shared machine hits each alike
            for how in ways:
                before, mine = process_cpu.snapshot(stack.run_dir), _own_cpu(stack.run_dir)
                started = time.perf_counter()
                right = run(store, how, recogniser, files)
                rates[how].append(len(files) / (time.perf_counter() - started))
                cost = process_cpu.cost_per_image(before, process_cpu.snapshot(stack.run_dir), len(files))
                cpu[how]["pipeline"].append(round((_own_cpu(stack.run_dir) - mine) * 1000 / len(files), 3))
                cpu[how]["cassandra"].append(cost.get("cassandra", 0.0))
                accuracy[how] = round(right / len(files), 4)
        store.close()
    finally:
        stack.down()
    floor = statistics.median(rates["none"])
    heads = ("images/s", "of none", "pipeline CPU ms/img", "Cassandra")
    print(f"\n{'results stored':16s} {heads[0]:>9s} {heads[1]:>8s} {heads[2]:>20s} {heads[3]:>10s}")
    for how in ways:
        rate = statistics.median(rates[how])
        pipeline, cassandra = (statistics.median(cpu[how][part]) for part in ("pipeline", "cassandra"))
        print(f"{how:16s} {rate:9.0f} {rate / floor:8.0%} {pipeline:20.2f} {cassandra:10.2f}")
    print(f"accuracy: {accuracy}")
    if args.json:
        result = {
            "images": len(files),
            "rounds": args.rounds,
            "images_per_second": rates,
            "cpu_ms_per_image": cpu,
        }
        args.json.write_text(json.dumps({**result, "accuracy": accuracy}, indent=2) + "\n")


def _own_cpu(run_dir: Path) -> float:
    """CPU seconds of this process and of its children with theirs (the pool's processes are the
    fork server's children, reaped by it when each run shuts its pool down), Cassandra apart."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    cassandra = processes.running_pid(run_dir, "cassandra")
    ticks = 0
    for proc in Path("/proc").iterdir():
        fields = (
            process_cpu.stat_fields(proc) if proc.name.isdigit() and proc.name != str(cassandra) else None
        )
        if fields is not None and int(fields[1]) == os.getpid():  # ppid
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return me.ru_utime + me.ru_stime + ticks / process_cpu.TICK


if __name__ == "__main__":
    main()
