"""Outgoing webhooks never make the hub request an address that is not public (server-side
request forgery): not 169.254.169.254, the cloud metadata service that hands out the host's
credentials, however it is spelt; not the hub's own network unless an admin listed it
(``security.webhook_allowed_networks``: here 127.0.0.0/8, where the test receivers listen).
Host names resolve through ``hookdestinations.resolve`` (a fake here, never real DNS), once per
check, and the request connects to the address that was checked."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import write_config
from tests.helpers import auth
from tests.security.conftest import TEAMS
from tongdai.core.errors import DestinationRefused
from tongdai.core.workspace import hookdelivery, hookdestinations, hooks

METADATA = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.169.254./latest",           # a trailing dot
    "http://[::ffff:169.254.169.254]/latest",   # IPv4-mapped IPv6
    "http://[::169.254.169.254]/latest",        # IPv4-compatible IPv6
    "http://[64:ff9b::a9fe:a9fe]/latest",       # NAT64
    "http://[2002:a9fe:a9fe::]/latest",         # 6to4
    "http://2852039166/latest",                 # one decimal number
    "http://0xa9fea9fe/latest",                 # one hex number
    "http://0xa9.0xfe.0xa9.0xfe/latest",        # hex parts
    "http://169.254.43518/latest",              # a.b.c: the last part is 16 bits
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/latest",            # AWS's IPv6 metadata address
    "http://0.0.0.0:8080/hook",
    "http://0/hook",                            # 0.0.0.0
    "http://[::]/hook",
    "http://224.0.0.1/hook",
]
NOT_ADDRESSES = ["http://0xa9fe.0xa9fe/latest",  # a part over 255: no address at all
                 "http://0251.0376.0251.0999/latest", "http://1.2.3.999/hook",
                 "http://[fe80::1%25eth0]/hook"]


@pytest.fixture
def config_file(tmp_path):
    return write_config(tmp_path / "tongdai.yaml", extra=TEAMS + """
security:
  webhook_allowed_networks: [127.0.0.0/8]
