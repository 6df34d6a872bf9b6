"""Platform adapters: each translates one platform's wire format to and from the core model.

Adapters are pure: no Redis, no globals. They verify signatures, parse raw requests into
:class:`tongdai.core.models.InboundEvent` lists, send through their platform's HTTP API (httpx) and
answer questions about their platform (reply windows, rate limits, verifiable identifiers).
"""
