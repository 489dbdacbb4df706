"""The committed model on the kinds of image people send, made from held-out digits.

Each kind uses 20 held-out digits (2 a class) that training never saw; 19 of 20 must be right.
"""

import io
import json

import pytest
from click.testing import CliRunner

from cli.main import cli
from model.recogniser import Recogniser
from shared.settings import Settings
from tests import images as im

KINDS = {
    "ink on paper": lambda d, i: im.encode(im.ink_on_paper(d, i)),
    "grey photo": lambda d, i: im.encode(im.grey_photo(d, i), "JPEG", quality=85),
    "canvas drawing": lambda d, i: im.encode(im.canvas_drawing(d, i)),
    "fine canvas brush": lambda d, i: im.encode(im.canvas_drawing(d, i, brush=-3)),
    "thick canvas brush": lambda d, i: im.encode(im.canvas_drawing(d, i, brush=6)),
    "thin pen on a big page": lambda d, i: im.encode(im.thin_pen(d, i)),
    "thick marker": lambda d, i: im.encode(im.thick_marker(d, i)),
    "small digit off centre": lambda d, i: im.encode(im.off_centre(d, i)),
    "EXIF-rotated JPEG": im.exif_rotated_jpeg,
    "palette PNG": im.palette_png,
    "16-bit PNG": im.sixteen_bit_png,
    "CMYK JPEG": im.cmyk_jpeg,
    "animated GIF": lambda d, i: im.animated(d, i, "GIF"),
    "animated WebP": lambda d, i: im.animated(d, i, "WEBP"),
}
SAMPLES = [(d, i) for d in range(10) for i in (3, 4)]


@pytest.fixture(scope="module")
def recogniser():
    return Recogniser(Settings.from_env({}).models_dir, "digits")


@pytest.mark.parametrize("kind", KINDS)
def test_reads_each_kind_of_upload(recogniser, kind):
    blobs = [KINDS[kind](d, i) for d, i in SAMPLES]
    predictions = recogniser.recognise_bytes(blobs, 16_000_000).predictions
    wrong = [(d, p.label) for (d, _), p in zip(SAMPLES, predictions, strict=True) if p.label != str(d)]
    assert len(wrong) <= 1, f"{kind}: (true, predicted) {wrong}"


def test_classify_json_reads_every_kind_and_says_no_digit_for_blank(tmp_path):
    paths = {}
    for n, (kind, make) in enumerate(KINDS.items()):
        digit = n % 10
        path = tmp_path / f"{n:02d}-{kind.replace(' ', '-')}.img"
        path.write_bytes(make(digit, 5))
        paths[str(path)] = str(digit)
    blank = tmp_path / "blank.png"
    blank.write_bytes(im.blank_png())
    result = CliRunner().invoke(cli, ["classify", "--json", *paths, str(blank)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    by_file = {row["file"]: row for row in rows}
    assert {f: by_file[f]["label"] for f in paths} == paths
    assert by_file[str(blank)]["label"] is None and "no digit" in by_file[str(blank)]["reason"]


def test_classify_exits_1_and_names_a_broken_file(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(im.truncated(im.png_digit(1)))
    result = CliRunner().invoke(cli, ["classify", "--json", str(broken)])
    assert result.exit_code == 1
    assert "truncated" in json.loads(result.output.splitlines()[-1])["error"]


def test_exif_rotation_is_applied(recogniser):
    from PIL import Image

    from model.preprocess import to_mnist

    rotated = to_mnist(Image.open(io.BytesIO(im.exif_rotated_jpeg(7))))
    upright = to_mnist(im.ink_on_paper(7).convert("RGB"))
    assert abs(rotated - upright).mean() < 0.05
