"""A seeded corpus of damaged files: images in every accepted format broken the ways files break,
and zips whose headers lie. Seeded, so a failure names a file that can be made again:
`mutated_files(SEED)[n]`."""

import io
import random
import zipfile

from tests import images

SEED = 20261124
PER_FORMAT = 350  # six formats: 2,100 files
# Pillow's format names and the options that make each file small and varied.
FORMATS = {"PNG": {}, "JPEG": {"quality": 80}, "GIF": {}, "WEBP": {"quality": 80}, "BMP": {}, "TIFF": {}}
SUFFIX = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of the ways files break: flipped bits, cut short, bytes lost or doubled, a header field
    set to an extreme (sizes and lengths live in the first bytes of every format)."""
    data = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        data = data[: rng.randrange(1, len(data))]
    elif kind == 2:
        at = rng.randrange(len(data))
        del data[at : at + rng.randint(1, 64)]
    elif kind == 3:
        at = rng.randrange(len(data))
        data[at:at] = data[at : at + rng.randint(1, 256)]
    elif kind == 4:
        at = rng.randrange(min(len(data), 64))
        data[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
    else:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(min(len(data), 128))] = rng.randrange(256)
    return bytes(data)


def mutated_files(seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    files = []
    for fmt, options in FORMATS.items():
        pictures = [images.ink_on_paper(d, d, size=40).convert("RGB") for d in range(4)]
        seeds = [images.encode(p, fmt, **options) for p in pictures]
        for n in range(PER_FORMAT):
            files.append((f"fuzz/{fmt.lower()}-{n:04d}.{SUFFIX[fmt]}", mutate(rng.choice(seeds), rng)))
    return files


def lying_zips(seed: int, count: int = 150) -> list[bytes]:
    """Real zips of a few images with bytes of their headers (local, directory, end record) changed."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for d in range(3):
            zf.writestr(f"{d}.png", images.png_digit(d))
    whole = buffer.getvalue()
    headers = [i for i in range(len(whole)) if whole[i : i + 2] == b"PK"]
    out = []
    for _ in range(count):
        data = bytearray(whole)
        for _ in range(rng.randint(1, 6)):
            at = rng.choice(headers) + rng.randrange(4, 46)
            if at < len(data):
                data[at] = rng.choice([0, 0xFF, rng.randrange(256)])
        out.append(bytes(data))
    return out
