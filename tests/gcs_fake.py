"""A local stand-in for Cloud Storage, so that ``gs://`` paths run offline through the real
clients: GDAL's ``/vsigs/`` (rasterio opens ``gs://`` URIs with it; XML API: ``GET|HEAD
/BUCKET/OBJECT`` with byte ranges) and Beam's GCS filesystem (google-cloud-storage; JSON API:
bucket and object metadata, object listing, ``alt=media`` downloads with ranges). Objects are the
files under a local folder, ``ROOT/BUCKET/OBJECT``; read-only. Only the transport is faked: the
clients' own code runs, pointed here by their documented switches (GDAL ``CPL_GS_ENDPOINT`` with
``GS_NO_SIGN_REQUEST``, google-cloud-storage ``STORAGE_EMULATOR_HOST``).
"""
from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import threading
import urllib.parse


class _Handler(http.server.BaseHTTPRequestHandler):
    root = ""
    requests: list = []

    def log_message(self, fmt, *args) -> None:       # quiet; `requests` keeps what was asked
        pass

    def _file(self, bucket: str, name: str) -> str | None:
        path = os.path.join(self.root, bucket, *name.split("/"))
        return path if name and os.path.isfile(path) else None

    def _send(self, code: int, body: bytes = b"", ctype: str = "application/json", headers=None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, json.dumps(obj).encode())

    def _not_found(self) -> None:
        self._json(404, {"error": {"code": 404, "message": "No such object", "errors": [{"reason": "notFound"}]}})

    def _media(self, path: str) -> None:
        data = open(path, "rb").read()
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if not m:
            return self._send(200, data, "application/octet-stream")
        a = int(m.group(1))
        b = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        self._send(206, data[a:b + 1], "application/octet-stream",
                   {"Content-Range": f"bytes {a}-{b}/{len(data)}"})

    def _meta(self, bucket: str, name: str, path: str) -> dict:
        st = os.stat(path)
        when = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"kind": "storage#object", "bucket": bucket, "name": name, "size": str(st.st_size),
                "generation": str(st.st_mtime_ns), "metageneration": "1", "updated": when,
                "timeCreated": when, "contentType": "application/octet-stream",
                "id": f"{bucket}/{name}/{st.st_mtime_ns}", "storageClass": "STANDARD"}

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = url.path.split("/")
        self.requests.append((self.command, url.path, self.headers.get("Range")))
        if url.path.startswith("/download/storage/v1/b/") and len(parts) >= 8:     # JSON API media
            bucket, name = parts[5], urllib.parse.unquote("/".join(parts[7:]))
            path = self._file(bucket, name)
            return self._media(path) if path else self._not_found()
        if url.path.startswith("/storage/v1/b/"):                                  # JSON API metadata
            bucket = parts[4]
            if not os.path.isdir(os.path.join(self.root, bucket)):
                return self._not_found()
            if len(parts) == 5:
                return self._json(200, {"kind": "storage#bucket", "name": bucket, "id": bucket})
            if len(parts) == 6:                                                    # list objects
                prefix = query.get("prefix", [""])[0]
                items = []
                base = os.path.join(self.root, bucket)
                for folder, _, files in os.walk(base):
                    for f in files:
                        name = os.path.relpath(os.path.join(folder, f), base).replace(os.sep, "/")
                        if name.startswith(prefix):
                            items.append(self._meta(bucket, name, os.path.join(folder, f)))
                return self._json(200, {"kind": "storage#objects", "items": sorted(items, key=lambda i: i["name"])})
            name = urllib.parse.unquote("/".join(parts[6:]))
            path = self._file(bucket, name)
            if path is None:
                return self._not_found()
            if query.get("alt", [""])[0] == "media":
                return self._media(path)
            return self._json(200, self._meta(bucket, name, path))
        bucket, name = parts[1], urllib.parse.unquote("/".join(parts[2:]))          # XML API (GDAL)
        path = self._file(bucket, name)
        return self._media(path) if path else self._send(404, b"<Error><Code>NoSuchKey</Code></Error>",
                                                         "application/xml")


class FakeGcs:
    """Serves ``root`` (``root/BUCKET/OBJECT``) on 127.0.0.1 until `close`."""

    def __init__(self, root: str):
        handler = type("Handler", (_Handler,), {"root": str(root), "requests": []})
        self.requests = handler.requests
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def environment(self) -> dict[str, str]:
        """What points GDAL and google-cloud-storage here, anonymously, with no metadata-server
        probe (an unreachable one answers at once)."""
        return {"CPL_GS_ENDPOINT": self.url + "/", "GS_NO_SIGN_REQUEST": "YES",
                "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "STORAGE_EMULATOR_HOST": self.url,
                "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9", "NO_GCE_CHECK": "True"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
