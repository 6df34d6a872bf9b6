"""parse_mail over the e-mail corpus: kinds, readable text, reports, files, authentication.

Every fixture in tests/fixtures/email is in TABLE, so a new fixture without an expectation
fails the suite. Distinctive phrases were read off each source by hand.
"""

from __future__ import annotations

import base64
import quopri
import re
import unicodedata
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from tongdai.adapters.email.mime import content_hash, normalise_address, parse_mail
from tongdai.core.errors import PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "email"
TRUSTED = "mx.tongdai.test"
HTML_TAG = re.compile(r"(?i)</?(html|head|body|div|p|br|span|font|a|b|strong|table|td)\b[^>]*>")

# name prefix -> (kind, has Message-ID, phrase in `text`, note). A phrase of None means the mail
# has no readable body. No fixture's subject or text may hold U+FFFD: none of the sources is
# broken there (17's attachment *name* is, see test_attachments).
TABLE = {
    "01": ("message", False, "我公司可代开各类增值税发票", "labelled GB2312, body really UTF-8"),
    "02": ("message", True, "这种场合自然少不了内射", "HTML only, GBK-only 屄 in gb2312"),
    "03": ("bounce", True, "User's mailbox quota exceeded", "RFC 3464 DSN"),
    "04": ("message", False, "This is a test email body.", ""),
    "05": ("message", True, "Test", "empty text/plain: text from the HTML part"),
    "06": ("message", False, "Информируем Вас об имеющейся задолженности", "HTML only"),
    "07": ("message", True, "contains extremely long links", "QP, two text/plain alternatives"),
    "08": ("message", True, "А эта линия по-русски.", "plain QP, not multipart at all"),
    "09": ("bounce", True, "failed permanently", "Gmail's plain-text bounce, no DSN part"),
    "10": ("bounce", True, "user MAILBOX FULL", "DSN with Auto-Submitted: auto-replied"),
    "11": ("bounce", True, "Message could not be delivered for 5 days",
           "named 'delayed', but its DSN says Action: failed"),
    "12": ("receipt", True, "has been displayed", "RFC 8098 MDN"),
    "13": ("complaint", True, "This is an email abuse report", "RFC 5965 ARF"),
    "14": ("auto_reply", True, "switching to an EUID of nobody", "list mail, Precedence: bulk"),
    "15": ("message", False, "Test - body content", ""),
    "16": ("message", True, "Превел", "8bit UTF-8"),
    "17": ("message", True, None, "the whole mail is one application/octet-stream file"),
    "18": ("message", True, "hello, world", ""),
    "19": ("message", True, "References Email", "no closing boundary"),
    "20": ("auto_reply", True, "أنا أحتاجها فقط", "Auto-Submitted + Precedence + X-Autoreply"),
    "21": ("auto_reply", True, "Let's talk about these images", "Auto-Submitted: generated"),
    "22": ("bounce", True, "Too many hops", "Content-Type lost its boundary"),
    "23": ("message", False, None, "four empty text parts"),
    "24": ("bounce", True, "BANNED FILENAME ALERT", "25 failed recipients"),
    "30": ("message", True, "Em đặt đơn hàng #456 hôm thứ Hai", "written for tongdai"),
    "31": ("message", True, "Tôi đã chuyển khoản 250.000 đồng", "written for tongdai"),
    "32": ("message", True, "Shop gọi lại cho em số 0901 234 567 nhé.", "written for tongdai"),
}


def raw(prefix: str) -> bytes:
    """The bytes of the one fixture whose name starts with ``prefix``."""
    (path,) = FIXTURES.glob(f"{prefix}_*.eml")
    return path.read_bytes()


def with_headers(data: bytes, *lines: str) -> bytes:
    """``data`` with header ``lines`` put on top, as a later MTA would add them."""
    return "".join(f"{line}\r\n" for line in lines).encode("utf-8") + data


def test_every_fixture_has_an_expectation() -> None:
    """The corpus and TABLE list the same mails, and each has its .source.txt note."""
    names = sorted(p.name for p in FIXTURES.glob("*.eml"))
    assert sorted(n[:2] for n in names) == sorted(TABLE)
    assert all((FIXTURES / f"{n}.source.txt").exists() for n in names)


