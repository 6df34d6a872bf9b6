"""`tongdai keys rotate` reaches what the email channel adds: encrypted reply addresses and
the files on disk. Once rotated, the old key can go and everything still reads."""

from __future__ import annotations

from tests.email.conftest import customer_mail, send_to
from tests.helpers import drain_all
from tests.test_key_rotation import NEW, OLD, hub_with
from tongdai.core.identity import rotation
from tongdai.core.pipeline import outbound, store


def test_rotation_covers_addresses_and_files(hub, redis_url, config_file, listener):
    m = customer_mail("Ảnh hóa đơn đây ạ")
    m.add_attachment(b"\x89PNG fake image bytes", maintype="image", subtype="png",
                     filename="hoá đơn.png")
    send_to(listener.port, m)
    assert drain_all(hub)["stored"] == 1
    (conv,) = [c.decode() for c in hub.redis.zrange(hub.keys.conversations_by_status("open"),
                                                    0, -1)]

    rotating = hub_with(f"{NEW},{OLD}", redis_url, config_file)
    result = rotation.rotate(rotating)
    # one value: the customer's own key, re-wrapped (name, identifier, addresses and both
    # files are encrypted with it, so they need no rewriting)
    assert result.rewritten == 1

    after = hub_with(NEW, redis_url, config_file)  # the old key is gone
    (msg,) = store.message_page(after, conv, None, 10).items[-1:]
    image = next(a for a in msg.attachments if a.name == "hoá đơn.png")
    assert after.blobs.get(image.file_id) == b"\x89PNG fake image bytes"
    cust = store.get_customer(after, store.get_conversation(after, conv).customer_id)
    assert cust.identities[0].address == "lan.nguyen@gmail.com"
    (state,) = outbound.channel_states(after, cust.id)
    assert state.to_api()["address"] == "lan.nguyen@gmail.com"
