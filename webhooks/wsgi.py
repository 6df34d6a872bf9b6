"""WSGI entry for gunicorn: ``gunicorn webhooks.wsgi:app``. Config errors stop it at start-up."""

from webhooks import create_app

app = create_app()
