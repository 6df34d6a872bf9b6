"""WSGI entry for gunicorn: ``gunicorn tongdai.webhooks.wsgi:app``. Config errors stop it at start-up."""

from tongdai.webhooks import create_app

app = create_app()
