"""An in-process fake slurmrestd (REST v0.0.38) for unit tests: the answers and errors the real one gives
(measured against Slurm 22.05.8, see ../shared/docs/slurm-local.md), with knobs to break it."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/slurm/v0.0.38"
META = {"plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
        "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}}


class FakeSlurm:
    """Jobs are dicts in ``self.jobs`` (Slurm's job records); tests move them with ``set_state``."""

    def __init__(self, *, token: str = "good-token", user: str = "ci", nodes: int = 2, cpus: int = 64,  # noqa: S107
                 gpus: int = 8, port: int = 0):
        self.token, self.user = token, user
        self.jobs: dict[int, dict] = {}
        self.next_id = 1
        self.requests: list[tuple[str, str, dict, bytes]] = []  # method, path, headers, body
        self.submit_errors: list[tuple[int, str]] = []  # the next submits fail with these (number, text)
        self.drop_next = 0  # close the connection without an answer this many times
        self.gpus_per_node = gpus
        self.nodes = [{"name": f"node{i}", "state": "idle", "cpus": cpus, "idle_cpus": cpus, "real_memory": 257000,
                       "alloc_memory": 0, "gres": f"gpu:{gpus}", "gres_used": "gpu:0", "partitions": ["debug"]}
                      for i in range(1, nodes + 1)]
        self.lock = threading.Lock()
        self.connections: set = set()
        self.last_update = 0  # when a job last changed (whole seconds, as slurmctld's last_job_update)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with fake.lock:
                    fake.connections.add(self.connection)

            def _answer(self, status: int, payload, content_type="application/json"):
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.requests.append((method, self.path, dict(self.headers), body))
                    if fake.drop_next > 0:
                        fake.drop_next -= 1
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                status, payload = fake.route(method, self.path, self.headers, body)
                self._answer(status, payload, "text/plain" if isinstance(payload, bytes) else "application/json")

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSlurm:
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        """Stop listening and drop the open keep-alive connections (as a killed slurmrestd would)."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()

    # --- behaviour ---------------------------------------------------------------------------
    @staticmethod
    def _errors(*errors, status=500):
        return status, {"meta": META, "errors": [{"error_number": n, "error": text, "description": text}
                                                 for n, text in errors]}

    def route(self, method, path, headers, body):
        if not headers.get("X-SLURM-USER-TOKEN"):
            return 401, b"Authentication failure"
        if headers.get("X-SLURM-USER-TOKEN") != self.token or headers.get("X-SLURM-USER-NAME") != self.user:
            return self._errors((-1, "Unspecified error"))
        if not path.startswith(PREFIX):
            return 404, b"Not found"
        path = path[len(PREFIX):]
        if method == "GET" and path == "/ping":
            return 200, {"meta": META, "errors": [], "pings": [{"hostname": "vm", "ping": "UP", "status": 0,
                                                                "mode": "primary"}]}
        if method == "GET" and path.split("?")[0] == "/jobs":
            query = dict(p.split("=", 1) for p in path.partition("?")[2].split("&") if "=" in p)
            if "update_time" in query and int(query["update_time"]) >= self.last_update:
                return 304, b""
            return 200, {"meta": META, "errors": [], "jobs": [dict(j) for j in self.jobs.values()]}
        if method == "GET" and path == "/nodes":
            return 200, {"meta": META, "errors": [], "nodes": self.nodes}
        if method == "GET" and path == "/partitions":
            return 200, {"meta": META, "errors": [], "partitions": [
                {"name": "debug", "nodes": "node[1-2]", "state": "UP", "max_time_limit": -1,
                 "total_cpus": sum(n["cpus"] for n in self.nodes), "total_nodes": len(self.nodes)}]}
        if method == "POST" and path == "/job/submit":
            try:
                payload = json.loads(body)
            except ValueError:
                return 400, b"malformed"
            job = payload.get("job") or {}
            if not isinstance(job.get("environment"), dict):
                return self._errors((2127, "environment must be set"), (9001, "Failure during parsing"))
            if self.submit_errors:
                return self._errors(self.submit_errors.pop(0))
            if int(job.get("gpus_per_node") or 0) > self.gpus_per_node:
                return 500, {"meta": META, "errors": [{"error_code": 2014,
                                                       "error": "Requested node configuration is not available"}]}
            job_id = self.next_id
            self.next_id += 1
            self.touch()
            self.jobs[job_id] = {"job_id": job_id, "name": job.get("name", ""), "user_name": self.user,
                                 "partition": job.get("partition"), "job_state": "PENDING", "exit_code": 0,
                                 "submit_time": int(time.time()), "start_time": 0, "end_time": 0,
                                 "time_limit": job.get("time_limit"), "cpus": job.get("cpus_per_task", 1),
                                 "node_count": job.get("nodes", 1), "nodes": "",
                                 "tres_per_node": f"gres:gpu:{job['gpus_per_node']}" if job.get("gpus_per_node")
                                 else "", "script": payload.get("script"), "job": job}
            return 200, {"meta": META, "errors": [], "job_id": job_id, "step_id": "BATCH",
                         "job_submit_user_msg": ""}
        if method == "DELETE" and path.startswith("/job/"):
            job_id = int(path.rsplit("/", 1)[1])
            job = self.jobs.get(job_id)
            if job is None:
                return self._errors((2017, "Invalid job id specified"))
            if job["job_state"] in ("PENDING", "RUNNING"):
                now = int(time.time())
                job.update(job_state="CANCELLED", end_time=now, start_time=job["start_time"] or now, exit_code=0)
                self.touch()
            return 200, {"meta": META, "errors": []}
        return 404, b"Not found"

    def set_state(self, job_id: int, state: str, *, exit_code: int = 0, start: float | None = None,
                  end: float | None = None) -> None:
        with self.lock:
            job = self.jobs[job_id]
            job["job_state"] = state
            if start is not None:
                job["start_time"] = int(start)
            if end is not None:
                job["end_time"] = int(end)
            job["exit_code"] = exit_code
            if state == "RUNNING":
                job["nodes"] = "node1"
            self.touch()

    def touch(self) -> None:
        """A job changed: the next "changed since?" poll gets the whole list."""
        self.last_update = int(time.time()) + 1

    def by_name(self, name: str) -> dict:
        return next(j for j in self.jobs.values() if j["name"] == name)

    def tokens_seen(self) -> set[str]:
        return {h.get("X-SLURM-USER-TOKEN", "") for _m, _p, h, _b in self.requests}
