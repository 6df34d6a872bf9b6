"""`tongdai backup` / `tongdai restore`: a copy of the whole hub, and back, checked."""

from __future__ import annotations

from pathlib import Path

import click

from tongdai.core.cli.base import config_or_exit, main, open_hub


class _Bars:
    """One click progress bar per step of a backup or restore."""

    def __init__(self) -> None:
        self.bar = None

    def stage(self, label: str, total: int) -> None:
        self.close()
        self.bar = click.progressbar(length=max(total, 1), label=label.ljust(22))
        self.bar.__enter__()

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@main.command("backup")
@click.option("--to", "dest", default=None,
              help="a new directory for it  [default: backup.dir/tongdai-<UTC time>]")
@click.option("--with-keys", is_flag=True,
              help="also copy the customer-data keys (whoever holds the backup can read it)")
@click.option("--logical", is_flag=True,
              help="DUMP every key even where the server's snapshot could be copied")
def backup_cmd(dest: str | None, with_keys: bool, logical: bool) -> None:
    """Back the hub up while it runs: Redis (snapshot or logical dump), the files customers
    sent, the config, and a manifest with counts and SHA-256 checksums."""
    from tongdai.core import clock
    from tongdai.core.workspace import backup

    if with_keys:
        click.echo("warning: --with-keys copies TONGDAI_DATA_KEYS and TONGDAI_INDEX_KEY into "
                   "the backup: anyone who holds it can read every customer's data, and "
                   "customers erased since can be read again from it. Keep it like the keys.",
                   err=True)
    with open_hub() as hub:
        target = Path(dest) if dest else backup.backups_root(hub) / backup.backup_name(
            clock.now_ms())
        bars = _Bars()
        try:
            manifest = backup.take(hub, target, with_keys=with_keys, logical=logical,
                                   progress=bars)
        except backup.BackupError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            bars.close()
    c = manifest["counts"]
    size = sum(f["bytes"] for f in manifest["files"].values())
    click.echo(f"backup ({manifest['mode']}) written to {target} in "
               f"{manifest['took_ms'] / 1000:.1f} s, {size / 1e6:.1f} MB: {c['conversations']} "
               f"conversations, {c['messages']} messages, {c['customers']} customers, "
               f"{c['blobs']} files")
    if not with_keys:
        click.echo("the data keys are not in it: keep TONGDAI_DATA_KEYS and TONGDAI_INDEX_KEY "
                   "(or var/keys.json) in your secret store; without them it cannot be read")


@main.command("restore")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data-dir", "target", default=None, type=click.Path(path_type=Path),
              help="a new, empty data directory for the embedded Redis  [default: REDIS_URL "
                   "when set, else TONGDAI_DATA_DIR / ./var]")
@click.option("--erasures", "ledgers", multiple=True, type=click.Path(exists=True,
              dir_okay=False, path_type=Path),
              help="more erasure records to apply (erasures.json / erasures.jsonl)")
def restore_cmd(src: Path, target: Path | None, ledgers: tuple[Path, ...]) -> None:
    """Restore a backup into an empty data dir or an empty REDIS_URL, then check it: the
    checksums first, then the counts and a sample of conversations decrypted with this
    environment's keys. Customers erased after the backup are erased again."""
    import os
    import shutil

    from tongdai.core.hub import data_dir
    from tongdai.core.workspace import backup, backup_restore

    config = config_or_exit()
    url = os.environ.get("REDIS_URL") if target is None else None
    if url is None and target is None:
        target = data_dir()
    bars = _Bars()
    try:
        keyring, source, key_file = backup_restore.resolve_keyring(src, data_dir())
        report = backup_restore.restore(src, config, keyring, target_dir=target, redis_url=url,
                                        blobs_dir=None if url is None else _blobs(config),
                                        ledgers=list(ledgers), progress=bars)
    except backup.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bars.close()
    if target is not None and key_file is not None and not (target / "keys.json").exists():
        shutil.copyfile(key_file, target / "keys.json")
        os.chmod(target / "keys.json", 0o600)
    c = report["counts"]
    click.echo(f"restored into {report['target']}: {c['conversations']} conversations, "
               f"{c['messages']} messages, {c['customers']} customers (as the manifest says); "
               f"{report['sampled']} conversations read back with the keys from {source}")
    if report["erased_again"]:
        click.echo(f"erased again (erased after this backup was taken): customers "
                   f"{', '.join(report['erased_again'])}")
    cfg = src / "config" / Path(config.path).name
    if cfg.exists() and cfg.read_bytes() != Path(config.path).read_bytes():
        click.echo(f"note: the backup's config {cfg} differs from {config.path}")
    if target is not None:
        click.echo(f"start it with: tongdai up --data-dir {target}")


def _blobs(config) -> Path:
    from tongdai.core.hub import data_dir

    root = Path(config.hub.storage.blobs)
    return root if root.is_absolute() else data_dir() / root
