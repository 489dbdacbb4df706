"""Accuracy of the committed model on each kind of upload, rendered from the 100 held-out fixture digits.

.venv/bin/python bench/upload_kinds.py --variants 10 --json bench/upload_kinds.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.recogniser import Recogniser  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.unit.model.test_real_uploads import KINDS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=10, help="digits of each class per kind (at most 10)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = Settings.from_env()
    recogniser = Recogniser(settings.models_dir, settings.model)
    samples = [(d, i) for d in range(10) for i in range(min(args.variants, 10))]
    scores = {}
    for kind, render in KINDS.items():
        predictions = recogniser.recognise_bytes(
            [render(d, i) for d, i in samples], settings.max_image_pixels
        )
        scores[kind] = sum(
            p.label == str(d) for (d, _), p in zip(samples, predictions.predictions, strict=True)
        )
    total = len(samples) * len(scores)
    print(f"{'kind':28s} {'right':>9s}")
    for kind, right in scores.items():
        print(f"{kind:28s} {right:4d}/{len(samples):<4d}")
    print(f"{'all kinds':28s} {sum(scores.values()) / total:9.2%}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "per_kind": scores,
                    "images_per_kind": len(samples),
                    "model_version": recogniser.info.version,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
