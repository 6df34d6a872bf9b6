"""Files in an agent's reply by mail (#17): attached files go on to the customer's channel
(Telegram sendDocument), a signature's inline logo does not; a file the channel will not take
refuses the whole reply and the agent is told why by mail."""

from __future__ import annotations

from tests.helpers import drain_all, run_outbound
from tests.test_attachments import PDF, png
from tests.workspace.test_agentmail import (  # noqa: F401  (the fixture: mail + Telegram)
    agent_reply,
    an,
    config_file,
    notify,
    run_agentmail,
    send_to,
    telegram_conversation,
)


def test_an_agents_mail_reply_carries_its_files_to_telegram(
        hub, client, an, listener, relay, tg_fake):  # noqa: F811
    conv = telegram_conversation(client, hub)
    mail = notify(hub, conv, relay)
    answer = agent_reply(mail["Reply-To"], "Dạ em gửi hóa đơn ạ", mail)
    answer.add_attachment(PDF, maintype="application", subtype="pdf", filename="Hóa đơn.pdf")
    logo = png(1, 1)  # the signature's logo: inline, not for the customer
    answer.get_payload()[0].add_related(logo, maintype="image", subtype="png", cid="<logo@an>")
    send_to(listener.port, answer)
    drain_all(hub)
    run_outbound(hub)
    (doc,) = tg_fake.sent("sendDocument")
    assert doc["document"].data == PDF and doc["document"].filename == "Hóa đơn.pdf"
    assert doc["caption"].startswith("Dạ em gửi hóa đơn ạ")
    assert not tg_fake.sent("sendPhoto") and not tg_fake.sent("sendMessage")


def test_a_file_the_channel_refuses_is_explained_to_the_agent(
        hub, client, an, listener, relay, tg_fake):  # noqa: F811
    conv = telegram_conversation(client, hub)
    mail = notify(hub, conv, relay)
    answer = agent_reply(mail["Reply-To"], "Dạ em gửi bản cài ạ", mail)
    hub.config.hub.storage.__dict__["max_blob_bytes"] = 4096  # the hub keeps 4 KB files
    answer.add_attachment(b"%PDF-1.4\n" + b"0" * 8192, maintype="application", subtype="pdf",
                          filename="catalogue.pdf")
    send_to(listener.port, answer)
    drain_all(hub)
    run_agentmail(hub)
    run_outbound(hub)
    assert not [c for c in tg_fake.calls if c[0].startswith("send")]
    why = relay.received[-1].message
    assert why["To"].endswith("an@shop.example>") or "an@shop.example" in why["To"]
    assert "catalogue.pdf" in why.get_body(("plain",)).get_content()
