"""`recog keys create | list | revoke | webhook-secret`: API keys, made straight in Cassandra by an
operator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from cli.tables import echo_table
from shared import keys
from shared.jobs import iso, utcnow
from shared.settings import Settings


@contextmanager
def key_table() -> Iterator:
    from shared.store.api_keys import KeyTable
    from shared.store.session import Statements, connect

    settings = Settings.from_env()
    cluster, session = connect(settings, settings.cassandra_keyspace)
    try:
        yield KeyTable(Statements(lambda: session))
    finally:
        cluster.shutdown()


@click.group("keys")
def keys_command() -> None:
    """Make, list and revoke API keys (every /v1 request needs one)."""


@keys_command.command("create")
@click.argument("name")
@click.option(
    "--scopes",
    default=",".join(keys.DEFAULT_SCOPES),
    show_default=True,
    help=f"Comma-separated, of: {', '.join(keys.SCOPES)}.",
)
@click.option("--tenant", help="Whose jobs and batches it sees (default: NAME). Share one to rotate keys.")
def create(name: str, scopes: str, tenant: str | None) -> None:
    """Make a key; it is printed once, alone on the last line, and only its hash is kept."""
    wanted = tuple(s.strip() for s in scopes.split(",") if s.strip())
    try:
        with key_table() as table:
            key = keys.create(table, name, tenant, wanted, utcnow())
            made = table.get(keys.split(key)[0])
    except keys.KeySpecError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"webhook secret (signs its callbacks; shown only now): {made.webhook_secret}", err=True)
    click.echo(
        f"key {name!r} for tenant {tenant or name!r}, scopes {','.join(wanted)}; shown only now:", err=True
    )
    click.echo(key)


@keys_command.command("list")
def list_keys() -> None:
    """Every key ever made: name, tenant, scopes, when made and revoked (never the key)."""
    with key_table() as table:
        rows = table.every()
    columns = ("name", "tenant", "scopes", "key_id", "created_at", "revoked_at")
    cells = [
        [k.name, k.tenant, ",".join(sorted(k.scopes)), k.key_id, iso(k.created_at), iso(k.revoked_at) or "-"]
        for k in rows
    ]
    echo_table(columns, cells)


@keys_command.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke the live key of that name; gateways refuse it within RECOG_KEY_CACHE_SECONDS."""
    with key_table() as table:
        count = keys.revoke(table, name, utcnow())
    if not count:
        raise click.ClickException(f"no live key is named {name!r}; `recog keys list` shows them")
    click.echo(f"revoked {name!r}")


@keys_command.command("webhook-secret")
@click.argument("name")
def webhook_secret(name: str) -> None:
    """Give the live key of that name a new webhook secret, printed once; callbacks are signed with
    it from now on (also for a key made before webhooks, which has none)."""
    try:
        with key_table() as table:
            secret = keys.new_webhook_secret_for(table, name)
    except keys.KeySpecError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"new webhook secret of {name!r}; shown only now:", err=True)
    click.echo(secret)
