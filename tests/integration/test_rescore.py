"""Re-scoring a batch with another model on the real stack: a new batch of the same stored images,
compared file by file, a gone image reported for its file, and `recog rescore`."""

import csv
import hashlib
import io
import shutil
import time

import pytest

from shared.image_store import open_image_store
from shared.jobs import utcnow
from tests import images
from tests.integration.test_batches import post_batch, wait_for_batch
from tests.integration.test_cli import recog
from tests.stack import API, check

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
def reversed_digits(settings):
    """The digits model's weights with its labels in reverse: every answer it gives is 9 - d."""
    folder = settings.models_dir / "digits-reversed"
    shutil.copytree(settings.models_dir / "digits", folder)
    (folder / "labels.txt").write_text("".join(f"{d}\n" for d in range(9, -1, -1)))
    yield folder.name
    shutil.rmtree(folder)


def test_a_batch_rescored_with_another_model_is_compared_file_by_file(
    gateway, store, settings, spec, reversed_digits, tmp_path
):
    files = [(f"rescore/{d}.png", images.fresh_png_digit(d, 4)) for d in range(10)]
    files.append(("rescore/cut.png", images.png_digit(1)[:20]))  # refused at upload: never stored
    source = post_batch(gateway, files).json()
    first = wait_for_batch(gateway, source["id"])
    assert (first["done"], first["failed"]) == (10, 1), first
    # One image gone from the store since (as retention removes them): reported for its file.
    image_store = open_image_store(settings, lambda: store.session)
    image_store.delete(hashlib.sha256(files[9][1]).hexdigest())
    kept = {hashlib.sha256(data).hexdigest() for _, data in files[:9]}
    time.sleep(1.1)  # a file's mtime, or a row's stored_at, then tells the two apart
    before = utcnow()
    time.sleep(0.1)

    started = API.post(
        f"{gateway}/v1/batches/{source['id']}/rescore", data={"model": reversed_digits}, timeout=60
    )
    answer = check(spec, started, 202).json()
    older = set(image_store.stored_before(before))
    assert not kept & older, "the re-scored images were left to the collector as unused"
    assert (answer["accepted"], answer["left_out"], answer["source"]) == (10, 1, source["id"])
    assert answer["model"] == reversed_digits and answer["id"] != source["id"]
    ended = wait_for_batch(gateway, answer["id"])
    assert (ended["done"], ended["failed"], ended["total"]) == (9, 1, 10), ended

    compared = check(
        spec, API.get(f"{gateway}/v1/batches/{answer['id']}/compare?format=json", timeout=60), 200
    )
    body = compared.json()
    assert (body["old_model"], body["new_model"]) == ("digits", reversed_digits)
    by_file = {f["file"]: f for f in body["files"]}
    assert len(by_file) == 11
    for d in range(9):
        pair = by_file[f"rescore/{d}.png"]
        assert pair["new_label"] == str(9 - int(pair["old_label"])) and pair["changed"] is True, pair
    gone = by_file["rescore/9.png"]
    assert gone["new_status"] == "failed" and " is not in " in gone["new_error"] and gone["changed"] is None
    assert by_file["rescore/cut.png"]["new_status"] is None, "a file never stored was re-scored"
    summary = body["summary"]
    assert (summary["files"], summary["compared"], summary["changed"], summary["not_rescored"]) == (
        11,
        9,
        9,
        1,
    )
    assert summary["agreement_percent"] == 0.0
    olds = [by_file[f"rescore/{d}.png"]["old_label"] for d in range(9)]
    assert summary["confusion"] == {old: {str(9 - int(old)): olds.count(old)} for old in olds}

    rows = list(
        csv.DictReader(io.StringIO(API.get(f"{gateway}/v1/batches/{answer['id']}/compare", timeout=60).text))
    )
    assert {r["file"]: r["new_label"] for r in rows} == {
        f: (p["new_label"] or "") for f, p in by_file.items()
    }

    # The same from the shell, with the source's own model: every file compared agrees.
    out = tmp_path / "diff.csv"
    typed = recog(settings, "rescore", source["id"], "--model", "digits", "--out", str(out), timeout=300)
    assert typed.returncode == 0, typed.stderr
    assert "100.0 % agree, 0 changed" in typed.stdout, typed.stdout
    saved = list(csv.DictReader(out.open()))
    assert len(saved) == 11 and all(r["changed"] in ("False", "") for r in saved)


def test_compare_wants_a_rescore_and_rescore_a_model(gateway, spec):
    batch = post_batch(gateway, [("r/0.png", images.png_digit(0))]).json()
    wait_for_batch(gateway, batch["id"])
    plain = check(spec, API.get(f"{gateway}/v1/batches/{batch['id']}/compare", timeout=30), 404)
    assert plain.json()["error"]["code"] == "not_a_rescore"
    missing = check(spec, API.post(f"{gateway}/v1/batches/{batch['id']}/rescore", timeout=30), 400)
    assert missing.json()["error"]["code"] == "missing_model"
    stale = API.post(
        f"{gateway}/v1/batches/{batch['id']}/rescore", data={"model": "digits:000000000000"}, timeout=30
    )
    assert check(spec, stale, 400).json()["error"]["code"] == "unknown_model_version"
