"""Realistic inbound traffic: Telegram private-chat updates with Vietnamese and English text.

Deterministic for a seed. Every update is distinct (update_id, message_id); users are spread
over a given number of chats so conversations get several messages each.
"""

from __future__ import annotations

import random

import orjson

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

_FIRST = ["Lan", "Minh", "Hùng", "Thảo", "Tuấn", "Ngọc", "Dũng", "Hương", "Phương", "Quân",
          "Linh", "Trang", "Đức", "Mai", "Anh", "Khoa", "Vy", "Bảo", "John", "Emily", "David"]
_LAST = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
         "Bùi", "Đỗ", "Smith", "Brown"]
_VI = [
    "Cho mình hỏi nạp thẻ bị lỗi, tiền đã trừ mà chưa nhận được ạ",
    "Shop ơi đơn hàng #{n} khi nào giao vậy ạ? Mình đặt từ hôm qua rồi",
    "Mình muốn hoàn tiền đơn {n} vì sản phẩm bị lỗi",
    "mat khau dang nhap bi sai hoai, giup minh voi",
    "Em chào anh chị, em cần hỗ trợ đổi số điện thoại tài khoản",
    "Sao mình không đăng nhập được nữa vậy shop?",
    "Cảm ơn shop nhé, mình nhận được hàng rồi 👍",
    "Mình nạp tiền qua thẻ cào {n}k mà báo thất bại",
    "Cho hỏi phí vận chuyển ra Hà Nội bao nhiêu ạ?",
    "Đơn {n} giao thiếu 1 món, shop kiểm tra giúp em với",
    "ok",
    "Alo shop ơi",
    "Mình muốn đổi size áo từ M sang L được không ạ, mã đơn {n}",
    "Tài khoản của tôi bị khóa sau khi đổi mật khẩu, làm sao để mở lại?",
]
_EN = [
    "Hi, I can't log in to my account since this morning",
    "When will order #{n} arrive? It has been a week",
    "I want a refund for order {n}, the item arrived broken",
    "Hello, how do I top up my balance with a card?",
    "Thanks for the help!",
    "Is there any discount for orders above {n}k?",
    "My password reset email never came, can you check please",
    "hi",
]


def text(rng: random.Random) -> str:
    t = rng.choice(_VI if rng.random() < 0.7 else _EN)
    if "{n}" in t:
        t = t.replace("{n}", str(rng.randint(100, 99999)))
    if rng.random() < 0.15:  # now and then a longer message
        t = t + ". " + rng.choice(_VI + _EN).replace("{n}", str(rng.randint(100, 999)))
    return t


def user(rng: random.Random, uid: int) -> dict:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    return {"id": uid, "is_bot": False, "first_name": last, "last_name": first,
            "username": f"user{uid}", "language_code": "vi" if rng.random() < 0.8 else "en"}


class Traffic:
    """Builds update bodies: ``n`` messages from ``users`` chats (round robin)."""

    def __init__(self, seed: int = 1, users: int = 1000, base_uid: int = 7_000_000_000,
                 base_update: int = 500_000_000) -> None:
        self.rng = random.Random(seed)
        self.users = [user(self.rng, base_uid + i) for i in range(users)]
        self.base_update = base_update
        self.next_mid = [1] * users
        self.count = 0
        self.text_bytes = 0

    def body(self, date: int = 1_732_345_678) -> bytes:
        i = self.count
        u = self.users[i % len(self.users)]
        slot = i % len(self.users)
        mid = self.next_mid[slot]
        self.next_mid[slot] += 1
        t = text(self.rng)
        self.count += 1
        self.text_bytes += len(t.encode())
        chat = {k: u[k] for k in ("id", "first_name", "last_name", "username")}
        chat["type"] = "private"
        return orjson.dumps({
            "update_id": self.base_update + i,
            "message": {"message_id": mid, "from": u, "chat": chat, "date": date + i // 100,
                        "text": t}})

    def bodies(self, n: int) -> list[bytes]:
        return [self.body() for _ in range(n)]