""")


@pytest.fixture
def dns(monkeypatch) -> dict[str, list[str]]:
    """name -> the addresses it resolves to (change them mid-test); ``asked`` counts lookups."""
    table: dict[str, list[str]] = {}
    table["asked"] = []

    def resolve(host: str, port: int) -> list[str]:
        table["asked"].append(host)
        if host not in table:
            raise OSError(f"{host}: no such name")
        return list(table[host])

    monkeypatch.setattr(hookdestinations, "resolve", resolve)
    return table


def subscribe(client, token: str, url: str):
    return client.post("/api/v1/webhooks", json={"url": url}, headers=auth(token, "new"))


@pytest.mark.parametrize("url", METADATA)
def test_a_link_local_or_metadata_address_is_refused_however_spelt(client, admin_token, url):
    r = subscribe(client, admin_token, url)
    assert r.status_code == 400, r.get_json()
    assert "link-local" in r.get_json()["error"]["message"]
    assert hooks.all_subscriptions(client.application.extensions["tongdai"]) == []


@pytest.mark.parametrize("url", METADATA)
def test_listing_every_network_still_refuses_them(url):
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    with pytest.raises(DestinationRefused, match="link-local"):
        hooks.check_url(url, everything)


@pytest.mark.parametrize("url", NOT_ADDRESSES)
def test_a_host_that_ends_in_a_number_but_is_no_address_is_refused(client, admin_token, url):
    assert subscribe(client, admin_token, url).status_code == 400


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://[::1]:9000/hook",
                                 "http://10.1.2.3/hook", "http://192.168.1.5/hook",
                                 "http://100.64.0.1/hook", "http://[fd12::1]/hook",
                                 "http://[::ffff:10.1.2.3]/hook", "http://[2002:a01:203::]/hook",
                                 "http://localhost:8080/hook", "http://2130706433/hook"])
def test_the_own_network_is_refused_unless_listed(url):
    with pytest.raises(DestinationRefused, match="not a public address"):
        hooks.check_url(url)
    own = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8",
                                             "192.168.0.0/16", "100.64.0.0/10", "fd00::/8")]
    assert hooks.check_url(url, own) == url


def test_public_addresses_and_names_pass(dns):
    dns["crm.example"] = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    for url in ("https://crm.example/x", "http://93.184.215.14/hook", "http://[2606:4700::1]/x",
                "http://[64:ff9b::808:808]/x"):  # NAT64 of a public address: fine
        assert hooks.check_url(url) == url


def test_every_address_of_a_name_is_checked(client, admin_token, dns):
    dns["crm.example"] = ["93.184.215.14", "169.254.169.254"]
    r = subscribe(client, admin_token, "https://crm.example/hook")
    assert r.status_code == 400
    assert r.get_json()["error"]["message"].startswith(
        "refused: crm.example resolves to 169.254.169.254, a link-local")
    dns["intranet.example"] = ["93.184.215.14", "10.0.0.7"]
    r = subscribe(client, admin_token, "https://intranet.example/hook")
    assert r.status_code == 400 and "10.0.0.7, not a public address" in r.get_json()[
        "error"]["message"]
    r = subscribe(client, admin_token, "https://nowhere.example/hook")
    assert r.status_code == 400 and "does not resolve" in r.get_json()["error"]["message"]


def test_a_name_that_later_resolves_to_one_is_refused_when_sending(client, hub, admin_token,
                                                                   dns):
    dns["crm.example"] = ["93.184.215.14"]
    sub = subscribe(client, admin_token, "http://crm.example/hook").get_json()
    dns["crm.example"] = ["169.254.169.254"]
    ping = client.post(f"/api/v1/webhooks/{sub['id']}/ping", headers=auth(admin_token, "new"))
    hookdelivery.deliver_due(hub)
    d = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries/{ping.get_json()['id']}",
                   headers=auth(admin_token)).get_json()
    assert d["status"] == "pending" and d["last_status_code"] is None
    assert d["last_error"].startswith("refused: crm.example resolves to 169.254.169.254")


# -- the request goes to the address that was checked ------------------------------------------
class Receiver:
    """An integrator's endpoint on 127.0.0.1, over TLS when given a context; records the
    ``Host`` header of every request."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.hosts: list[str] = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rec.hosts.append(self.headers["Host"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _deliver_ping(client, hub, token: str, url: str) -> dict:
    r = subscribe(client, token, url)
    assert r.status_code == 201, r.get_json()
    sub = r.get_json()["id"]
    did = client.post(f"/api/v1/webhooks/{sub}/ping", headers=auth(token, "new")).get_json()["id"]
    hookdelivery.deliver_due(hub)
    return client.get(f"/api/v1/webhooks/{sub}/deliveries/{did}", headers=auth(token)).get_json()


def test_the_request_connects_to_the_checked_address_without_a_second_lookup(client, hub,
                                                                             admin_token, dns):
    receiver = Receiver()
    try:
        # nothing listens on 127.0.0.2: the next checked address is tried; no DNS but ours
        # knows hooks.example, so a second lookup by the HTTP client could not connect
        dns["hooks.example"] = ["127.0.0.2", "127.0.0.1"]
        d = _deliver_ping(client, hub, admin_token, f"http://hooks.example:{receiver.port}/in")
        assert d["status"] == "delivered", d
        assert d["last_error"] is None
        assert receiver.hosts == [f"hooks.example:{receiver.port}"]
        assert dns["asked"] == ["hooks.example", "hooks.example"]  # subscribing, sending
    finally:
        receiver.close()


def _tls_for(name: str, tmp_path) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for ``name`` only, and the CA file that signed it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tongdai test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM)
                                        + key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "leaf.pem")
    return ctx, str(tmp_path / "ca.pem")


def test_https_checks_the_certificate_against_the_name(client, hub, admin_token, dns, tmp_path,
                                                       monkeypatch):
    tls, ca_file = _tls_for("hooks.example", tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # the hub trusts the test CA
    receiver = Receiver(tls)
    try:
        dns["hooks.example"] = dns["other.example"] = ["127.0.0.1"]
        d = _deliver_ping(client, hub, admin_token, f"https://hooks.example:{receiver.port}/in")
        assert d["status"] == "delivered", d  # SNI and verification used the name, not the IP
        d = _deliver_ping(client, hub, admin_token, f"https://other.example:{receiver.port}/in")
        assert d["status"] == "pending" and d["last_status_code"] is None
        assert d["last_error"] == "could not connect (ConnectError)"  # the name does not match
        assert receiver.hosts == [f"hooks.example:{receiver.port}"]
    finally:
        receiver.close()
