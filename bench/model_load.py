"""What loading the model costs a fresh process (a worker's pool process, `recog classify`): from
the flatbuffer the model folder ships (LiteRT alone, what a CPU worker does since 2026-12-06)
beside converting its weights at load (TensorFlow and Keras imported, as every CPU worker did
before, and as one still does for a model copied in without its flatbuffer). Rounds alternate.

Each load runs in a new interpreter: wall seconds and CPU seconds until the first answer, and the
process's resident memory then (VmRSS) and at its peak (VmHWM).

    .venv/bin/python bench/model_load.py --json bench/model_load.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model import lite  # noqa: E402
from shared.settings import Settings  # noqa: E402

LOAD = """
import json, pathlib, sys, time
started, cpu = time.perf_counter(), time.process_time()
import numpy as np
from model.recogniser import Recogniser, configure_threads
configure_threads(1)
recogniser = Recogniser(pathlib.Path(sys.argv[1]), "digits")
recogniser.predict_arrays(np.zeros((1, 28, 28, 1), np.float32))
wall, cpu = time.perf_counter() - started, time.process_time() - cpu
status = open("/proc/self/status").read()
kb = lambda key: int(status.split(key + ":")[1].split()[0])
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "rss_mb": kb("VmRSS") / 1024,
                  "peak_rss_mb": kb("VmHWM") / 1024, "tensorflow": "tensorflow" in sys.modules}))
"""


def load(models_dir: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(models_dir)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    shipped = Settings.from_env().models_dir
    with tempfile.TemporaryDirectory() as scratch:
        weights_only = Path(scratch) / "models"
        shutil.copytree(shipped / "digits", weights_only / "digits")
        for name in (lite.LITE_FILE, lite.LITE_STAMP):
            (weights_only / "digits" / name).unlink()
        ways = {
            "shipped flatbuffer (LiteRT)": shipped,
            "weights converted at load (TensorFlow)": weights_only,
        }
        load(shipped)  # the first start reads the libraries from disk: neither way gets it
        runs: dict[str, list[dict]] = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way, folder in ways.items():
                runs[way].append(load(folder))
    keys = ("wall_s", "cpu_s", "rss_mb", "peak_rss_mb")
    medians = {
        way: {k: round(statistics.median(r[k] for r in rs), 3) for k in keys} for way, rs in runs.items()
    }
    print(f"{'':42s}{'wall s':>9s}{'CPU s':>9s}{'RSS MB':>9s}{'peak MB':>9s}  TensorFlow imported")
    for way, m in medians.items():
        imported = {r["tensorflow"] for r in runs[way]}
        print(f"{way:42s}" + "".join(f"{m[k]:9.2f}" for k in keys) + f"  {sorted(imported)}")
    if args.json:
        args.json.write_text(
            json.dumps({"rounds": args.rounds, "medians": medians, "runs": runs}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
