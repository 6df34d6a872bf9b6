"""WSGI entry for gunicorn: ``gunicorn tongdai.webhooks.wsgi:app``. Config errors stop it at start-up;
later edits are looked at by a thread of each worker (without ``--preload``: a thread does not
survive the fork)."""

import threading

from tongdai.webhooks import create_app, hub_of

app = create_app()
hub_of(app).watch.start("web")
hub_of(app).watch.in_background(threading.Event())
