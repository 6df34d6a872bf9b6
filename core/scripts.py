"""The Lua scripts (``core/lua/*.lua``), rendered with the key formats of ``core/keys.py``."""

from __future__ import annotations

import re
from importlib import resources

import redis

from tongdai.core.keys import Keys

_NAMES = ("ingest", "patch_message", "watermark", "create_outbound", "release_lock",
          "rate_slot", "send_gate", "send_done", "cas_hset", "merge", "split", "subject_keys",
          "create_note", "claim", "presence", "sync_load")
_INCLUDE = re.compile(r"\{\{INCLUDE:([a-z_]+)\}\}")


def _source(name: str) -> str:
    """A script's text with its ``{{INCLUDE:file}}`` lines replaced by those files."""
    src = resources.files("tongdai.core.lua").joinpath(f"{name}.lua").read_text("utf-8")
    return _INCLUDE.sub(lambda m: _source(m.group(1)), src)


class Scripts:
    """Registered scripts for one Redis client and key prefix (EVALSHA with NOSCRIPT fallback)."""

    def __init__(self, r: redis.Redis, keys: Keys) -> None:
        templates = keys.lua_templates()
        for name in _NAMES:
            src = _source(name)
            for tname, tpl in templates.items():
                src = src.replace("{{" + tname + "}}", tpl)
            missing = re.findall(r"\{\{([A-Z_]+)\}\}", src)
            if missing:
                raise RuntimeError(f"core/lua/{name}.lua uses key formats core/keys.py lacks: {missing}")
            setattr(self, name, r.register_script(src))
