"""A local stand-in for the Hugging Face Hub's file endpoints, for tests (no network).

It answers what `huggingface_hub.hf_hub_download` asks (read from huggingface_hub's
file_download.py / utils/_http.py):
  HEAD/GET /{org}/{repo}/resolve/{revision}/{path}
    - LFS files (the Hub stores .safetensors in LFS): 302 to a second "CDN" server on another
      port, with X-Repo-Commit, X-Linked-Etag (the file's sha256) and X-Linked-Size; the client
      takes the metadata from this response and downloads from the Location.
    - plain git files: 200 with X-Repo-Commit, ETag (git blob sha1) and Content-Length.
    - missing repo / revision / file: 404 with X-Error-Code RepoNotFound / RevisionNotFound /
      EntryNotFound (the header hf_raise_for_status maps to its exception classes).
  HEAD/GET /blobs/{sha256} on the CDN server: the bytes.
Every request to either server is recorded in `requests`, so tests can assert that none was made.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class _Repo:
    commits: dict[str, dict[str, tuple[bytes, bool]]] = field(default_factory=dict)  # -> files
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes, served by the CDN
        # (method, path, headers with lowercase names)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(cdn=False))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), self._handler(cdn=True))
        self.url = f"http://127.0.0.1:{self._hub.server_port}"
        self.cdn_url = f"http://127.0.0.1:{self._cdn.server_port}"
        self._threads = [
            threading.Thread(target=s.serve_forever, args=(0.02,), daemon=True)  # fast shutdown
            for s in (self._hub, self._cdn)
        ]

    def __enter__(self) -> FakeHub:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        for s in (self._hub, self._cdn):
            s.shutdown()
            s.server_close()

    def add_file(
        self, repo_id: str, path: str, data: bytes, *, branch: str = "main", lfs: bool = True
    ) -> str:
        """Commit one file on `branch` (keeping earlier files); returns the new commit hash."""
        repo = self.repos.setdefault(repo_id, _Repo())
        parent = repo.refs.get(branch)
        files = dict(repo.commits[parent]) if parent else {}
        files[path] = (data, lfs)
        commit = hashlib.sha1(f"{repo_id}{parent}{path}{len(repo.commits)}".encode()).hexdigest()
        repo.commits[commit] = files
        repo.refs[branch] = commit
        self.blobs[hashlib.sha256(data).hexdigest()] = data
        return commit

    def _handler(self, *, cdn: bool):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _answer(self, *, body: bool) -> None:
                with hub._lock:
                    hub.requests.append((self.command, self.path, _lower(self.headers)))
                status, headers, data = hub._cdn_route(self.path) if cdn else hub._route(self.path)
                self.send_response(status)
                headers.setdefault("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if body and status == 200:
                    self.wfile.write(data)

        return Handler

    def _cdn_route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        sha = path.rsplit("/", 1)[-1]
        if not path.startswith("/blobs/") or sha not in self.blobs:
            return 404, {}, b""
        return 200, {"ETag": f'"{sha}"'}, self.blobs[sha]

    def _route(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = path.split("?", 1)[0].split("/")
        # ['', org, repo, 'resolve', revision, *file]
        if len(parts) < 6 or parts[3] != "resolve":
            return 404, {}, b""
        repo_id, revision, filename = f"{parts[1]}/{parts[2]}", unquote(parts[4]), parts[5:]
        filename = unquote("/".join(filename))
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repo not found"}, b""
        commit = repo.refs.get(revision, revision)
        if commit not in repo.commits:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        found = repo.commits[commit].get(filename)
        if found is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b""
        data, lfs = found
        if lfs:
            sha = hashlib.sha256(data).hexdigest()
            return (
                302,
                {
                    "Location": f"{self.cdn_url}/blobs/{sha}",
                    "X-Repo-Commit": commit,
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{hashlib.sha1(filename.encode()).hexdigest()}"',  # the LFS pointer's
                },
                b"",
            )
        git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{git_sha1}"'}, data


def _lower(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
