"""The listening-test web page: a local HTTP server (Python's ``http.server``) over a session folder.

Pages: ``/`` asks for a listener name; ``/trial?listener=NAME`` plays the next item the
listener has not rated (audio player and piano-roll image, in an order shuffled per
listener) and posts a rating (1-5) and a forced choice (real or generated) to ``/rate``;
``/media/<id>.wav|png`` serves the session's media under opaque ids. Nothing a page or
URL shows tells real from generated.
"""

from __future__ import annotations

import hashlib
import html
import pathlib
import re
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from chroma_keras.errors import ChromaKerasError
from chroma_keras.evaluation.listening.session import MEDIA_DIR, load_items
from chroma_keras.evaluation.listening.store import RatingStore

DB_FILE = "ratings.sqlite"
_MEDIA = re.compile(r"^/media/([0-9a-f]{16})\.(wav|png)$")
_STYLE = "<style>body{font-family:sans-serif;max-width:44em;margin:2em auto}label{margin-right:1em}</style>"


def listener_order(listener: str, item_ids) -> list:
    """The items in the order one listener hears them: shuffled by a seed derived from the name."""
    seed = int.from_bytes(hashlib.sha256(listener.encode()).digest()[:8], "little")
    ids = sorted(item_ids)
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


def _page(body: str) -> bytes:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Listening test</title>{_STYLE}</head><body>{body}</body></html>".encode()


class _Handler(BaseHTTPRequestHandler):
    session: pathlib.Path
    store: RatingStore

    def log_message(self, format, *args):  # keep the terminal for the summary
        pass

    def _send(self, status, body: bytes, content_type="text/html; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location):
        self.send_response(303)
        self.send_header("Location", location)
        self.end_headers()

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        media = _MEDIA.match(url.path)
        if media and media.group(1) in self.store.items:
            data = (self.session / MEDIA_DIR / f"{media.group(1)}.{media.group(2)}").read_bytes()
            return self._send(200, data, "audio/wav" if media.group(2) == "wav" else "image/png")
        if url.path == "/":
            return self._send(
                200,
                _page(
                    "<h1>Listening test</h1><p>You will hear short segments, some played from real songs and some made "
                    "by a model, in random order. Rate each and guess which it is.</p>"
                    "<form action='/trial' method='get'><label>Your name <input name='listener' id='listener' required "
                    "maxlength='100'></label><button type='submit' id='start'>Start</button></form>"
                ),
            )
        if url.path == "/trial":
            listener = (query.get("listener") or [""])[0].strip()
            if not listener:
                return self._redirect("/")
            done = self.store.rated_by(listener)
            order = listener_order(listener, self.store.items)
            remaining = [item for item in order if item not in done]
            if not remaining:
                return self._send(200, _page(f"<h1>Thank you</h1><p id='done'>You rated all {len(order)} segments.</p>"))
            item = remaining[0]
            name = html.escape(listener, quote=True)
            return self._send(
                200,
                _page(
                    f"<h1>Segment {len(done) + 1} of {len(order)}</h1>"
                    f"<audio controls src='/media/{item}.wav'></audio><br><img src='/media/{item}.png' alt='piano roll' width='512'>"
                    f"<form action='/rate' method='post'><input type='hidden' name='listener' value='{name}'>"
                    f"<input type='hidden' name='item' value='{item}'><p>How musical is it?<br>"
                    + "".join(f"<label><input type='radio' name='rating' value='{r}' id='rating{r}' required> {r}</label>" for r in range(1, 6))
                    + "</p><p>Was it played from a real song or made by the model?<br>"
                    "<label><input type='radio' name='choice' value='real' id='choice-real' required> real</label>"
                    "<label><input type='radio' name='choice' value='generated' id='choice-generated'> generated</label></p>"
                    "<button type='submit' id='submit'>Next</button></form>"
                ),
            )
        return self._send(404, _page("<p>Not found.</p>"))

    def do_POST(self):
        if urllib.parse.urlparse(self.path).path != "/rate":
            return self._send(404, _page("<p>Not found.</p>"))
        length = min(int(self.headers.get("Content-Length") or 0), 10_000)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        value = lambda key: (form.get(key) or [""])[0]  # noqa: E731
        try:
            self.store.add(value("listener"), value("item"), value("rating"), value("choice"))
        except ChromaKerasError as exc:
            return self._send(400, _page(f"<p>{html.escape(str(exc))}</p><p><a href='/'>Back</a></p>"))
        return self._redirect("/trial?" + urllib.parse.urlencode({"listener": value("listener")}))


def make_server(session_dir, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A server for a session folder (``port=0`` picks a free port: ``server.server_address[1]``)."""
    session = pathlib.Path(session_dir)
    store = RatingStore(session / DB_FILE, load_items(session))
    handler = type("SessionHandler", (_Handler,), {"session": session, "store": store})
    return ThreadingHTTPServer((host, port), handler)
