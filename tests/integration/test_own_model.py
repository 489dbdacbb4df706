"""Bring your own model: a tiny 3-class Keras model registered by name and served end to end."""

import numpy as np
from PIL import Image, ImageDraw

from model.preprocess import to_mnist
from tests import images
from tests.stack import API, submit

SHAPES = ("bar", "ring", "cross")


def draw(shape: str, rng: np.random.Generator) -> Image.Image:
    img = Image.new("L", (120, 120), 255)
    pen = ImageDraw.Draw(img)
    cx, cy, r = rng.integers(45, 75), rng.integers(45, 75), rng.integers(25, 40)
    width = int(rng.integers(4, 9))
    if shape == "bar":
        pen.line([(cx, cy - r), (cx, cy + r)], fill=0, width=width)
    elif shape == "ring":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], outline=0, width=width)
    else:
        pen.line([(cx - r, cy), (cx + r, cy)], fill=0, width=width)
        pen.line([(cx, cy - r), (cx, cy + r)], fill=0, width=width)
    return img


def train_shapes_model(folder) -> None:
    import keras

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = np.stack([to_mnist(draw(s, rng)) for s in SHAPES for _ in range(40)])[..., None]
    y = np.repeat(np.arange(len(SHAPES)), 40)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=40, verbose=0)
    folder.mkdir(parents=True)
    keras.Model(model.inputs, model.outputs).save(folder / "model.keras")
    (folder / "labels.txt").write_text("\n".join(SHAPES) + "\n")


def test_a_second_model_is_served_by_name(settings, gateway):
    """Brought with its weights alone (no model.tflite): each pool process converts them with
    TensorFlow as it first loads the model, a few seconds more on the first job it gets."""
    train_shapes_model(settings.models_dir / "shapes")
    rng = np.random.default_rng(1)
    for shape in SHAPES:
        upload = images.encode(draw(shape, rng))
        response = API.post(
            f"{gateway}/v1/jobs",
            params={"wait": 30},
            files={"file": (f"{shape}.png", upload)},
            data={"model": "shapes"},
            timeout=60,
        )
        if response.status_code == 202:  # still converting on a busy machine: wait once more
            response = API.get(f"{gateway}/v1/jobs/{response.json()['id']}", params={"wait": 30}, timeout=60)
        job = response.json()
        assert response.status_code == 200 and job["status"] == "done", job
        assert job["label"] == shape and job["model"]["name"] == "shapes"
        assert len(job["probabilities"]) == 3


def test_the_default_model_still_answers_beside_it(gateway):
    job = submit(gateway, images.png_digit(6, 6), wait=20).json()
    assert job["model"]["name"] == "digits" and job["label"] == "6"


def test_unknown_model_lists_what_is_there(gateway):
    response = API.post(
        f"{gateway}/v1/jobs",
        files={"file": ("1.png", images.png_digit(1))},
        data={"model": "fashion"},
        timeout=30,
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "'fashion'" in message and "digits" in message
