"""`recog rescore`: a batch re-scored with another model, followed to its end with a progress bar,
its file-by-file comparison saved as CSV and summed up."""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from cli import client
from shared.batch_progress import BATCH_FINAL


def rescore(gateway: str, batch_id: str, model: str, out: Path, retry_for: float) -> dict:
    options = {"retry_for": retry_for}
    started = client.call(
        gateway, "POST", f"/v1/batches/{batch_id}/rescore", data={"model": model}, timeout=300, **options
    )
    path = f"/v1/batches/{started['id']}"
    with tqdm(total=started["accepted"], unit="img", desc="rescore", dynamic_ncols=True) as bar:
        while True:
            status = client.call(gateway, "GET", path, timeout=60, **options)
            bar.update(status["done"] + status["failed"] + status.get("cancelled", 0) - bar.n)
            if status["status"] in BATCH_FINAL:
                break
            time.sleep(0.5)
    with client.request(
        gateway, "GET", f"{path}/compare", params={"format": "csv"}, timeout=300, **options
    ) as got:
        if got.status_code >= 400:
            client.check(got)
        partial = out.with_name(out.name + ".partial")
        partial.write_bytes(got.content)
        partial.replace(out)
    summed = {"format": "json", "files": "false"}
    compared = client.call(gateway, "GET", f"{path}/compare", params=summed, timeout=300, **options)
    return {"batch": started["id"], "left_out": started["left_out"], "csv": str(out), **compared["summary"]}
