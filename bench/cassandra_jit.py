"""Cassandra's CPU an image through a fresh stack's first 32,000 images, by JVM thread, with Java's
default compilers (what recog runs: the quick one, C1, then the optimising one, C2) and with the
quick one only (-XX:TieredStopAtLevel=1): what compiling costs, and what the optimised code saves.

For each setting in turn (alternated over --rounds), `bench/throughput.py`'s stack starts fresh,
takes its 2,000-image warm-up folder, then its 10,000-image folder three times through `recog
submit-folder` (each time with new bytes: the same pictures, a byte more at the end, so no result
comes from the cache). Prints images a second and Cassandra's CPU ms an image, in all and by its
compiler threads; --json FILE writes every figure, every thread and every process. Cassandra's CPU
in all is its process's, exited threads included; a thread's is read only while it lives (Java 17
ends idle compiler threads where it started more than one of a kind, not on 2 cores).

    .venv/bin/python bench/cassandra_jit.py --json bench/cassandra_jit.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT_DIR))

from bench import process_cpu, throughput  # noqa: E402
from devstack import cassandra, processes  # noqa: E402
from tests import images  # noqa: E402

QUICK = "-XX:TieredStopAtLevel=1"
SETTINGS = ("both compilers", "quick only")
FOLDERS = 3


def thread_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of each kind of thread of a process, by the name before its number."""
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if name[:2] in ("C1", "C2"):
            kind = name[:2]
        else:  # SharedPool-Worker-3, GC Thread#1, COMMIT-LOG-WRITER: the words before the number
            kind = name.split("-")[0].split(":")[0].rstrip("#0123456789 ")
        ticks = int(fields[11]) + int(fields[12])
        seconds[kind] = seconds.get(kind, 0.0) + ticks / process_cpu.TICK
    return seconds


def with_bytes_added(source: Path, target: Path, extra: int) -> Path:
    """The folder's files with `extra` zero bytes after their end (after PNG's IEND and JPEG's EOI,
    where decoders stop reading): new bytes, the same pictures."""
    shutil.rmtree(target, ignore_errors=True)
    for path in source.rglob("*.*"):
        copy = target / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes() + b"\0" * extra)
    return target


def one_run(setting: str, folder: Path) -> list[dict]:
    """A fresh stack under `setting`: the warm-up folder, then the folder FOLDERS times."""
    default = cassandra.command

    def command(*args, **kwargs) -> list[str]:
        argv = default(*args, **kwargs)
        return [argv[0], QUICK, *argv[1:]] if setting == "quick only" else argv

    cassandra.command = command  # devstack.stack calls it through the module
    stack = throughput.bench_stack()
    try:
        throughput.start_fresh(stack)
        key = stack.local_key()
        blobs = [images.png_digit(d, i) for d in range(10) for i in range(10)]
        warmup = throughput.STATE / "warmup"
        throughput.make_unique_folder(warmup, blobs)
        pid = processes.running_pid(stack.run_dir, "cassandra")
        phases = []
        for n in range(FOLDERS + 1):
            sent = warmup if n == 0 else with_bytes_added(folder, throughput.STATE / "jit-folder", n)
            before = thread_seconds(pid)
            figures, cost = throughput.costed(
                stack.run_dir, lambda sent=sent: throughput.measure_bulk(stack.settings, sent, key), "images"
            )
            after = thread_seconds(pid)
            count = figures["images"]
            threads = {k: round((after[k] - before.get(k, 0.0)) * 1000 / count, 3) for k in after}
            phases.append(
                {
                    "images": count,
                    "images_per_second": figures["images_per_second"],
                    "cpu_ms_per_image": cost,
                    "cassandra_threads_ms_per_image": {k: v for k, v in threads.items() if v >= 0.005},
                }
            )
            print(f"  {setting}, folder {n}: {figures['images_per_second']} images/s", flush=True)
        return phases
    finally:
        stack.down()
        cassandra.command = default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    folder = throughput.STATE / "folder-10000"
    throughput.make_folder(folder, 10_000, throughput.PROJECT_ROOT / ".recog" / "cache" / "training")
    runs: dict[str, list] = {setting: [] for setting in SETTINGS}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            runs[setting].append(one_run(setting, folder))
    names = ["warm-up, images 1-2,000"] + [
        f"images {2_001 + 10_000 * n:,}-{12_000 + 10_000 * n:,}" for n in range(FOLDERS)
    ]
    heads = ("images/s", "Cassandra", "C2", "C1", "rest")
    print(f"\n{'phase':28s} {'setting':15s} " + " ".join(f"{h:>9s}" for h in heads))
    for n, name in enumerate(names):
        for setting in SETTINGS:
            for phases in runs[setting]:
                phase = phases[n]
                threads = phase["cassandra_threads_ms_per_image"]
                c1, c2 = threads.get("C1", 0.0), threads.get("C2", 0.0)
                total = phase["cpu_ms_per_image"]["cassandra"]
                rest = total - c1 - c2
                rate = phase["images_per_second"]
                print(f"{name:28s} {setting:15s} {rate:9.1f} {total:9.2f} {c2:9.2f} {c1:9.2f} {rest:9.2f}")
    print("(CPU ms an image; C2, C1: Cassandra's compiler threads; rest: its other threads)")
    if args.json:
        args.json.write_text(json.dumps({"phases": names, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
