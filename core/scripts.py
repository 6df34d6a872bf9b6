"""The Lua scripts (``core/lua/*.lua``), rendered with the key formats of ``core/keys.py``."""

from __future__ import annotations

import re
from importlib import resources

import redis

from tongdai.core.keys import FEED_MAXLEN, Keys

_NAMES = ("ingest", "patch_message", "watermark", "create_outbound", "release_lock",
          "rate_slot", "send_gate", "send_done", "cas_hset", "merge", "split", "subject_keys",
          "create_note", "claim", "presence", "sync_load", "inbox_filter")
_INCLUDE = re.compile(r"\{\{INCLUDE:([a-z_]+)\}\}")


def _source(name: str) -> str:
    """A script's text with its ``{{INCLUDE:file}}`` lines replaced by those files."""
    src = resources.files("tongdai.core.lua").joinpath(f"{name}.lua").read_text("utf-8")
    return _INCLUDE.sub(lambda m: _source(m.group(1)), src)


def lua_templates(keys: Keys) -> dict[str, str]:
    """The key formats the scripts use (``{{CONV}}`` in a script), from core/keys.py, with ``%s``
    where the id goes (``string.format``)."""
    esc = keys.prefix.replace("%", "%%")
    t = Keys(esc)
    return {
        "SEQ_CUSTOMER": t.seq("customer"),
        "SEQ_CONVERSATION": t.seq("conversation"),
        "SEQ_MESSAGE": t.seq("message"),
        "STATS": t.stats(),
        "IDENTITY": t.identity_index("%s"),
        "CUSTOMER": t.customer("%s"),
        "CUSTOMER_IDENTITIES": t.customer_identities("%s"),
        "CUSTOMER_IDENTIFIERS": t.customer_identifiers("%s"),
        "CUSTOMER_LAST_IN": t.customer_last_inbound("%s"),
        "CUSTOMER_CONVS": t.customer_conversations("%s"),
        "CONV": t.conversation("%s"),
        "CONV_TAGS": t.conversation_tags("%s"),
        "TIMELINE": t.timeline("%s"),
        "MESSAGES": t.messages("%s"),
        "DEDUPE": t.dedupe("%s"),
        "QUEUE": t.queue("%s"),
        "CONVS": t.conversations_by_status("%s"),
        "FEED": t.feed(),
        "FEED_MAXLEN": str(FEED_MAXLEN),
        "SEQ_MERGE": t.seq("merge"),
        "IDENTIFIER_HOLDERS": t.identifier_holders("%s", "%s"),
        "MERGE": t.merge("%s"),
        "CUSTOMER_MERGES": t.customer_merges("%s"),
        "SUGGESTION": t.suggestion("%s"),
        "SUGGESTIONS": t.suggestions(),
        "CUSTOMER_SUGGESTIONS": t.customer_suggestions("%s"),
        "LINK_CODE": t.link_code("%s"),
        "LINK_CODE_QUOTA": t.link_code_quota("%s"),
        "SUBJECT_ERASURES": t.subject_erasures(),
        "ACKS_DUE": t.acknowledgements_due(),
        "UNREAD": t.unread(),
        "SLA_DUE": t.sla_due(),
        "SLA_WARN": t.sla_warn(),
        "SLA_STATS": t.sla_stats("%d"),
        "USER_LOAD": t.user_load("%s"),
    }


class Scripts:
    """Registered scripts for one Redis client and key prefix (EVALSHA with NOSCRIPT fallback)."""

    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        templates = lua_templates(keys)
        for name in _NAMES:
            src = _source(name)
            for tname, tpl in templates.items():
                src = src.replace("{{" + tname + "}}", tpl)
            missing = re.findall(r"\{\{([A-Z_]+)\}\}", src)
            if missing:
                raise RuntimeError(f"core/lua/{name}.lua uses key formats lua_templates lacks: {missing}")
            setattr(self, name, r.register_script(src))
