"""The Flask HTTP edge: inbound webhooks, the agent API, health."""

from __future__ import annotations

import redis
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

import tongdai.core.workspace  # noqa: F401  (registers the workspace on the pipeline's hooks)
from tongdai.core.errors import StoreUnavailable, TongdaiError
from tongdai.core.hub import Hub

MAX_BODY_BYTES = 10 * 1024 * 1024


def create_app(hub: Hub | None = None, test_config: dict | None = None) -> Flask:
    """Build the WSGI app around a Hub (built from the environment when not given)."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    # UTF-8 on the wire: Vietnamese and Chinese text stay readable, byte-exact, not \uXXXX.
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    if test_config:
        app.config.update(test_config)
    app.extensions["tongdai"] = hub or Hub.from_env()

    from tongdai.webhooks import api, console, health, inbound, metrics

    app.register_blueprint(inbound.bp)
    app.wsgi_app = inbound.FastWebhooks(app.wsgi_app, app.extensions["tongdai"], MAX_BODY_BYTES)
    app.register_blueprint(api.bp)
    api.spec.register(app)  # /api/v1/openapi.json, generated from the routes
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)  # /metrics: Prometheus, for a bearer token
    app.register_blueprint(console.bp)  # /login, /logout, /console (docs/workspace.md)

    @app.errorhandler(TongdaiError)
    def _tongdai_error(exc: TongdaiError):
        if isinstance(exc, StoreUnavailable):
            return jsonify(exc.to_json()), 503, {"Retry-After": str(exc.retry_after_s)}
        return jsonify(exc.to_json()), exc.http_status

    @app.errorhandler(redis.RedisError)
    def _redis_error(exc: redis.RedisError):
        """Redis away (restarting, disk full): 503 + Retry-After, so platforms retry."""
        unavailable = StoreUnavailable.from_redis(exc)
        if unavailable is None:
            raise exc
        return _tongdai_error(unavailable)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # keep the exception's own headers (Allow on 405, Retry-After, ...), JSON body
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        return jsonify({"error": {"code": exc.name.replace(" ", ""),
                                  "message": exc.description}}), exc.code, headers

    return app


def hub_of(app: Flask) -> Hub:
    return app.extensions["tongdai"]
