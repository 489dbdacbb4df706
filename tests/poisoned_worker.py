"""The real worker app, with a decoder that fails the way a hostile file might make a C decoder
fail: an image carrying the PNG text key CRASH SIGKILLs its own pool process, one carrying HANG
never returns. A stand-in for the crash or the endless loop, which no file can be counted on to
cause in today's Pillow; everything after it is real: the death, Redis handing the chunk back,
the time limit's kill, the starts kept in Cassandra. One carrying SLOW decodes after SLOW_SECONDS,
as a huge image might: a pool process kept busy for as long as a test needs. Started only by
tests/integration/test_poison.py and test_broker_restart.py as
`celery -A tests.poisoned_worker worker`."""

import os
import signal
import time

import model.recogniser
from workers.main import app  # noqa: F401  (the app celery -A finds here)

CRASH = "recog-test-crash"
HANG = "recog-test-hang"
SLOW = "recog-test-slow"
SLOW_SECONDS = 8

_real_open_image = model.recogniser.open_image


def _open_image(data: bytes, max_pixels: int, **options):
    if CRASH.encode() in data:
        os.kill(os.getpid(), signal.SIGKILL)
    if HANG.encode() in data:
        while True:
            time.sleep(1)
    if SLOW.encode() in data:
        time.sleep(SLOW_SECONDS)
    return _real_open_image(data, max_pixels, **options)


model.recogniser.open_image = _open_image
