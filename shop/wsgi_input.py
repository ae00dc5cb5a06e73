"""Chunked request bodies, read as what they are instead of as nothing.

A client may send a body with ``Transfer-Encoding: chunked`` and no ``Content-Length``
(streaming uploaders, some HTTP libraries, proxies that re-chunk). The server (gunicorn)
de-chunks it and says so with ``wsgi.input_terminated``, but Django reads only
``CONTENT_LENGTH`` bytes -- zero -- so the API saw an empty body and a form saw no fields.

``ChunkedBodyMiddleware`` wraps the WSGI application: for such a request it reads the
de-chunked body once, up to the same limit Django applies to bodies
(``DATA_UPLOAD_MAX_MEMORY_SIZE``; ``CHUNKED_UPLOAD_MAX_BYTES`` for multipart file
uploads), spooling to disk past a megabyte, and hands Django a stream with its length.
A body over the limit is refused with 413 in the API's one error shape before the
application runs. A server that does not de-chunk (``wsgi.input_terminated`` unset) is
left alone: reading its raw stream to the end could block.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable

from django.conf import settings

READ_BLOCK = 64 * 1024
SPOOL_IN_MEMORY = 1024 * 1024


def _limit(environ: dict) -> int | None:
    if environ.get("CONTENT_TYPE", "").lower().startswith("multipart/"):
        return settings.CHUNKED_UPLOAD_MAX_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _too_large(start_response: Callable, limit: int) -> Iterable[bytes]:
    body = json.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": f"The request body is larger than the limit of {limit} bytes.",
                "fields": [],
            }
        }
    ).encode()
    start_response(
        "413 Request Entity Too Large",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
    )
    return [body]


class ChunkedBodyMiddleware:
    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            limit = _limit(environ)
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - handed to the app
            size = 0
            stream = environ["wsgi.input"]
            while block := stream.read(READ_BLOCK):
                size += len(block)
                if limit is not None and size > limit:
                    spool.close()
                    return _too_large(start_response, limit)
                spool.write(block)
            spool.seek(0)
            environ["wsgi.input"] = spool
            environ["CONTENT_LENGTH"] = str(size)
        return self.application(environ, start_response)
