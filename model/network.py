"""The digit CNN: two conv blocks and a small dense head.

No batch normalisation: with ~60 steps an epoch its moving statistics lag far behind and
inference (training=False) was measured at chance after 3 epochs.
"""

from __future__ import annotations


def build_cnn(num_classes: int = 10):
    import keras
    from keras import layers

    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = inputs
    for filters in (32, 64):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")
