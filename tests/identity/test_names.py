"""Whom ``{{customer.first_name}}`` greets: the given name, in the order each language writes
names (core/identity/names.py)."""

from __future__ import annotations

import pytest

from tongdai.core.identity.names import given_name


@pytest.mark.parametrize(("name", "language", "given"), [
    # Vietnamese: family name first, given name last
    ("Nguyễn Văn An", None, "An"),
    ("Trần Thị Thu Hà", None, "Hà"),
    ("nguyen van an", None, "an"),            # no marks: the family name says it
    ("Lan Anh", "vi", "Anh"),                 # neither: the customer's language
    ("Đặng Hỷ", "en", "Hỷ"),                  # Vietnamese letters outweigh the language
    ("An Nguyễn", None, "An"),                # Western order (first_name last_name)
    ("Nguyễn Thị Lan 阮氏兰", None, "Lan"),     # both scripts: the Latin one
    # Chinese: family name first, one character or a compound surname of two
    ("王小明", None, "小明"),
    ("欧阳娜娜", None, "娜娜"),
    ("司馬懿", None, "懿"),                     # Traditional compound surname
    ("李白", "vi", "白"),
    ("阮氏兰", None, "氏兰"),
    ("王", None, "王"),
    ("Nguyễn Thị Lan 阮氏兰", "zh-Hans", "氏兰"),
    # English and others: given name first
    ("John Smith", None, "John"),
    ("José García", None, "José"),            # an acute alone is not Vietnamese
    ("Mary Le", "en", "Mary"),                # Lê at the end: Western order
    ("Lan", "vi", "Lan"),
    ("  ", None, None),
    (None, "vi", None),
])
def test_given_name_follows_the_language_of_the_name(name, language, given):
    assert given_name(name, language) == given
