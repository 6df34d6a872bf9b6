"""tongdai — tổng đài: an omnichannel customer-support hub (Messenger, Zalo OA, Telegram, email).

The distribution installs this one package; the checkout's top-level folders are its parts:

- ``tongdai.adapters``  one module or package per platform: wire format ↔ core model, pure.
- ``tongdai.core``      the domain: plumbing, then ``identity``, ``pipeline``, ``workspace``
                        (imports run one way; ``tests/test_layers.py`` enforces it), and ``cli``.
- ``tongdai.webhooks``  the Flask HTTP edge: inbound webhooks, the agent API, the console.
- ``tongdai.worker``    RQ jobs and long-running process entry points, thin over ``core``.
- ``tongdai.benchmarks`` what ``tongdai bench`` runs.

A third-party adapter writes ``from tongdai.adapters.base import Adapter``.
"""
