"""The digit CNN: three conv blocks with batch normalisation and a small dense head.

Batch-norm momentum is 0.9, not Keras's 0.99: with ~60 steps an epoch the slower moving
averages lagged so far behind that inference (training=False) was at chance after 3 epochs.
"""

from __future__ import annotations


def build_cnn(num_classes: int = 10):
    import keras
    from keras import layers

    def conv(x, filters):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.Activation("relu")(x)

    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = inputs
    for filters, dropout in ((32, 0.1), (64, 0.2)):
        x = conv(conv(x, filters), filters)
        x = layers.MaxPooling2D()(x)
        x = layers.Dropout(dropout)(x)
    x = conv(x, 128)
    x = layers.MaxPooling2D()(x)  # 3x3x128
    x = layers.Flatten()(x)
    x = layers.Dense(128, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")
