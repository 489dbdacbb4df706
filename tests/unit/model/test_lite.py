"""The model's flatbuffer (model/lite.py): shipped for the committed weights, run without
TensorFlow on a CPU, and made again from the weights wherever it is missing, stale or damaged."""

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import lite
from model.recogniser import Recogniser, _gpu_visible
from model.registry import describe
from shared.settings import Settings
from tests import images

ROOT = Path(__file__).resolve().parents[3]
MODELS = Settings.from_env({}).models_dir

# A fresh interpreter: the worker's pool process, `recog classify`, with the shipped model.
LOAD_ALONE = """
import json, sys
import numpy as np
from model.recogniser import Recogniser, configure_threads
configure_threads(1)
recogniser = Recogniser(__import__("pathlib").Path(sys.argv[1]), "digits")
probabilities = recogniser.predict_arrays(np.zeros((3, 28, 28, 1), np.float32))
print(json.dumps({
    "shape": list(probabilities.shape),
    "imported": sorted(m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules),
    # This process's peak, not getrusage's, which keeps the peak of what ran before the exec.
    "peak_rss_mb": int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) // 1024,
}))
"""

pytestmark = pytest.mark.skipif(_gpu_visible(), reason="with a GPU the model runs in TensorFlow itself")


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """A command's standard output, once it exited 0; env: its whole environment (default ours)."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def reported(argv: list[str], env: dict[str, str] | None = None) -> dict:
    """The JSON a script prints last."""
    return json.loads(run(argv, env).strip().splitlines()[-1])


def loaded_alone(models_dir: Path) -> dict:
    """What LOAD_ALONE reports of a fresh process that loaded the digits model from models_dir."""
    return reported([sys.executable, "-c", LOAD_ALONE, str(models_dir)])


def held_out_batch() -> np.ndarray:
    digits, _ = images.heldout()
    return (digits.astype(np.float32) / 255)[..., None]


@pytest.fixture(scope="module")
def keras_probabilities():
    import keras

    model = keras.models.load_model(describe(MODELS, "digits").weights, compile=False)
    return model(held_out_batch(), training=False).numpy()


def copied_model(tmp_path: Path) -> Path:
    """The shipped digit model in a folder of the test's own: models dir, then the model's folder."""
    shutil.copytree(MODELS / "digits", tmp_path / "models" / "digits")
    return tmp_path / "models" / "digits"


def test_the_shipped_flatbuffer_was_converted_from_the_shipped_weights(keras_probabilities):
    """Retrained weights committed without `recog export-lite` would fail here (stale stamp), and
    the file itself must give the weights' own probabilities."""
    info = describe(MODELS, "digits")
    stamp = json.loads((MODELS / "digits" / lite.LITE_STAMP).read_text())
    assert stamp["weights_version"] == info.version
    shipped = lite.converted(info)
    assert shipped is not None
    got = lite.LiteModel(shipped, 1, 10)(held_out_batch())
    assert np.abs(got - keras_probabilities).max() < 1e-5


def test_a_cpu_process_runs_the_shipped_model_without_importing_tensorflow():
    report = loaded_alone(MODELS)
    assert report["shape"] == [3, 10]
    assert report["imported"] == [], "TensorFlow was imported after all"
    # TensorFlow alone brings a process to about 600 MB; this one held the model in about 65.
    assert report["peak_rss_mb"] < 250


def break_pair(folder: Path, state: str) -> None:
    flatbuffer = folder / lite.LITE_FILE
    if state == "missing":
        flatbuffer.unlink()
        (folder / lite.LITE_STAMP).unlink()
    elif state == "other weights":  # its bytes are not a model at all: they must not even be tried
        flatbuffer.write_bytes(b"not a flatbuffer")
        stamp = {"weights_version": "0123456789ab", "sha256": hashlib.sha256(b"not a flatbuffer").hexdigest()}
        (folder / lite.LITE_STAMP).write_text(json.dumps(stamp))
    elif state == "half copied":  # the stamp describes the whole file
        flatbuffer.write_bytes(flatbuffer.read_bytes()[:300_000])
    else:  # "cannot run": the stamp describes these bytes, which are no model
        flatbuffer.write_bytes(b"\0" * 4096)
        stamp = json.loads((folder / lite.LITE_STAMP).read_text())
        stamp["sha256"] = hashlib.sha256(b"\0" * 4096).hexdigest()
        (folder / lite.LITE_STAMP).write_text(json.dumps(stamp))


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ("missing", "it has no model.tflite"),
        ("other weights", "converted from other weights"),
        ("half copied", "is not the file its model.tflite.json describes"),
        ("cannot run", "its model.tflite cannot run"),
    ],
)
def test_weights_without_a_usable_flatbuffer_are_converted_at_load(
    state, said, tmp_path, caplog, keras_probabilities
):
    """A model copied in with its weights alone, a flatbuffer made from other weights, one copied
    in half, one that is no model: the weights are converted at load, the model answers as its
    weights do, and the log says why and what to run."""
    folder = copied_model(tmp_path)
    break_pair(folder, state)
    with caplog.at_level(logging.INFO, logger="model"):
        recogniser = Recogniser(folder.parent, "digits")
    assert isinstance(recogniser._call, lite.LiteModel)
    assert np.abs(recogniser.predict_arrays(held_out_batch()) - keras_probabilities).max() < 1e-5
    assert said in caplog.text
    if state != "cannot run":
        assert "cannot run" not in caplog.text, "a flatbuffer its stamp does not vouch for was tried"
        assert "until `recog export-lite --name digits` writes one" in caplog.text


