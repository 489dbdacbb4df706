"""The seeds' way, kept as the benchmark's baseline: a synchronous Flask endpoint that decodes,
preprocesses (bench/seed_preprocess.py, frozen) and calls `model.predict()` for every request. Not
part of the service.

    gunicorn -w 1 -k gthread --threads 8 -b 127.0.0.1:28100 bench.seed_app:app
"""

from __future__ import annotations

import keras
from flask import Flask, jsonify, request

from bench.seed_preprocess import to_mnist
from model.registry import describe
from shared.decode import open_image
from shared.settings import Settings

settings = Settings.from_env()
model = keras.models.load_model(describe(settings.models_dir, settings.model).weights, compile=False)
app = Flask(__name__)


@app.post("/predict")
def predict():
    digit = to_mnist(open_image(request.files["file"].read(), settings.max_image_pixels))
    if digit is None:
        return jsonify({"label": None})
    probs = model.predict(digit[None, ..., None], verbose=0)[0]
    return jsonify({"label": int(probs.argmax()), "confidence": float(probs.max())})