@pytest.mark.parametrize("prefix", sorted(TABLE))
def test_fixture_kind_id_and_readable_text(prefix: str) -> None:
    """Kind, Message-ID presence and the readable text of every corpus mail."""
    kind, has_id, phrase, _note = TABLE[prefix]
    mail = parse_mail(raw(prefix))
    assert mail.kind == kind
    assert (mail.message_id is not None) == has_id
    if mail.message_id:
        assert "<" not in mail.message_id and mail.message_id == mail.message_id.strip()
    if phrase is None:
        assert mail.text == ""
    else:
        assert phrase in mail.text and phrase in mail.full_text
    for value in (mail.subject, mail.text, mail.full_text, mail.from_name or ""):
        assert "\ufffd" not in value
        assert value == unicodedata.normalize("NFC", value)
    assert not HTML_TAG.search(mail.full_text)
    assert (mail.automatic is None) == (kind == "message")


def test_chinese_headers_and_bodies_labelled_gb2312_are_read_as_gbk() -> None:
    """GBK-only characters in "gb2312" mail survive, where the email package loses them."""
    mail = parse_mail(raw("02"))
    assert mail.subject == "我把镜头拉近些，你们看看这个是什么屄，这种场合自然少不了内射"
    assert "\ufffd" in BytesParser(policy=policy.default).parsebytes(raw("02"))["subject"]
    assert mail.html is not None and "<HTML>" in mail.html
    assert "<" not in mail.text and "http://go2buy.com.cn/" in mail.text
    assert "declared gb2312, decoded as gbk" in mail.defects
    first = parse_mail(raw("01"))
    assert (first.subject, first.from_name) == ("代开各地增值税发票", "张先生")
    assert "declared gb2312, decoded as utf-8" in first.defects


def test_addresses_names_and_dates() -> None:
    """Display names are decoded (commas inside them too) and addresses lower-cased."""
    mail = parse_mail(raw("04"))
    assert (mail.from_addr, mail.from_name) == ("comma.name@example.com", "LastßlName, FirstName")
    assert mail.to == ["tony.stark@example.com"]
    assert mail.cc == ["simple@example.net", "john.doe@example.com"]
    assert parse_mail(raw("18")).from_name == "Foo, Bar"
    assert parse_mail(raw("20")).from_name == "متجر سوق نت"  # encoded-word inside quotes
    latin = parse_mail(raw("14"))  # raw 8-bit Latin-1 in a us-ascii mail's From
    assert latin.from_name == "Ingo Lütkebohle"
    assert latin.reply_to == ["new-httpd@apache.org"]
    vi = parse_mail(raw("30"))
    assert (vi.from_addr, vi.from_name) == ("lan.nguyen@example.vn", "Nguyễn Thị Lan")
    assert vi.subject == "Hỏi về đơn hàng #456 – giao chậm quá, shop kiểm tra giúp em"
    assert parse_mail(raw("01")).delivered_to == ["root@localhost", "danglüe@email.com"]
    assert vi.date_ms == 1795482900000  # Tue, 24 Nov 2026 08:15:00 +0700
    # "(EDT)" before the offset must not hide it: 00:19 -0400 is 04:19 UTC.
    assert parse_mail(raw("12")).date_ms == 811570740000
    assert parse_mail(with_headers(b"Subject: x\r\n\r\nbody", "Date: yesterday-ish")).date_ms \
        is None


def test_windows_1258_text_is_nfc() -> None:
    """cp1258 writes tone marks as combining characters; the text is NFC all the same."""
    sentence = ("Tôi đã chuyển khoản 250.000 đồng nhưng tài khoản vẫn chưa được cộng xu. "
                "Mong quý công ty kiểm tra giúp.")
    data = raw("31")
    body = quopri.decodestring(data.split(b"\r\n\r\n", 1)[1]).decode("cp1258")
    assert sentence not in body  # the decoded bytes alone are not NFC
    mail = parse_mail(data)
    assert mail.text == sentence + "\n\nTrần Văn Hùng"
    assert mail.from_name == "Trần Văn Hùng" and mail.defects == []


def test_reply_threading_and_new_text() -> None:
    """A Vietnamese Gmail reply: ids without <>, Q-encoded subject, only the new lines kept."""
    mail = parse_mail(raw("32"))
    assert mail.subject == "Re: Đơn hàng #123 chưa nhận được"
    assert mail.in_reply_to == ["ticket-123.1763866800@example.vn"]
    assert mail.references == ["order-123@example.vn", "ticket-123.1763866800@example.vn"]
    assert mail.text == ("Shop ơi, em vẫn chưa nhận được hàng. Mã vận đơn em tra không ra.\n"
                         "Shop gọi lại cho em số 0901 234 567 nhé.")
    assert "> Chị vui lòng chờ 2-3 ngày ạ." in mail.full_text
    assert parse_mail(raw("20")).in_reply_to == ["4e6e35f5a38b4_479f13bb90078178@small-app-01.mail"]


