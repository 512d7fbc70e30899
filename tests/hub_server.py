"""A small Hugging Face Hub, in memory, over real HTTP: the parts of the Hub API that
``huggingface_hub`` and ``datasets`` use to create a dataset repo, commit files (regular and LFS),
tag commits, list refs and trees, and download files (GET, HEAD, Range). A commit may add and
delete files, and is refused (412) when its ``parentCommit`` is no longer the branch's head.

Tests start it on a free port and point clients at it with ``HF_ENDPOINT``. ``fail_commits`` makes
the next N commit calls fail with a 500, to test retries. ``python tests/hub_server.py`` serves it
on 127.0.0.1 to try push and pull by hand (docs/cli.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Repo:
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # oid -> files
    lfs_paths: dict[str, set[str]] = field(default_factory=dict)  # oid -> paths stored via LFS
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> str | None:
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        return rev if rev in self.commits else None


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubState:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.fail_commits = 0
        self.commit_calls = 0
        self.tokens_seen: set[str] = set()
        self.downloads: list[str] = []  # repo paths served by GET .../resolve/..., in order
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState

    def log_message(self, *args) -> None:
        pass

    # -- plumbing ------------------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes = b"", headers: dict | None = None, ctype="application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json({"error": message}, status, headers)

    def _auth(self) -> None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self.state.tokens_seen.add(auth[7:])

    def _repo(self, repo_id: str) -> Repo | None:
        return self.state.repos.get(repo_id)

    def _revision(self, repo_id: str, rev: str) -> tuple[Repo | None, str | None]:
        """The repo and the commit a (URL-encoded) branch, tag or commit names; None when unknown."""
        repo = self._repo(repo_id)
        return repo, repo.resolve(unquote(rev)) if repo else None

    def _entries(self, repo: Repo, oid: str) -> list[dict]:
        files = repo.commits[oid]
        out, dirs = [], set()
        for path in sorted(files):
            data = files[path]
            entry = {"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path}
            if path in repo.lfs_paths.get(oid, set()):
                entry["lfs"] = {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            out.append(entry)
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        out += [
            {"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "path": d}
            for d in sorted(dirs)
        ]
        return out

    # -- routes --------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def _route(self) -> None:
        body = self._body() if self.command in ("POST", "PUT") else b""
        self._auth()
        url = urlparse(self.path)
        path = url.path
        query = parse_qs(url.query)
        with self.state.lock:
            try:
                self._dispatch(path, query, body)
            except Exception as exc:  # a bug here should read as a 500, not hang the client
                self._error(500, f"test hub error: {exc!r}")

    def _dispatch(self, path: str, query: dict, body: bytes) -> None:
        m = re.fullmatch(r"/api/repos/create", path)
        if m and self.command == "POST":
            req = json.loads(body)
            repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            url = f"http://{self.headers.get('Host')}/datasets/{repo_id}"
            if repo_id in self.state.repos:  # the Hub answers 409 with the repo's url
                return self._json({"error": "You already created this dataset repo", "url": url}, 409)
            repo = Repo(private=bool(req.get("private")))
            oid = hashlib.sha1(f"init {repo_id} {time.time()}".encode()).hexdigest()
            repo.commits[oid] = {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"}
            repo.branches["main"] = oid
            self.state.repos[repo_id] = repo
            return self._json({"url": url, "name": repo_id})

        if path == "/api/validate-yaml" and self.command == "POST":
            import yaml

            content = json.loads(body)["content"]
            match = re.match(r"^---\n(.*?)\n---\n", content, re.S)
            try:
                meta = yaml.safe_load(match.group(1)) if match else None
            except yaml.YAMLError as exc:
                return self._json({"errors": [{"message": str(exc)}]}, 400)
            if match and not isinstance(meta, dict):
                return self._json({"errors": [{"message": "metadata is not a mapping"}]}, 400)
            return self._json({"errors": [], "warnings": []})

        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/preupload/(.+)", path)
        if m:
            req = json.loads(body)
            files = [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith((".parquet", ".png")) else "regular",
                      "shouldIgnore": False} for f in req["files"]]  # fmt: skip
            return self._json({"files": files})

        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if m:
            req = json.loads(body)
            host = self.headers.get("Host")
            objects = []
            for obj in req["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in self.state.lfs:
                    entry["actions"] = {"upload": {"href": f"http://{host}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            return self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                              ctype="application/vnd.git-lfs+json")  # fmt: skip

        m = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)
        if m and self.command == "PUT":
            if hashlib.sha256(body).hexdigest() != m.group(1):
                return self._error(400, "sha256 mismatch")
            self.state.lfs[m.group(1)] = body
            return self._send(200)

        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/commit/(.+)", path)
        if m and self.command == "POST":
            self.state.commit_calls += 1
            if self.state.fail_commits > 0:
                self.state.fail_commits -= 1
                return self._error(500, "simulated server failure")
            repo = self._repo(m.group(1))
            branch = unquote(m.group(2))
            if repo is None:
                return self._error(404, "Repository not found", "RepoNotFound")
            files = dict(repo.commits[repo.branches[branch]])
            lfs_paths = set(repo.lfs_paths.get(repo.branches[branch], set()))
            summary = ""
            for line in body.splitlines():
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "header":
                    summary = value.get("summary", "")
                    parent = value.get("parentCommit")
                    if parent and parent != repo.branches[branch]:  # as the Hub: the branch moved on
                        return self._error(412, f"A commit has happened since {parent}", "PreconditionFailed")
                elif item["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                    lfs_paths.discard(value["path"])
                elif item["key"] == "lfsFile":
                    if value["oid"] not in self.state.lfs:
                        return self._error(400, f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = self.state.lfs[value["oid"]]
                    lfs_paths.add(value["path"])
                elif item["key"] in ("deletedFile", "deletedFolder"):
                    files = {
                        p: d
                        for p, d in files.items()
                        if p != value["path"] and not p.startswith(value["path"] + "/")
                    }
            oid = hashlib.sha1(f"{summary}{sorted(files)}{time.time()}".encode()).hexdigest()
            repo.commits[oid] = files
            repo.lfs_paths[oid] = lfs_paths
            repo.branches[branch] = oid
            host = self.headers.get("Host")
            return self._json({"commitUrl": f"http://{host}/datasets/{m.group(1)}/commit/{oid}", "commitOid": oid,
                               "pullRequestUrl": None})  # fmt: skip

        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tag/(.+)", path)
        if m and self.command == "POST":
            repo, target = self._revision(m.group(1), m.group(2))
            if target is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            tag = json.loads(body)["tag"]
            if tag in repo.tags:
                return self._error(409, f"Tag {tag} already exists")
            repo.tags[tag] = target
            return self._json({})

        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/refs", path)
        if m:
            repo = self._repo(m.group(1))
            if repo is None:
                return self._error(404, "Repository not found", "RepoNotFound")
            return self._json({
                "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": o} for b, o in repo.branches.items()],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": o} for t, o in repo.tags.items()],
                "converts": [],
            })  # fmt: skip

        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if m and self.command == "GET":
            repo = self._repo(m.group(1))
            oid = repo.resolve(unquote(m.group(2) or "main")) if repo else None
            if oid is None:
                return self._error(
                    404,
                    "Repository or revision not found",
                    "RepoNotFound" if repo is None else "RevisionNotFound",
                )
            return self._json({
                "_id": m.group(1), "id": m.group(1), "sha": oid, "private": repo.private, "disabled": False,
                "gated": False, "downloads": 0, "likes": 0, "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in sorted(repo.commits[oid])],
            })  # fmt: skip

        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if m:
            repo, oid = self._revision(m.group(1), m.group(2))
            if oid is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            prefix = unquote(m.group(3) or "").strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            out = []
            for entry in self._entries(repo, oid):
                p = entry["path"]
                if prefix and not p.startswith(prefix + "/"):
                    continue
                rest = p[len(prefix) + 1 :] if prefix else p
                if recursive or "/" not in rest:
                    out.append(entry)
            if prefix and not out and not any(e["path"] == prefix for e in self._entries(repo, oid)):
                return self._error(404, "Entry not found", "EntryNotFound")
            return self._json(out)

        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/paths-info/(.+)", path)
        if m and self.command == "POST":
            repo, oid = self._revision(m.group(1), m.group(2))
            if oid is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            ctype = self.headers.get("Content-Type", "")
            wanted = (
                json.loads(body)["paths"] if "json" in ctype else parse_qs(body.decode()).get("paths", [])
            )
            entries = {e["path"]: e for e in self._entries(repo, oid)}
            return self._json([entries[p] for p in wanted if p in entries])

        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and self.command in ("GET", "HEAD"):
            repo, oid = self._revision(m.group(1), m.group(2))
            if oid is None:
                return self._error(404, "Revision not found", "RevisionNotFound")
            file_path = unquote(m.group(3))
            data = repo.commits[oid].get(file_path)
            if data is None:
                return self._error(404, "Entry not found", "EntryNotFound")
            if self.command == "GET":
                self.state.downloads.append(file_path)
            etag = (
                hashlib.sha256(data).hexdigest()
                if file_path in repo.lfs_paths.get(oid, set())
                else git_blob_sha(data)
            )
            headers = {"X-Repo-Commit": oid, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            if file_path in repo.lfs_paths.get(oid, set()):
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
            rng = self.headers.get("Range")
            if rng and self.command == "GET":
                start_s, _, end_s = rng.removeprefix("bytes=").partition("-")
                start = int(start_s) if start_s else max(len(data) - int(end_s), 0)
                end = int(end_s) if end_s and start_s else len(data) - 1
                end = min(end, len(data) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return self._send(206, data[start : end + 1], headers, "application/octet-stream")
            if self.command == "HEAD":
                self.send_response(200)
                for k, v in {
                    **headers,
                    "Content-Length": str(len(data)),
                    "Content-Type": "application/octet-stream",
                }.items():
                    self.send_header(k, v)
                self.end_headers()
                return None
            return self._send(200, data, headers, "application/octet-stream")

        return self._error(404, f"no route for {self.command} {path}")


class HubServer:
    def __init__(self, port: int = 0) -> None:
        self.state = HubState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def client_env(self, home: Path, token: str = "hf_test_token") -> dict[str, str]:
        """The environment of a process that talks to this server as the Hub: the project on its
        path, huggingface_hub and datasets pointed here, online, with caches under ``home``."""
        return {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "HF_ENDPOINT": self.url,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_TOKEN": token,
            "HF_HOME": str(home / "hf-home"),
            "HF_DATASETS_CACHE": str(home / "hf-datasets"),
        }

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _load_state(folder: Path) -> HubState:
    import pickle

    state = HubState()
    saved = folder / "hub-state.pickle"
    if saved.is_file():
        with saved.open("rb") as fh:
            data = pickle.load(fh)  # a file this script wrote itself, in a folder the user named
        state.repos, state.lfs = data["repos"], data["lfs"]
    return state


def _save_state(state: HubState, folder: Path) -> None:
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    with state.lock:
        data = pickle.dumps({"repos": state.repos, "lfs": state.lfs})
    tmp = folder / "hub-state.pickle.tmp"
    tmp.write_bytes(data)
    tmp.replace(folder / "hub-state.pickle")


def main(argv: list[str] | None = None) -> int:
    """Serve this Hub on 127.0.0.1 until Ctrl-C, to try ``dataset-builder push`` and ``pull``
    without the real Hub (docs/cli.md). Repos live in memory, and in ``--folder`` between runs."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument(
        "--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free one)"
    )
    parser.add_argument("--folder", type=Path, default=None, help="keep the repos here between runs")
    args = parser.parse_args(argv)
    server = HubServer(port=args.port)
    if args.folder is not None:
        server.state = _load_state(args.folder)
        server.httpd.RequestHandlerClass.state = server.state  # type: ignore[attr-defined]
    print(f"local Hub at {server.url}; in another shell:", flush=True)
    print(
        f"  export HF_ENDPOINT={server.url} HF_HUB_OFFLINE=0 HF_HUB_DISABLE_XET=1 HF_TOKEN=hf_local",
        flush=True,
    )
    import signal

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)  # `kill PID` saves the repos as Ctrl-C does
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        if args.folder is not None:
            _save_state(server.state, args.folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
