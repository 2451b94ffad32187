"""The gateway's API key: with one configured, every API call must send `Authorization: Bearer <key>` (compared in
constant time); the page, its static files and /healthz stay open (a probe and a browser's first load carry no
key). The key never appears in an answer, a log line or a metric."""
from __future__ import annotations

import hmac
import json
import os
from pathlib import Path

OPEN_PATHS = ("/", "/healthz")
OPEN_PREFIXES = ("/static/",)
KEY_ENV = "SKETCHYGAN_API_KEY"


def read_key(path: str | None) -> str | None:
    """The API key from a file (`--api-key-file`; first line) or the SKETCHYGAN_API_KEY environment variable, never
    from the command line (which every local user can read in the process list); None: no key."""
    if path:
        lines = Path(path).read_text().strip().splitlines() if Path(path).is_file() else []
        key = lines[0].strip() if lines else ""
        if not key:
            raise ValueError(f"--api-key-file {path}: no such file, or it is empty (expected the key on its first "
                             "line)")
        return key
    return os.environ.get(KEY_ENV) or None


def require_key(app, key: str):
    """`app` behind the key: a call without it, or with another, is answered 401 before it reaches the app."""
    expected = f"Bearer {key}".encode()

    async def guarded(scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["path"].startswith(OPEN_PREFIXES):
            return await app(scope, receive, send)
        sent = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(sent, expected):
            return await app(scope, receive, send)
        why = "a wrong API key" if sent else "no API key"
        body = json.dumps({"error": f"{why}: send the header 'Authorization: Bearer <key>'"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return guarded