BOUNCES = {  # prefix -> (original Message-ID, recipient, status)
    "03": ("004801d1fc84$01c934ac$b247f0b7$@infospacemail.com", "abh@netpar.com.br", "4.2.2"),
    "09": ("CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com",
           "awfawfawfawfawfaw@someserverhere.com", "5.1.0"),
    "10": ("4E326A95.3010907@example.com", "user@aol.com", "5.2.2"),
    "11": (None, "foo@example.com", "4.0.0"),
    "22": ("01040616033903.00962@server", "scoffman@wellpartner.com", "5.4.6"),
    "24": ("edab.7804f5cb8070@python.org", "xxxxxxx@dot.ca.gov", "5.7.1"),
}


@pytest.mark.parametrize("prefix", sorted(BOUNCES))
def test_bounces_name_the_mail_and_recipient(prefix: str) -> None:
    """Each bounce says which of our mails failed, for whom, and why."""
    mail = parse_mail(raw(prefix))
    report = mail.report
    assert mail.kind == "bounce" and report is not None
    assert (report.original_message_id, report.recipient, report.status) == BOUNCES[prefix]
    assert report.action == "failed" and report.reason


def test_bounce_reasons_and_recipient_lists() -> None:
    """Diagnostic-Code text is the reason; every failed recipient is listed."""
    assert parse_mail(raw("10")).report.reason == "552 5.2.2 E4.12 user MAILBOX FULL"
    assert parse_mail(raw("09")).report.reason.startswith("550 5.1.0 Recipient rejected")
    assert len(parse_mail(raw("24")).report.recipients) == 25
    assert any("boundary recovered" in d for d in parse_mail(raw("22")).defects)


def test_delays_and_success_notices() -> None:
    """Action delayed is a delay, not a bounce; a success DSN is merely automatic."""
    mail = parse_mail(raw("11").replace(b"Action: failed", b"Action: delayed"))
    assert mail.kind == "delayed"
    assert (mail.report.action, mail.report.recipient) == ("delayed", "foo@example.com")
    done = parse_mail(raw("11").replace(b"Action: failed", b"Action: delivered"))
    assert (done.kind, done.report.action) == ("auto_reply", "delivered")
    gmail = raw("09").replace(b"X-Failed-Recipients: awfawfawfawfawfaw@someserverhere.com\n", b"")
    late = parse_mail(gmail.replace(b"(Failure)", b"(Delay)"))
    assert (late.kind, late.report.recipient) == ("delayed", "awfawfawfawfawfaw@someserverhere.com")
    other = parse_mail(gmail.replace(b"Delivery Status Notification (Failure)",
                                     b"Warning: could not send message for past 4 hours"))
    assert other.kind == "delayed"
    assert parse_mail(gmail.replace(b"Delivery Status Notification (Failure)",
                                    b"Your mailbox is almost full")).kind == "auto_reply"


def test_read_receipt_and_complaint() -> None:
    """An MDN names the read mail and its reader; an ARF report the complaining mailbox."""
    mdn = parse_mail(raw("12"))
    assert mdn.kind == "receipt"
    assert (mdn.report.original_message_id, mdn.report.action, mdn.report.recipient) == (
        "199509192301.23456@example.org", "displayed", "joe_recipient@example.com")
    arf = parse_mail(raw("13"))
    assert arf.kind == "complaint"
    assert (arf.report.original_message_id, arf.report.action, arf.report.recipient) == (
        "20120711015015.4A8BE2E088E@www.example.com", "abuse", "user@yahoo.com")
    assert arf.attachments == []  # the reported mail is evidence, not a customer's file


PERSON = raw("18")  # a plain one-line mail from a person


