"""Self-service: the knowledge base and the bot that answers from it.

``articles`` (the articles in Redis, import/export), ``matching`` (BM25 over folded text, the
confidence), ``bot`` (the feed reactor that answers or hands off, and its counts),
``evaluation`` (``tongdai faq eval`` on a labelled set).

May import: plumbing, ``identity`` and ``pipeline`` (the workspace's layer). Importing
``tongdai.core.workspace`` imports this package, which registers the bot's reactor.
"""
