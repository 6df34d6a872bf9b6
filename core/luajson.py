"""What Redis's Lua scripts would change in a stored JSON value, made safe before storing."""

from __future__ import annotations

from typing import Any

# Redis's Lua JSON (cjson, 14 significant digits, Lua numbers are doubles) rewrites a stored
# message whenever a script patches it (a reaction, a delivery status): 369239263222822, a
# Messenger sticker id, would come back as 3.6923926322282e+14. Integers that long are kept as
# their decimal strings instead; an empty list would come back as {} and is left out.
_LUA_EXACT = 10**14


def lua_exact(v: Any) -> Any:
    """``v`` with what Lua's JSON would change made safe (see above)."""
    if isinstance(v, dict):
        return {k: lua_exact(x) for k, x in v.items() if x != []}
    if isinstance(v, list):
        return [lua_exact(x) for x in v]
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= _LUA_EXACT:
        return str(v)
    return v
