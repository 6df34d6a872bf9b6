"""The mail processes a user runs: ``tongdai smtp`` as its own process, fed by
``tongdai simulate email`` (the newcomer's way in), stopped cleanly by SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from tests.helpers import drain_all


def _env(redis_url, config_file) -> dict:
    return {**os.environ, "REDIS_URL": redis_url, "TONGDAI_CONFIG": str(config_file)}


def test_smtp_process_takes_a_simulated_mail(hub, redis_url, config_file, listen_port):
    env = _env(redis_url, config_file)
    proc = subprocess.Popen([sys.executable, "-m", "tongdai.core.cli", "smtp"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:  # wait for the listener
            try:
                socket.create_connection(("127.0.0.1", listen_port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.1)
        out = subprocess.run(
            [sys.executable, "-m", "tongdai.core.cli", "simulate", "email", "--channel", "mail",
             "--from", "khach@example.vn", "--subject", "Hỏi đơn hàng",
             "--text", "Đơn #123 của mình chưa tới"],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("250")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert drain_all(hub)["stored"] == 1
    (conv,) = hub.redis.zrange(hub.keys.conversations_by_status("open"), 0, -1)
    from tongdai.core.pipeline import store

    (msg,) = [m for m in store.message_page(hub, conv.decode(), None, 10).items
              if m.direction == "in"]
    assert (msg.subject, msg.text) == ("Hỏi đơn hàng", "Đơn #123 của mình chưa tới")
    # no --name: named from the address, so two senders do not look like one person
    cust = hub.redis.hget(hub.keys.conversation(conv.decode()), "customer").decode()
    sealed = hub.redis.hget(hub.keys.customer(cust), "name").decode()
    assert hub.keyring.decrypt_text(sealed, b"name") == "Khach"
