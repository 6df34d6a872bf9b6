"""The baseline web app: bare Flask answering "ok" to a POST.

``gunicorn tongdai.benchmarks.hello_app:app``.

It gets the very same requests as the webhook (same path, headers and bodies) and serves them
under the same gunicorn settings, so the only difference measured is our request path.
"""

from flask import Flask, Response

app = Flask(__name__)


@app.post("/")
@app.post("/<path:_path>")
def hello(_path: str = "") -> Response:
    return Response("ok", 200, mimetype="text/plain")