@pytest.mark.parametrize(("headers", "kind", "automatic"), [
    (["Auto-Submitted: Auto-Replied; owner-email=\"a@b.c\""], "auto_reply",
     "Auto-Submitted: auto-replied"),
    (["Auto-Submitted: no"], "message", None),
    (["X-Auto-Response-Suppress: All"], "message", None),  # Outlook sets it on people's mail
    (["X-Autorespond: yes"], "auto_reply", "X-Autorespond"),
    (["Precedence: junk"], "auto_reply", "Precedence: junk"),
    (["Precedence: first-class"], "message", None),
    (["List-Id: <news.shop.example.vn>"], "auto_reply", "List-Id"),
    (["List-Unsubscribe: <mailto:u@shop.example.vn>"], "auto_reply", "List-Unsubscribe"),
    (["Return-Path: <>"], "auto_reply", "Return-Path: <>"),
])
def test_automatic_mail_headers(headers: list[str], kind: str, automatic: str | None) -> None:
    """RFC 3834 and common markers make a mail automatic; Outlook's suppress header does not."""
    mail = parse_mail(with_headers(PERSON, *headers))
    assert (mail.kind, mail.automatic) == (kind, automatic)


@pytest.mark.parametrize(("sender", "kind", "automatic"), [
    ("No-Reply@Shopee.vn", "auto_reply", "sender no-reply"),
    ("noreply-orders@lazada.vn", "auto_reply", "sender no-reply"),
    ("postmaster@example.cn", "auto_reply", "sender postmaster"),
    ("noreen@example.com", "message", None),
])
def test_automatic_senders(sender: str, kind: str, automatic: str | None) -> None:
    """Daemon and no-reply senders are automatic; a person's name starting "no" is not."""
    mail = parse_mail(PERSON.replace(b"<foo.bar@example.com>", f"<{sender}>".encode()))
    assert (mail.kind, mail.automatic) == (kind, automatic)


def test_attachments() -> None:
    """Files keep their decoded names, types and exact bytes; bodies are not files."""
    (zip_file,) = parse_mail(raw("06")).attachments
    assert (zip_file.filename, zip_file.content_type, len(zip_file.data)) == (
        "ФНС_РФ558.zip", "application/octet-stream", 8932)
    assert zip_file.data.startswith(b"PK") and not zip_file.inline
    (pdf,) = parse_mail(raw("15")).attachments
    assert (pdf.filename, pdf.content_type, len(pdf.data)) == ("test.pdf", "application/pdf", 6940)
    assert pdf.data.startswith(b"%PDF")
    assert parse_mail(raw("05")).attachments == []  # its source note says otherwise: it has none
    (odd,) = parse_mail(raw("17")).attachments
    assert odd.data.decode("utf-8") == "текстовое вложение"
    assert odd.filename.startswith("\ufffd")  # the source's own name is already mangled


def test_inline_images_rfc2231_names_and_attached_mails() -> None:
    """An HTML mail with a cid: image, an RFC 2231 name, an RFC 2047 name and a forwarded mail."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    forwarded = raw("32").decode("ascii")
    data = f"""From: Lan <lan@example.vn>
Subject: files
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html; charset=utf-8

<p>Ảnh lỗi:<br><img src="cid:img1@example.vn"></p>
--rel
Content-Type: image/png
Content-ID: <img1@example.vn>
Content-Transfer-Encoding: base64

{png}
--rel--
--outer
Content-Type: application/pdf
Content-Disposition: attachment; filename*=utf-8''H%C3%B3a%20%C4%91%C6%A1n.pdf

%PDF-1.4
--outer
Content-Type: text/plain; name="=?UTF-8?B?Z2hpIGNow7oudHh0?="
Content-Disposition: attachment; filename="=?UTF-8?B?Z2hpIGNow7oudHh0?="

note
--outer
Content-Type: message/rfc822