# Run in a process of its own, where importing TensorFlow fails: a LiteRT-only install (the one
# way to have no TensorFlow in this project's venv, which has it).
WITHOUT_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None
from pathlib import Path
from model.recogniser import Recogniser
try:
    Recogniser(Path(sys.argv[1]), "digits")
except RuntimeError as exc:
    print(exc)
"""


def test_without_tensorflow_a_model_lacking_its_flatbuffer_says_what_is_missing(tmp_path):
    folder = copied_model(tmp_path)
    break_pair(folder, "missing")
    said = run([sys.executable, "-c", WITHOUT_TENSORFLOW, str(folder.parent)])
    assert "model digits: model.tflite for its weights cannot be used, and there is no TensorFlow" in said


def test_recog_export_lite_writes_the_pair_a_worker_then_loads_alone(tmp_path):
    folder = copied_model(tmp_path)
    break_pair(folder, "missing")
    said = run(
        [str(Path(sys.executable).parent / "recog"), "export-lite", "--name", "digits"],
        {**os.environ, "RECOG_MODELS_DIR": str(folder.parent)},
    )
    assert str(folder / lite.LITE_FILE) in said
    stamp = json.loads((folder / lite.LITE_STAMP).read_text())
    assert stamp["weights_version"] == describe(folder.parent, "digits").version
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == [], "a temporary file left"
    for name in (lite.LITE_FILE, lite.LITE_STAMP):
        assert (folder / name).stat().st_mode & 0o044 == 0o044, f"{name} readable by the worker's user"
    assert loaded_alone(folder.parent)["imported"] == []


def test_labels_that_do_not_match_the_outputs_fail_the_model_with_why(tmp_path):
    """No conversion can mend it: the model is unusable, and its jobs fail with this message."""
    from model.registry import UnusableModel

    folder = copied_model(tmp_path)
    (folder / "labels.txt").write_text("".join(f"{n}\n" for n in range(11)))
    with pytest.raises(UnusableModel, match="gives 10 probabilities an image, and its labels.txt names 11"):
        Recogniser(folder.parent, "digits")


# Whether TensorFlow is asked about a GPU, in a process of its own (an import cannot be undone).
# No GPU can be had here, so the host is described to _gpu_visible: DEVICES, a folder standing for
# /dev, and GPU_BUILDS, the distributions taken for GPU builds (tensorflow-cpu, installed here,
# standing for one). What is checked is real: whether TensorFlow got imported, and the answer.
ASK_GPU = """
import json, os, sys
from pathlib import Path
from model import recogniser
devices, builds = sys.argv[1], sys.argv[2]
recogniser.DEVICES = Path(devices)
recogniser.GPU_BUILDS = tuple(builds.split(",")) if builds else recogniser.GPU_BUILDS
print(json.dumps({"gpu": recogniser._gpu_visible(), "imported": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize(
    ("device", "builds", "cuda_visible", "imported"),
    [
        (None, "tensorflow-cpu", None, False),  # no GPU device: TensorFlow not even asked
        ("nvidia0", "", None, False),  # a device, but only tensorflow-cpu: it cannot use one
        ("nvidia0", "tensorflow-cpu", "-1", False),  # every GPU hidden from CUDA
        ("dxg", "tensorflow-cpu", None, True),  # WSL's GPU and a GPU build: TensorFlow asked
    ],
)
def test_tensorflow_is_asked_about_a_gpu_only_where_it_could_use_one(
    tmp_path, device, builds, cuda_visible, imported
):
    if device:
        (tmp_path / device).touch()
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if cuda_visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible
    report = reported([sys.executable, "-c", ASK_GPU, str(tmp_path), builds], env)
    assert report == {"gpu": False, "imported": imported}
