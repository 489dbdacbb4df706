"""Seeded fuzzing on the live stack: thousands of damaged images in every accepted format, and zips
with lying headers. Whatever the gateway or a worker makes of them, no answer is a 5xx, no worker
process dies, and every accepted job ends done or failed.

Mutations are seeded (SEED), so a failure names a file that can be made again:
`mutated_files(SEED)[n]`.
"""

import io
import random
import time
import zipfile

import pytest
import requests

from devstack import processes
from tests import images
from tests.integration.test_batches import wait_for_batch

SEED = 20261124
PER_FORMAT = 350  # six formats: 2,100 files
# Pillow's format names and the options that make each file small and varied.
FORMATS = {"PNG": {}, "JPEG": {"quality": 80}, "GIF": {}, "WEBP": {"quality": 80}, "BMP": {}, "TIFF": {}}
SUFFIX = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}
pytestmark = pytest.mark.timeout(600)


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


def worker_log_tail(stack, since: int) -> str:
    with stack.log("worker1").open("rb") as fh:
        fh.seek(since)
        return fh.read().decode(errors="replace")


def test_damaged_images_get_4xx_or_a_final_state_and_no_worker_dies(stack, gateway):
    worker = processes.running_pid(stack.run_dir, "worker1")
    log_start = stack.log("worker1").stat().st_size
    files = mutated_files(SEED)
    assert len(files) >= 2000
    accepted, refused, batch_id = 0, 0, None
    started = time.monotonic()
    for start in range(0, len(files), 500):
        parts = [("files", f) for f in files[start : start + 500]]
        url = f"{gateway}/v1/batches" + (f"/{batch_id}/files" if batch_id else "")
        response = requests.post(url, files=parts, data={"name": "fuzz"}, timeout=300)
        assert response.status_code in (200, 202), response.text[:500]
        body = response.json()
        batch_id = body["id"]
        accepted += body["accepted"]
        refused += len(body["failed"])
        assert all(f["error"] for f in body["failed"])
    assert accepted + refused == len(files)
    for name, data in files[:: len(files) // 200]:  # the single-image endpoint on a sample
        single = requests.post(f"{gateway}/v1/jobs", files={"file": (name, data)}, timeout=60)
        assert single.status_code < 500, (name, single.text[:300])
    final = wait_for_batch(gateway, batch_id, timeout=400)
    took = time.monotonic() - started
    print(f"fuzz: {len(files)} files, {accepted} accepted, {refused} refused by the gateway, {took:.0f} s")
    # Refused files are in the batch too, failed with the gateway's reason.
    assert final["total"] == len(files) and final["done"] + final["failed"] == len(files)
    assert final["failed"] >= refused
    assert processes.running_pid(stack.run_dir, "worker1") == worker, "the worker restarted"
    log = worker_log_tail(stack, log_start)
    for sign in ("WorkerLostError", "exited with 'signal", "Traceback"):
        assert sign not in log, f"the worker log shows {sign!r}:\n{log[log.find(sign) - 2000 :][:4000]}"


def test_zips_with_lying_headers_never_get_a_5xx(gateway):
    statuses = []
    for n, data in enumerate(lying_zips(SEED)):
        archive = {"archive": (f"lying-{n}.zip", data)}
        response = requests.post(f"{gateway}/v1/batches", files=archive, data={"name": "fuzz"}, timeout=60)
        assert response.status_code < 500, (n, response.text[:300])
        statuses.append(response.status_code)
    assert 422 in statuses, "no mutation broke a zip: the test proves nothing"
