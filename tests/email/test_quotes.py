"""strip_quoted: what an agent sees of a customer's reply, in the clients our customers use."""

from __future__ import annotations

import pytest

from tongdai.adapters.email.quotes import strip_quoted

CASES = [
    ("gmail English, attribution wrapped over two lines",
     ("Thanks, got it. When will it arrive?\n\n"
      "On Mon, Nov 23, 2026 at 10:00 AM Shop ABC <\nsupport@example.vn> wrote:\n\n"
      "> Your order #123 has shipped.\n> Shop ABC\n"),
     "Thanks, got it. When will it arrive?"),
    ("gmail Vietnamese",
     ("Shop ơi em chưa nhận được hàng.\n\n"
      "Vào Th 2, 23 thg 11, 2026 lúc 10:00 Shop ABC <support@example.vn> đã viết:\n\n"
      "> Dạ đơn hàng đã gửi rồi ạ.\n"),
     "Shop ơi em chưa nhận được hàng."),
    ("gmail Vietnamese typed without diacritics",
     ("Shop oi em chua nhan duoc hang\nem o Da Nang\n\n"
      "Vao Th 2, 23 thg 11, 2026 luc 10:00 Shop ABC <support@example.vn> da viet:\n"
      "> Da shop gui roi a\n"),
     "Shop oi em chua nhan duoc hang\nem o Da Nang"),
    ("gmail simplified Chinese",
     ("我还没有收到货，请帮我查一下。\n\n"
      "在 2026年11月23日周一 10:00，Shop ABC <support@example.vn> 写道：\n\n> 您的订单已发货。\n"),
     "我还没有收到货，请帮我查一下。"),
    ("gmail simplified Chinese, newer name-first form",
     ("我还没有收到货。\n\nShop ABC <support@example.vn> 于2026年11月23日周一 10:00写道：\n\n"
      "> 您的订单已发货。\n"),
     "我还没有收到货。"),
    ("gmail traditional Chinese",
     ("請問何時出貨？\n\n於 2026年11月23日 週一 上午10:00，Shop ABC <support@example.vn> 寫道：\n"
      "> 已收到訂單\n"),
     "請問何時出貨？"),
    ("QQ mail / Foxmail original-mail block",
     ("好的，谢谢！\n\n------------------ 原始邮件 ------------------\n"
      "发件人: \"Shop ABC\"<support@example.vn>;\n发送时间: 2026年11月23日(星期一) 上午10:00\n"
      "收件人: \"张伟\"<zhangwei@qq.com>;\n主题: 回复：订单问题\n\n您的订单已发货。\n"),
     "好的，谢谢！"),
    ("Outlook English header block",
     ("Please cancel my order.\n\nRegards,\nJohn\n\nFrom: Shop ABC <support@example.vn>\n"
      "Sent: Monday, November 23, 2026 10:00 AM\nTo: John <john@example.com>\n"
      "Subject: RE: Order #123\n\nYour order shipped.\n"),
     "Please cancel my order.\n\nRegards,\nJohn"),
    ("Outlook Vietnamese header block under an underscore rule",
     ("Em muốn đổi size áo sang L.\n\n________________________________\n"
      "Từ: Shop ABC <support@example.vn>\nGửi: Thứ Hai, 23 tháng 11, 2026 10:00\n"
      "Đến: Lan <lan@example.vn>\nChủ đề: Đơn hàng #123\n\nĐơn hàng đã giao.\n"),
     "Em muốn đổi size áo sang L."),
    ("Outlook Chinese header block with full-width colons",
     ("请尽快处理。\n\n发件人： Shop ABC <support@example.vn>\n发送时间： 2026年11月23日 10:00\n"
      "收件人： 张伟 <zhangwei@example.cn>\n主题： 订单问题\n\n您好\n"),
     "请尽快处理。"),
    ("Outlook -----Original Message-----",
     ("OK, noted.\n\n-----Original Message-----\nFrom: support@example.vn\n"
      "Sent: Monday\n\nold text\n"),
     "OK, noted."),
    ("Gmail bold header block of a converted HTML thread",
     ("See below.\n\n*From:* Shop ABC <support@example.vn>\n*Sent:* Monday\n"
      "*To:* me@example.com\n*Subject:* Order\n\nold\n"),
     "See below."),
    ("signature delimiter",
     "Can you call me back?\n\n-- \nLan Nguyen\nPhone 0901 234 567\n",
     "Can you call me back?"),
    ("iPhone sign-off above the quote",
     ("Yes please\n\nSent from my iPhone\n\n"
      "> On 23 Nov 2026, at 10:00, Shop <s@example.vn> wrote:\n"
      "> Shall we refund?\n"),
     "Yes please"),
    ("Vietnamese iPhone sign-off", "Dạ vâng ạ\n\nGửi từ iPhone của tôi\n", "Dạ vâng ạ"),
    ("Chinese iPhone sign-off", "好的\n\n发自我的iPhone\n", "好的"),
    ("a '>' line after new text ends it, even without an attribution",
     "Thanks!\n\n> This long quoted line was wrapped by the\nclient here\n> more\n",
     "Thanks!"),
    ("bottom-posting: the answer below the quote is kept",
     ("Marc Slemko wrote:\n> If you have a real uid of root ...\n> That is not good.\n\n"
      "Isn't that the case for every other server?\n"),
     "Isn't that the case for every other server?"),
    ("a whole-quote mail keeps its quote, minus the signature",
     "On Mon, 23 Nov 2026 10:00, A <a@example.com> wrote:\n> only quoted\n-- \nsig\n",
     "On Mon, 23 Nov 2026 10:00, A <a@example.com> wrote:\n> only quoted"),
    ("a bare forward keeps everything",
     "-----Original Message-----\nFrom: a@example.com\nSent: Monday\nTo: b@example.com\n\nhello\n",
     "-----Original Message-----\nFrom: a@example.com\nSent: Monday\nTo: b@example.com\n\nhello"),
    ("prose that merely ends with 'wrote:' is not an attribution",
     "Last week I wrote:\nthe order number twice. Please check.\n",
     "Last week I wrote:\nthe order number twice. Please check."),
    ("a From: line alone is not an Outlook block",
     "From: my old address I sent the receipt.\nPlease check it.\n",
     "From: my old address I sent the receipt.\nPlease check it."),
    ("CRLF line ends and trailing blanks are tidied",
     ("Hello  \r\n\r\n\r\n\r\nsecond line\r\n\r\n"
      "On Mon, 23 Nov 2026, X <x@example.com> wrote:\r\n> q\r\n"),
     "Hello\n\nsecond line"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_strip_quoted_keeps_only_the_new_text(text: str, expected: str) -> None:
    """Each client's way of quoting is cut; the customer's own words are kept exactly."""
    assert strip_quoted(text) == expected


def test_text_without_quotes_is_unchanged() -> None:
    """A mail with nothing quoted comes back as written (only outer blank lines trimmed)."""
    text = "Chào shop,\n\nEm muốn hỏi về đơn #123.\n- áo: 2\n- quần: 1\n\nCảm ơn ạ"
    assert strip_quoted("\n" + text + "\n\n") == text
