"""`recog submit-folder`: upload a folder as one batch, follow it, write the CSV.

A state file beside the CSV (`<out>.state.json`) remembers the batch and the files it accepted,
so an interrupted run, started again with the same folder and --out, uploads only the rest.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import click
from tqdm import tqdm

from cli.client import RETRY_FOR, check, request, upload_headers
from shared.batch_progress import BATCH_FINAL
from shared.decode import IMAGE_SUFFIXES


def find_images(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


class FolderRun:
    def __init__(
        self,
        gateway: str,
        folder: Path,
        out: Path,
        model: str | None,
        chunk: int,
        name: str,
        retry_for: float = RETRY_FOR,
    ) -> None:
        self.gateway, self.folder, self.out = gateway, folder.resolve(), out
        self.model, self.chunk, self.name = model, chunk, name
        self.retry_for = retry_for
        self.bar: tqdm | None = None
        self.state_path = out.with_name(out.name + ".state.json")
        self.state = self._load_state()

    def run(self) -> dict:
        started = time.monotonic()
        files = find_images(self.folder)
        if not files:
            raise click.ClickException(
                f"no images under {self.folder} (looked for {', '.join(IMAGE_SUFFIXES)})"
            )
        if self.state["batch_id"]:  # resuming: trust the batch itself over the state file
            self.state["uploaded"] = sorted(set(self.state["uploaded"]) | self._in_the_batch())
        self._upload(self.remaining(files), len(files))
        status = self._follow()
        self._write_csv()
        return self._summary(status, time.monotonic() - started)

    def remaining(self, files: list[str]) -> list[str]:
        """The files an earlier, interrupted run of this folder did not get accepted."""
        uploaded = set(self.state["uploaded"])
        return [f for f in files if f not in uploaded]

    def _load_state(self) -> dict:
        if self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            if state.get("folder") == str(self.folder):
                return state
        return {"folder": str(self.folder), "batch_id": None, "uploaded": []}

    def _save_state(self) -> None:
        """Written aside and renamed: a run killed mid-write leaves the old state, never half of one."""
        part = self.state_path.with_name(self.state_path.name + ".part")
        part.write_text(json.dumps(self.state))
        part.replace(self.state_path)

    def _upload(self, todo: list[str], total: int) -> None:
        done_before = total - len(todo)
        with tqdm(total=total, initial=done_before, unit="img", desc="upload", dynamic_ncols=True) as bar:
            self.bar = bar
            for start in range(0, len(todo), self.chunk):
                names = todo[start : start + self.chunk]
                body = self._post(names)
                self.state["batch_id"] = body["id"]
                self.state["uploaded"].extend(names)
                self._save_state()
                for failed in body["failed"]:
                    tqdm.write(f"  refused {failed['file']}: {failed['error']}")
                bar.update(len(names))
                bar.set_description("upload")

    def _in_the_batch(self) -> set[str]:
        """The files the gateway already holds for this batch. A chunk it accepted in the instant
        before an interruption is in the batch but not yet in the state file."""
        path = f"/v1/batches/{self.state['batch_id']}/results"
        rows = self._call("GET", path, params={"format": "json"}, timeout=300)
        return {row["file"] for row in rows}

    def _post(self, names: list[str]) -> dict:
        parts = [("files", (name, (self.folder / name).read_bytes())) for name in names]
        if self.state["batch_id"]:
            path, data = f"/v1/batches/{self.state['batch_id']}/files", {}
        else:
            path, data = "/v1/batches", {"name": self.name, **({"model": self.model} if self.model else {})}
        return self._call("POST", path, files=parts, data=data, headers=upload_headers(), timeout=300)

    def _call(self, method: str, path: str, **options) -> dict:
        return check(self._request(method, path, **options))

    def _request(self, method: str, path: str, **options):
        """Through outages, with the bar saying so while it waits."""
        return request(self.gateway, method, path, self.retry_for, self._waiting, **options)

    def _waiting(self, reason: str) -> None:
        if self.bar is None:
            tqdm.write(f"waiting for the service: {reason}")
        else:
            self.bar.set_description("waiting for the service")
            self.bar.set_postfix_str(reason)

    def _follow(self) -> dict:
        path = f"/v1/batches/{self.state['batch_id']}"
        status = self._call("GET", path, timeout=60)
        with tqdm(total=status["total"], unit="img", desc="recognise", dynamic_ncols=True) as bar:
            self.bar = bar
            while True:
                bar.set_description("recognise")
                bar.total = status["total"]
                cancelled = status.get("cancelled", 0)  # a gateway before cancels has none
                bar.update(status["done"] + status["failed"] + cancelled - bar.n)
                shown = {"failed": status["failed"], **({"cancelled": cancelled} if cancelled else {})}
                bar.set_postfix(**shown, eta=status["eta_seconds"])
                if status["status"] in BATCH_FINAL:
                    self.bar = None
                    return status
                time.sleep(0.5)
                status = self._call("GET", path, timeout=60)

    def _write_csv(self) -> None:
        path = f"/v1/batches/{self.state['batch_id']}/results"
        with self._request("GET", path, params={"format": "csv"}, stream=True, timeout=300) as response:
            if response.status_code >= 400:
                check(response)
            tmp = self.out.with_name(self.out.name + ".partial")
            with tmp.open("wb") as fh:
                for block in response.iter_content(64 * 1024):
                    fh.write(block)
            tmp.replace(self.out)

    def _summary(self, status: dict, elapsed: float) -> dict:
        path = f"/v1/batches/{self.state['batch_id']}/results"
        rows = self._call("GET", path, params={"format": "json"}, timeout=300)
        labels = Counter(
            r["label"] if r["label"] is not None else "(none)" for r in rows if r["status"] == "done"
        )
        return {
            "batch": status["id"],
            "total": status["total"],
            "done": status["done"],
            "failed": status["failed"],
            "cancelled": status.get("cancelled", 0),
            "cached": status["cached"],
            "labels": dict(sorted(labels.items())),
            "seconds": round(elapsed, 1),
            "images_per_second": round(status["total"] / elapsed, 1) if elapsed else None,
            "csv": str(self.out),
        }
