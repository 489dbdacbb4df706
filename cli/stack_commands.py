"""`recog up` / `recog down`: the local stack for one machine."""

from __future__ import annotations

import time

import click

from devstack.stack import LocalStack
from shared.jobs import hour_bucket, utcnow
from shared.settings import STATE_DIR, Settings

STATE = STATE_DIR


def local_stack() -> LocalStack:
    settings = Settings.from_env()
    if not settings.cassandra_protocol_version:
        # The local Cassandra is 2.1: say v3 up front instead of failing a negotiation each start.
        settings = settings.replace(cassandra_protocol_version=3)
    return LocalStack(settings, STATE, STATE / "cache")


@click.command()
def up() -> None:
    """Start Redis, Cassandra, the workers (single images, bulk), the gateway and Flower; harmless
    if already up."""
    stack = local_stack()
    started = time.monotonic()
    steps = [
        ("Redis", stack.start_redis),
        ("Cassandra", stack.start_cassandra),
        ("schema", stack.create_schema),
        ("API key", stack.local_key),
        ("workers", stack.start_workers),
        ("gateway", stack.start_gateway),
        ("Flower", stack.start_flower),
        ("gateway ready", stack.wait_gateway_ready),
        ("workers ready", stack.wait_workers_ready),
    ]
    done = {}
    for label, step in steps:
        click.echo(f"  {label} ...", nl=False)
        done[label] = step()
        click.echo(" ok")
    s = stack.settings
    audit_query = (
        "SELECT job_id, status, label, confidence, filename, finished_at "
        f"FROM recognition.predictions_by_hour WHERE hour = '{hour_bucket(utcnow())}'"
    )
    cqlsh = f".venv/bin/cqlsh {s.cassandra_hosts[0]} {s.cassandra_port} --protocol-version=3 -e"
    click.echo(f"""
recog is up ({time.monotonic() - started:.1f} s). State and logs: {STATE}/

  API key  {done["API key"]}
           (kept in {STATE}/api-key, mode 600; the recog command uses it by itself;
           `.venv/bin/recog keys webhook-secret local` gives the secret its webhooks are signed with)
  page     {s.gateway_url}/   (draw a digit, upload images or a zip, follow batches; asks for the key)
  gateway  {s.gateway_url}   API docs {s.gateway_url}/docs, metrics {s.gateway_url}/metrics
           curl -H @{STATE}/api-key.header -F "file=@digit.png" "{s.gateway_url}/v1/jobs?wait=10"
  flower   {s.flower_url}   login: {s.flower_user} / {stack.flower_password()}
  worker metrics  http://{s.worker_metrics_host}:{s.worker_metrics_port}/metrics (single images),
                  http://{s.worker_metrics_host}:{s.worker_metrics_port + 1}/metrics (bulk)
  cqlsh    {cqlsh} "{audit_query}"
           {cqlsh} "SELECT * FROM recognition.jobs WHERE job_id = <job id>"
  stop     make down
""")


@click.command()
def down() -> None:
    """Stop exactly the processes `recog up` started (by pid)."""
    stopped = local_stack().down()
    click.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
