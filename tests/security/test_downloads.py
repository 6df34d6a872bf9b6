"""A file a customer sends by mail is downloaded under a name the customer chose: the
``Content-Disposition`` answer must never carry a path (``../../etc/passwd``), a line break or a
quote from it, and must keep Vietnamese and Chinese names (RFC 6266 ``filename*``)."""

from __future__ import annotations

import smtplib
from urllib.parse import unquote

import pytest

from tests.conftest import write_config
from tests.email.conftest import SUPPORT, mail_channel
from tests.helpers import auth, drain_all
from tests.security.conftest import TEAMS
from tongdai.webhooks.api.conversations import download_disposition

# name as the mail's Content-Disposition carries it -> (filename=, filename* decoded)
NAMES = {
    "filename=\"../../etc/passwd\"": ("passwd", "passwd"),
    "filename*=utf-8''..%5C..%5Cwindows%5Cwin.ini": ("win.ini", "win.ini"),
    "filename*=utf-8''bad%22name%0D%0AX-Injected%3A%201.txt":
        ("bad_nameX-Injected_ 1.txt", "bad_nameX-Injected_ 1.txt"),
    "filename*=utf-8''H%C3%B3a%20%C4%91%C6%A1n%20th%C3%A1ng%2011.pdf":
        ("Hoa don thang 11.pdf", "Hóa đơn tháng 11.pdf"),
    "filename*=utf-8''%E5%8F%91%E7%A5%A8.pdf": ("attachment-{n}.pdf", "发票.pdf"),
    "filename*=utf-8''report%E2%80%AEfdp.exe": ("reportfdp.exe", "reportfdp.exe"),
    "filename=\"..\"": ("attachment-{n}", "attachment-{n}"),
}


@pytest.fixture
def config_file(tmp_path, relay, listen_port):
    return write_config(tmp_path / "tongdai.yaml", extra=mail_channel(relay, listen_port) + f"""
{TEAMS}""")


def _mail_with_files() -> bytes:
    parts = "".join(f"--b\r\nContent-Type: application/octet-stream\r\n"
                    f"Content-Disposition: attachment; {disposition}\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n"
                    for disposition in NAMES)
    return ("From: Lan <lan.nguyen@gmail.com>\r\n"
            f"To: {SUPPORT}\r\nSubject: files\r\nMessage-ID: <files-1@gmail.com>\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0700\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfiles attached\r\n"
            f"{parts}--b--\r\n").encode()


def _params(header: str) -> dict[str, str]:
    kind, *params = [p.strip() for p in header.split(";")]
    assert kind == "attachment"
    return dict(p.split("=", 1) for p in params)


def test_customer_file_names_are_made_safe_in_the_download(hub, client, admin_token, listener):
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as conn:
        conn.sendmail("lan.nguyen@gmail.com", [SUPPORT], _mail_with_files())
    drain_all(hub)
    conv = client.get("/api/v1/conversations?status=open",
                      headers=auth(admin_token)).get_json()["items"][0]
    (msg,) = client.get(f"/api/v1/conversations/{conv['id']}/messages",
                        headers=auth(admin_token)).get_json()["items"]
    files = [(n, a) for n, a in enumerate(msg["attachments"]) if a["name"] != "original.eml"]
    assert len(files) == len(NAMES)
    for (n, _), (ascii_name, full_name) in zip(files, NAMES.values(), strict=True):
        r = client.get(f"/api/v1/conversations/{conv['id']}/messages/{msg['id']}/attachments/{n}",
                       headers=auth(admin_token))
        assert r.status_code == 200 and r.data == b"hello"
        header = r.headers["Content-Disposition"]
        assert header.isascii() and "\r" not in header and "\n" not in header
        params = _params(header)
        assert params["filename"] == f'"{ascii_name.format(n=n)}"'
        assert params["filename*"].startswith("UTF-8''")
        assert unquote(params["filename*"][7:]) == full_name.format(n=n)


@pytest.mark.parametrize("name", ["a/b\\c", "x" * 400 + ".pdf", "\x00\x1f\x7f.txt",
                                  "tên\u2028file.txt", ". . .", "C:\\Users\\a\\b.txt",
                                  'a";filename="evil.exe'])
def test_no_path_control_character_or_quote_survives(name):
    params = _params(download_disposition(name, "attachment-0"))
    plain, full = params["filename"][1:-1], unquote(params["filename*"][7:])
    for shown in (plain, full):
        assert shown and not {"/", "\\", '"'} & set(shown)
        assert all(c.isprintable() for c in shown) and len(shown) <= 150
        assert not shown.startswith(".")
    assert plain.isascii() and params["filename"].count('"') == 2
