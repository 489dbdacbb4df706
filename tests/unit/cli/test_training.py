"""`recog train` and `recog evaluate` as a person runs them: one epoch each, into a models folder of
the test's own (the shipped digits model is never touched)."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from model import lite
from model.registry import LABELS_FILE, WEIGHTS_FILE, describe

RECOG = Path(sys.executable).parent / "recog"
# Three one-epoch trainings (about 20 s each on two cores) and an evaluation.
pytestmark = pytest.mark.timeout(400)


def recog(models_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RECOG_MODELS_DIR": str(models_dir)}
    result = subprocess.run([str(RECOG), *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def weights(path: Path) -> list[np.ndarray]:
    """The layer arrays inside a .keras file, without building a model."""
    with zipfile.ZipFile(path) as zf, h5py.File(zf.open("model.weights.h5")) as h5:
        arrays = []
        h5.visititems(lambda _, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    return models, recog(models, "train", "--epochs", "1", "--name", "one-epoch")


def test_training_writes_a_model_the_service_can_load(trained):
    models, result = trained
    folder = models / "one-epoch"
    report = json.loads((folder / "training.json").read_text())
    assert (report["epochs"], report["n_held_out"]) == (1, 2000) and report["n_train"] > 7000
    assert report["held_out_accuracy"] >= 0.85, "one epoch should read most held-out digits"
    assert f"held-out accuracy {report['held_out_accuracy']:.4f} on 2000 digits" in result.stdout
    assert (folder / LABELS_FILE).read_text().split() == [str(d) for d in range(10)]
    with zipfile.ZipFile(folder / WEIGHTS_FILE) as zf, h5py.File(zf.open("model.weights.h5")) as h5:
        assert "optimizer" not in h5, "serving never needs the optimiser's state: a third of the file"
    # The flatbuffer CPU workers run, made from these very weights, and nothing left half-written.
    assert lite.converted(describe(models, "one-epoch")) is not None
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [WEIGHTS_FILE, LABELS_FILE, "training.json", lite.LITE_FILE, lite.LITE_STAMP]
    )


def test_evaluate_reads_back_the_accuracy_training_reported(trained):
    """Evaluation goes through the serving Recogniser, training through the Keras model: the same
    number means the saved file is what was trained."""
    models, _ = trained
    report = json.loads((models / "one-epoch" / "training.json").read_text())
    out = recog(models, "evaluate", "--name", "one-epoch").stdout
    assert f"held-out accuracy: {report['held_out_accuracy']:.4f} (2000 digits)" in out
    confusion = [line for line in out.splitlines() if re.match(r"\s+\d: ", line)]
    assert len(confusion) == 10
    assert sum(int(n) for line in confusion for n in line.split(":")[1].split()) == 2000


def test_the_same_run_twice_gives_the_same_weights(trained):
    models, _ = trained
    recog(models, "train", "--epochs", "1", "--name", "again")
    first, second = weights(models / "one-epoch" / WEIGHTS_FILE), weights(models / "again" / WEIGHTS_FILE)
    assert len(first) == len(second) > 0
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_continue_starts_from_the_saved_weights(trained):
    models, _ = trained
    shutil.copytree(models / "one-epoch", models / "continued")
    one_epoch = json.loads((models / "continued" / "training.json").read_text())
    recog(models, "train", "--epochs", "1", "--continue", "--name", "continued")
    after = weights(models / "continued" / WEIGHTS_FILE)
    assert not all(
        np.array_equal(a, b) for a, b in zip(weights(models / "one-epoch" / WEIGHTS_FILE), after, strict=True)
    )
    # A second epoch on top of the first, not a fresh one: better than one epoch from scratch.
    report = json.loads((models / "continued" / "training.json").read_text())
    assert report["held_out_accuracy"] > one_epoch["held_out_accuracy"]
