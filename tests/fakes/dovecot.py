"""A real IMAP server for tests: Debian's dovecot (``apt-get install dovecot-imapd``).

One user with a plaintext password, a temporary maildir, a plain port (STARTTLS offered) and
an implicit-TLS port with a self-signed certificate, all on 127.0.0.1 and free ports. Mails go
in with IMAP APPEND as that user, the way a mail server's delivery would show them to a client.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.conftest import free_port
from tests.fakes.tls import self_signed_cert

USER = "support"
PASSWORD = "pw-Dove-7781"  # distinctive, so tests can assert it never reaches a log

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:~/Maildir
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
# inotify tells IDLE of new mail; this is only the fallback, kept short for tests.
mailbox_idle_check_interval = 1 secs
{capability}
passdb {{
  driver = passwd-file
  args = {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
"""


class Dovecot:
    """dovecot in the foreground (``-F``) with its own config, state and maildir.

    ``capability`` replaces what IMAP advertises after login (e.g. ``"IMAP4rev1 IDLE"`` for a
    server without MOVE and UIDPLUS); None keeps dovecot's own list.
    """

    def __init__(self, capability: str | None = None) -> None:
        # Not under pytest's tmp_path: that is 0700 root, and the mail and login processes
        # (unprivileged users) must reach their directories.
        self.dir = Path(tempfile.mkdtemp(prefix="tongdai-dovecot-"))
        self.dir.chmod(0o755)
        self.port, self.tls_port = free_port(), free_port()
        self.capability = capability
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Write the config (first time) and start; return once the user can log in."""
        if not (self.dir / "dovecot.conf").exists():
            self._write_config()
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.dir / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        try:
            for port in (self.port, self.tls_port):
                while not self._accepts(port):
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("no listener")
                    time.sleep(0.02)
            # A first login brings up auth and stats: stopped before they are, imap-login
            # waits 5 s for a stats handshake.
            self.client().logout()
        except Exception as e:
            self.stop()
            raise RuntimeError(f"dovecot did not start ({e}); its log ends:\n"
                               f"{self.log_tail()}") from e

    def stop(self) -> None:
        """Stop every process of this server: master, login, auth and imap sessions.

        SIGTERM goes to the whole group at once, which ends the sessions at once; the master
        then sleeps out a grace second before it exits, and is waited for: killed in that
        second, it leaves a lock that holds up the next start for 13 s.
        """
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        deadline = time.monotonic() + 5
        while any(self._group_members(proc.pid)):
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)

    def cleanup(self) -> None:
        """Stop and remove every file."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill_sessions(self) -> int:
        """SIGKILL every IMAP session process: clients see the connection drop without a BYE,
        as when a server crashes. Return how many there were."""
        killed = 0
        for pid, comm in self._group_members():
            if comm == "imap":
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return killed

    def client(self) -> IMAPClient:
        """A logged-in plain connection as the test user."""
        c = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=10)
        c.login(USER, PASSWORD)
        return c

    def append(self, raw: bytes, folder: str = "INBOX", flags: tuple[str, ...] = ()) -> int:
        """Put a mail into ``folder`` (created if missing); return its uid (APPENDUID)."""
        c = self.client()
        try:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            answer = c.append(folder, raw, flags=flags)
        finally:
            c.logout()
        return int(re.search(rb"APPENDUID \d+ (\d+)", answer).group(1))

    def log_tail(self, lines: int = 30) -> str:
        """The end of dovecot's own log (start-up errors land there, not on stderr)."""
        log = self.dir / "dovecot.log"
        text = log.read_text(errors="replace") if log.exists() else "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def _write_config(self) -> None:
        """Config, passwd file, certificate and a home the mail user owns."""
        if os.geteuid() == 0:
            # dovecot refuses to run mail processes as root: the user's mail belongs to nobody.
            mail = pwd.getpwnam("nobody")
            internal_user, login_user = "dovecot", "dovenull"  # created by dovecot-core
        else:
            mail = pwd.getpwuid(os.geteuid())
            internal_user = login_user = mail.pw_name
        self_signed_cert(self.dir)
        (self.dir / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        (self.dir / "home").mkdir()
        os.chown(self.dir / "home", mail.pw_uid, mail.pw_gid)
        capability = f"imap_capability = {self.capability}" if self.capability else ""
        (self.dir / "dovecot.conf").write_text(CONFIG.format(
            dir=self.dir, port=self.port, tls_port=self.tls_port, uid=mail.pw_uid,
            gid=mail.pw_gid, internal_user=internal_user, login_user=login_user,
            capability=capability))

    def _group_members(self, group: int | None = None) -> Iterator[tuple[int, str]]:
        """(pid, command name) of the server's running processes (not zombies)."""
        group = group or (self.proc.pid if self.proc else -1)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue  # gone meanwhile
            comm = text[text.index("(") + 1:text.rindex(")")]
            state, _ppid, pgrp = text[text.rindex(")") + 1:].split()[:3]
            if int(pgrp) == group and state != "Z":
                yield int(stat.parent.name), comm

    @staticmethod
    def _accepts(port: int) -> bool:
        """Whether something listens on 127.0.0.1:port."""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return False
        return True


@contextmanager
def running_dovecot(capability: str | None = None) -> Iterator[Dovecot]:
    """A started server, removed at exit; skips the test when dovecot is not installed."""
    if shutil.which("dovecot") is None:
        pytest.skip("dovecot not installed: apt-get install dovecot-imapd (CI's .ci/run does)")
    server = Dovecot(capability)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
