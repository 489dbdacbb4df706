"""`recog submit-folder` as a person runs it: a real subprocess against the test gateway."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import images
from tests.stack import API, cli_env

RECOG = Path(sys.executable).parent / "recog"
# Each run may take up to its subprocess timeout (300 s), longer than the default per-test limit.
pytestmark = pytest.mark.timeout(650)


def run_folder(gateway, folder, out, *extra):
    env = cli_env(gateway)
    return subprocess.run(
        [str(RECOG), "submit-folder", str(folder), "--out", str(out), "--chunk", "8", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def write_digits(folder, start, stop):
    for i in range(start, stop):
        path = folder / f"set{i % 3}" / f"{i:03d}-{i % 10}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(images.png_digit(i % 10, (i // 10) % 10))


def test_folder_to_csv_and_a_rerun_uploads_only_what_is_new(gateway, tmp_path):
    folder, out = tmp_path / "scans", tmp_path / "results.csv"
    write_digits(folder, 0, 20)
    (folder / "notes.txt").write_text("not an image")
    first = run_folder(gateway, folder, out)
    assert first.returncode == 0, first.stderr
    assert "20 done" in first.stdout and "upload" in first.stderr and "recognise" in first.stderr
    state = json.loads(out.with_name("results.csv.state.json").read_text())
    assert len(state["uploaded"]) == 20

    write_digits(folder, 20, 45)  # the run was "interrupted" before these existed
    second = run_folder(gateway, folder, out)
    assert second.returncode == 0, second.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 45, "files accepted by the first run were uploaded again"
    assert {r["file"] for r in rows} == {p.relative_to(folder).as_posix() for p in folder.rglob("*.png")}
    right = sum(r["label"] == r["file"].rsplit("-", 1)[1].split(".")[0] for r in rows)
    assert right >= 44 and "45 done" in second.stdout
    assert json.loads(out.with_name("results.csv.state.json").read_text())["batch_id"] == state["batch_id"]


def test_empty_folder_is_a_clear_error(gateway, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_folder(gateway, tmp_path / "empty", tmp_path / "out.csv")
    assert result.returncode != 0 and "no images" in result.stderr


def test_a_run_killed_mid_upload_resumes_without_uploading_twice(gateway, tmp_path):
    """SIGKILL after the first chunks were accepted, one more usually in flight (the gateway takes
    it though its client died): the second run finishes the same batch and uploads nothing the
    gateway already holds."""
    import signal
    import time

    folder, out = tmp_path / "scans", tmp_path / "results.csv"
    write_digits(folder, 0, 240)
    state = out.with_name("results.csv.state.json")
    env = cli_env(gateway)
    argv = [str(RECOG), "submit-folder", str(folder), "--out", str(out), "--chunk", "8"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        state.exists() and len(json.loads(state.read_text())["uploaded"]) >= 16
    ):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    uploaded = len(json.loads(state.read_text())["uploaded"])
    assert 16 <= uploaded < 240, "the kill must land mid-upload for this test to prove anything"
    assert not out.exists()
    # The gateway goes on storing the chunk that was in flight; a person restarts later than that.
    batch = f"{gateway}/v1/batches/{json.loads(state.read_text())['batch_id']}"
    totals = [-1]
    while time.monotonic() < deadline and totals[-1] != (total := API.get(batch, timeout=30).json()["total"]):
        totals.append(total)
        time.sleep(1)

    second = run_folder(gateway, folder, out)
    assert second.returncode == 0, second.stderr
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["file"] for r in rows) == sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*.png")
    )
    assert "240 done" in second.stdout, "a file the gateway had accepted was uploaded again"