{forwarded}
--outer--
""".encode()
    mail = parse_mail(data)
    assert mail.text == "Ảnh lỗi:"
    image, invoice, note, eml = mail.attachments
    assert (image.content_id, image.inline, image.data) == ("img1@example.vn", True,
                                                            b"\x89PNG\r\n\x1a\nfake")
    assert (invoice.filename, invoice.inline) == ("Hóa đơn.pdf", False)
    assert (note.filename, note.content_type, note.data.strip()) == ("ghi chú.txt", "text/plain",
                                                                     b"note")
    assert (eml.filename, eml.content_type) == ("Re: Đơn hàng #123 chưa nhận được.eml",
                                                "message/rfc822")
    assert parse_mail(eml.data).message_id == "CAF=vi32reply@mail.gmail.com"


@pytest.mark.parametrize(("charset", "body", "expected", "defect"), [
    ("big5", "電梯𨋢".encode("big5hkscs"), "電梯𨋢", "declared big5, decoded as big5hkscs"),
    ("gb_2312-80", "订单".encode("gbk"), "订单", None),
    ("x-gbk", "訂單".encode("gbk"), "訂單", None),
    ("GB18030", "订单€".encode("gb18030"), "订单€", None),
    ("us-ascii", "Đơn hàng".encode(), "Đơn hàng", "declared us-ascii, decoded as utf-8"),
    ("iso-8859-1", b"\x93quoted\x94 caf\xe9", "\u201cquoted\u201d café", None),
    ("x-unknown-vn", "Xin chào".encode(), "Xin chào", "declared x-unknown-vn, decoded as utf-8"),
    # Neither the label nor UTF-8 reads it: guessed (charset-normalizer), never silently.
    ("x-unknown-vn", b"caf\xe9 cr\xe8me br\xfbl\xe9e", "café crème brûlée",
     "declared x-unknown-vn, guessed cp1252"),
])
def test_charsets(charset: str, body: bytes, expected: str, defect: str | None) -> None:
    """Labels as mail software writes them; problems are recorded, never raised."""
    data = (f"From: a@example.cn\r\nSubject: x\r\nContent-Type: text/plain; charset={charset}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + body
    mail = parse_mail(data)
    assert mail.text == expected
    assert (defect in mail.defects) if defect else mail.defects == []


def test_encoded_words_split_inside_a_character() -> None:
    """Some senders cut a UTF-8 character across two encoded-words; it is joined back."""
    octets = "Đơn hàng".encode()
    first, second = base64.b64encode(octets[:2]).decode(), base64.b64encode(octets[2:]).decode()
    data = f"From: a@example.vn\r\nSubject: =?utf-8?B?{first}?=\r\n =?UTF-8?B?{second}?=\r\n\r\nx"
    assert parse_mail(data.encode()).subject == "Đơn hàng"


def test_html_only_mail_reads_like_text() -> None:
    """No tags, styles or scripts; entities, line breaks, bullets and link targets kept."""
    html = """<html><head><style>p {color: red}</style><script>var x = "hidden";</script>
<title>Newsletter</title></head><body><div>Chào shop,</div><div><br></div>
<div>Em đặt <b>đơn hàng #123</b> &amp; chưa nhận được.<br>Chi tiết:</div>
<ul><li>Áo thun</li><li>Quần jean</li></ul>
<p>Xem <a href="https://shop.example.vn/don/123">đơn hàng</a> hoặc
<a href="https://shop.example.vn">https://shop.example.vn</a></p></body></html>"""
    data = ("From: a@example.vn\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + html).encode()
    assert parse_mail(data).text == (
        "Chào shop,\n\nEm đặt đơn hàng #123 & chưa nhận được.\nChi tiết:\n"
        "  * Áo thun\n  * Quần jean\n\n"
        "Xem đơn hàng (https://shop.example.vn/don/123) hoặc https://shop.example.vn")


def _authres(*lines: str, sender: str = "lan.nguyen@example.vn") -> bytes:
    """Fixture 30 from ``sender``, received by our MX which wrote ``lines`` above its Received."""
    data = raw("30").replace(b"Lan.Nguyen@Example.VN", sender.encode())
    return with_headers(data, *lines, f"Received: from mail.example.vn by {TRUSTED}; "
                        "Tue, 24 Nov 2026 08:15:02 +0700")


@pytest.mark.parametrize(("data", "trusted", "expected"), [
    (_authres(f"Authentication-Results: {TRUSTED}; dmarc=pass header.from=example.vn"),
     TRUSTED, True),
    (_authres(f"Authentication-Results: {TRUSTED.upper()} 1; dkim=pass (ok) header.d=example.vn"),
     TRUSTED, True),
    (_authres(f"Authentication-Results: {TRUSTED}; dkim=pass header.i=@example.vn"), TRUSTED, True),
    (_authres(f"Authentication-Results: {TRUSTED}; dkim=pass header.d=shop.com.vn",
              sender="a@cskh.shop.com.vn"), TRUSTED, True),
    # Same results, but not our server's id, or no id configured.
    (_authres("Authentication-Results: mx.evil.example; dmarc=pass header.from=example.vn"),
     TRUSTED, False),
    (_authres(f"Authentication-Results: {TRUSTED}; dmarc=pass header.from=example.vn"),
     None, False),
    # Passing, but for someone else's domain, or a suffix everyone shares.
    (_authres(f"Authentication-Results: {TRUSTED}; dkim=pass header.d=mailer.example.com"),
     TRUSTED, False),
    (_authres(f"Authentication-Results: {TRUSTED}; dkim=pass header.d=com.vn",
              sender="a@shop.com.vn"), TRUSTED, False),
    (_authres(f"Authentication-Results: {TRUSTED}; dmarc=pass header.from=other.vn"),
     TRUSTED, False),
    (_authres(f"Authentication-Results: {TRUSTED}; dmarc=fail header.from=example.vn; "
              "dkim=fail header.d=example.vn"), TRUSTED, False),
], ids=["dmarc-pass", "dkim-d-aligned", "dkim-i-aligned", "dkim-parent-under-com.vn",
        "untrusted-id", "no-trusted-id", "dkim-unaligned", "dkim-public-suffix",
        "dmarc-other-from", "fail"])
def test_authenticated(data: bytes, trusted: str | None, expected: bool) -> None:
    """Only our own server's passing, aligned result vouches for the From address."""
    assert parse_mail(data, trusted_authserv_id=trusted).authenticated is expected


def test_forged_results_below_our_received_are_ignored() -> None:
    """A sender can write our authserv-id too; below the hops we added it does not count."""
    forged = with_headers(raw("30"), "Received: from evil by relay.example.net",
                          f"Authentication-Results: {TRUSTED}; dmarc=pass")
    data = with_headers(forged, f"Received: from relay.example.net by {TRUSTED}")
    assert parse_mail(data, trusted_authserv_id=TRUSTED).authenticated is False
    # The corpus' own Authentication-Results are from servers that are not ours.
    assert parse_mail(raw("08"), trusted_authserv_id="mx.google.com").authenticated is False


def test_content_hash_ignores_delivery_headers() -> None:
    """The same mail delivered twice hashes the same; another body does not."""
    data = raw("15")
    again = with_headers(data, "Received: from mx2.example.net by mx.tongdai.test; now")
    assert content_hash(data) == content_hash(again)
    assert len(content_hash(data)) == 64
    assert content_hash(data) != content_hash(data.replace(b"Test - body", b"Test - other"))


@pytest.mark.parametrize("data", [
    b"", b" \r\n\r\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", b'{"text": "hello"}',
    b"hello world, this is not a mail\n",
])
def test_bytes_that_are_no_mail_raise(data: bytes) -> None:
    """Only bytes without a mail header block are refused."""
    with pytest.raises(PayloadError):
        parse_mail(data)


def test_minimal_and_headers_only_mail_parse() -> None:
    """A bare header block is still a mail: empty text, no error."""
    assert parse_mail(b"Subject: hi\r\n\r\nbody").text == "body"
    mail = parse_mail(b"From: A <A@B.VN>\r\n")
    assert (mail.from_addr, mail.text, mail.subject, mail.kind) == ("a@b.vn", "", "", "message")


@pytest.mark.parametrize(("value", "expected"), [
    ("Foo <A@B.VN>", "a@b.vn"), ("A@B.VN", "a@b.vn"),
    ("  <x.y+tag@shop.com.vn> ", "x.y+tag@shop.com.vn"),
    ("\"Nguyễn, Lan\" <Lan@Example.vn>", "lan@example.vn"), ("not an address", None), ("", None),
    ("@example.vn", None),
])
def test_normalise_address(value: str, expected: str | None) -> None:
    """Addresses are compared lower-cased; text that holds none gives None."""
    assert normalise_address(value) == expected


def test_results_planted_below_our_mx_are_not_believed():
    """A sender talking straight to our MX adds no Received of their own: their forged
    'dmarc=pass' with our id sits right under the MX's real verdict. Two verdicts with our id:
    neither is believed (review finding, 2026-11-23)."""
    forged = (b"Authentication-Results: mx.tongdai.test; dmarc=fail header.from=gmail.com\r\n"
              b"Received: from attacker.example by mx.tongdai.test\r\n"
              b"Authentication-Results: mx.tongdai.test; dmarc=pass header.from=gmail.com\r\n"
              b"From: victim@gmail.com\r\nReply-To: attacker@evil.example\r\n"
              b"To: support@shop.example.vn\r\nSubject: doi dia chi\r\n"
              b"Message-ID: <forged-1@evil.example>\r\n\r\nGui hang ve dia chi moi\r\n")
    assert parse_mail(forged, "mx.tongdai.test").authenticated is False
    honest = forged.replace(b"Authentication-Results: mx.tongdai.test; dmarc=pass "
                            b"header.from=gmail.com\r\n", b"")
    assert parse_mail(honest.replace(b"dmarc=fail", b"dmarc=pass"),
                      "mx.tongdai.test").authenticated is True
