"""Real centres: a site adapter over Slurm's REST daemon (slurmrestd, API v0.0.38, JWT auth).

Three layers:

* ``SlurmClient``: one keep-alive HTTP connection (``http.client``) with timeouts and a bounded
  retry on connection errors. slurmrestd answers most failures with HTTP 500 and an ``errors[]``
  list; ``SlurmError`` carries our stable code for them (``slurm_unavailable``,
  ``slurm_auth_failed``, ``slurm_config_unavailable``, ``slurm_invalid_job`` ...). Tokens come
  from a ``TokenSource``: a stored token, a token file, or Slurm's HS256 key (short-lived tokens
  minted here with ``hmac``). Tokens never appear in errors, logs or ``repr``.
* pure mapping: our job → the v0.0.38 job description; a Slurm job record → (our state, detail,
  exit code), with ``exit_code`` being the raw wait status (``768`` is exit code 3).
* ``SlurmAdapter``: the federation's ``SiteAdapter`` shape (submit_batch / cancel / poll / capacity).
  ``poll`` makes one ``GET /jobs`` call and reports what changed since the last one.

Site health (a Slurm that stops answering goes degraded, then offline, and back online when it
answers) is ``record_poll``; the ticker calls it after every poll.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from federation.simulator import (
    CANCELLED,
    COMPLETED,
    DETAIL_NODE_FAILURE,
    DETAIL_SITE_OUTAGE,
    DETAIL_WALLTIME,
    FAILED,
    QUEUED,
    REFUSED_DUPLICATE,
    REFUSED_UNKNOWN_PARTITION,
    RUNNING,
    SITE_OFFLINE,
    SITE_ONLINE,
    TERMINAL_STATES,
    TIMED_OUT,
    Ack,
    CapacitySnapshot,
    PartitionSnapshot,
    StatusChange,
)
from portal.errors import ApplicationError

log = logging.getLogger(__name__)

API_VERSION = "v0.0.38"
JOB_NAME_PREFIX = "suanwang-"  # a Slurm job's name is this plus our job id
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Where jobs start when the site names no directory (slurmrestd's own cwd otherwise): every user may write here.
DEFAULT_WORKDIR = "/tmp"  # noqa: S108
TOKEN_FILE, JWT_KEY = "token_file", "jwt_key"  # token source names


# --- errors ---------------------------------------------------------------------------------
class SlurmError(ApplicationError):
    """A failed call to slurmrestd, with our stable code and Slurm's own errors (no credentials)."""

    status_code = 502
    default_code = "slurm_error"

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None,
                 slurm_errors: list[dict] | None = None):
        super().__init__(message, code=code)
        self.http_status = http_status
        self.slurm_errors = slurm_errors or []
        if self.code == "slurm_unavailable":
            self.status_code = 503


# Slurm error numbers (slurm_errno.h) → our codes. slurmrestd names the number "error_number" in some
# answers and "error_code" in others (job submission).
ERROR_CODES = {
    2000: "slurm_invalid_partition",  # Invalid partition name specified
    2002: "slurm_permission_denied",  # Access/permission denied
    2014: "slurm_config_unavailable",  # Requested node configuration is not available
    2017: "slurm_invalid_job",  # Invalid job id specified
    2020: "slurm_busy",  # Job can not be altered now, try again later
    2127: "slurm_invalid_request",  # environment must be set
    9000: "slurm_invalid_request",  # Unknown query field
    9001: "slurm_invalid_request",  # Failure during parsing
    1007: "slurm_auth_failed",  # Protocol authentication error
    5005: "slurm_auth_failed",  # Zero Bytes were transmitted (seen with a bad token)
    -1: "slurm_auth_failed",  # Unspecified error: what slurmrestd says for a garbage or expired token
}
# Errors that are about the centre, not one job: a batch stops there and the rest stays routed.
CENTRE_ERRORS = {"slurm_unavailable", "slurm_auth_failed", "slurm_busy", "slurm_error", "slurm_invalid_config"}


def error_from_response(status: int, body: bytes) -> SlurmError | None:
    """The error in a slurmrestd answer, or None when it succeeded."""
    if status == 401:
        return SlurmError("Slurm refused the credentials (HTTP 401).", code="slurm_auth_failed", http_status=401)
    payload = None
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    errors = [e for e in errors or [] if isinstance(e, dict)]
    if errors:
        first = errors[0]
        number = first.get("error_number", first.get("error_code"))
        code = ERROR_CODES.get(number, "slurm_error")
        text = first.get("description") or first.get("error") or "unknown error"
        message = f"Slurm error {number}: {first.get('error') or text}"
        if first.get("description") and first.get("description") != first.get("error"):
            message += f" ({first['description']})"
        return SlurmError(message[:500], code=code, http_status=status, slurm_errors=errors)
    if status >= 400:
        code = "slurm_invalid_request" if status == 400 else "slurm_error"
        return SlurmError(f"slurmrestd answered HTTP {status}.", code=code, http_status=status)
    if not isinstance(payload, dict):
        return SlurmError("slurmrestd sent an answer that is not JSON.", code="slurm_error", http_status=status)
    return None


# --- tokens ---------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_hs256(key: bytes, user: str, *, lifespan_s: int = 600, now: float | None = None) -> str:
    """A Slurm JWT (HS256, claims exp/iat/sun) signed with Slurm's key, without PyJWT."""
    now = int(time.time() if now is None else now)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = _b64(json.dumps({"exp": now + lifespan_s, "iat": now, "sun": user}, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{_b64(signature)}"


class TokenSource:
    """Gives the current token; ``refresh`` forgets a cached one (after an auth failure)."""

    def token(self) -> str:
        raise NotImplementedError

    def refresh(self) -> None:
        return None

    def __repr__(self) -> str:  # never the secret
        return f"<{type(self).__name__}>"


class StaticToken(TokenSource):
    def __init__(self, secret: str):
        self._secret = secret

    def token(self) -> str:
        if not self._secret:
            raise SlurmError("No Slurm token is configured for this centre.", code="slurm_auth_failed")
        return self._secret


class TokenFile(TokenSource):
    """A token kept in a file (e.g. renewed by ``scripts/local-slurm.sh``): re-read when it changes."""

    def __init__(self, path: str):
        self.path = path
        self._cached: tuple[float, str] | None = None

    def token(self) -> str:
        try:
            mtime = os.stat(self.path).st_mtime
            if self._cached is None or self._cached[0] != mtime:
                with open(self.path, encoding="utf-8") as f:
                    text = f.read().strip()
                self._cached = (mtime, text.removeprefix("SLURM_JWT="))
        except OSError as exc:
            raise SlurmError(f"Cannot read the Slurm token file {self.path}: {exc.strerror}.",
                             code="slurm_auth_failed") from None
        return self._cached[1]

    def refresh(self) -> None:
        self._cached = None


class KeyMinter(TokenSource):
    """Mints short-lived tokens from Slurm's HS256 key file (which must be readable by this process)."""

    def __init__(self, path: str, user: str, *, lifespan_s: int = 600):
        self.path, self.user, self.lifespan_s = path, user, lifespan_s
        self._cached: tuple[float, str] | None = None

    def token(self) -> str:
        now = time.time()
        if self._cached is None or self._cached[0] - now < 60:
            try:
                with open(self.path, "rb") as f:
                    key = f.read()
            except OSError as exc:
                raise SlurmError(f"Cannot read the Slurm JWT key {self.path}: {exc.strerror}.",
                                 code="slurm_auth_failed") from None
            self._cached = (now + self.lifespan_s, mint_hs256(key, self.user, lifespan_s=self.lifespan_s, now=now))
        return self._cached[1]

    def refresh(self) -> None:
        self._cached = None


# --- HTTP ---------------------------------------------------------------------------------------
_CONNECTION_ERRORS = (ConnectionError, http.client.HTTPException, socket.timeout, OSError)


class SlurmClient:
    """slurmrestd over one keep-alive connection (thread-safe: calls are serialised)."""

    def __init__(self, base_url: str, user: str, tokens: TokenSource, *, timeout: float = 5.0, retries: int = 2,
                 retry_delay: float = 0.2, list_timeout: float = 30.0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SlurmError("The slurmrestd URL must be http(s)://host:port.", code="slurm_invalid_config")
        self.base_url = base_url.rstrip("/")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/") + f"/slurm/{API_VERSION}"
        self.user, self.tokens = user, tokens
        self.timeout, self.retries, self.retry_delay = timeout, retries, retry_delay
        # GET /jobs grows with every job slurmctld remembers (MinJobAge): ~3 MB and ~1 s per 1,000 jobs here.
        self.list_timeout = max(list_timeout, timeout)
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self.calls = 0

    def __repr__(self) -> str:
        return f"<SlurmClient {self.base_url} user={self.user}>"

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def request(self, method: str, path: str, body: dict | None = None, *, idempotent: bool | None = None,
                timeout: float | None = None) -> dict:
        """One call; connection errors are retried (a POST only when it surely was not received)."""
        idempotent = method in ("GET", "DELETE") if idempotent is None else idempotent
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        url = self.prefix + path
        auth_retried = False
        attempt = 0
        while True:
            headers = {"X-SLURM-USER-NAME": self.user, "X-SLURM-USER-TOKEN": self.tokens.token(),
                       "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            with self._lock:
                reused = self._conn is not None
                sent = False
                try:
                    conn = self._connection()
                    conn.timeout = timeout or self.timeout
                    if conn.sock is not None:
                        conn.sock.settimeout(conn.timeout)
                    conn.request(method, url, body=data, headers=headers)
                    sent = True
                    response = conn.getresponse()
                    payload = response.read()
                    status = response.status
                    if response.will_close:
                        conn.close()
                        self._conn = None
                except _CONNECTION_ERRORS as exc:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    # A request that may have reached Slurm is not sent twice unless repeating it is harmless;
                    # a stale keep-alive connection dropped by the server fails before any answer.
                    stale = reused and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                        ConnectionResetError))
                    retry = attempt < self.retries and (idempotent or not sent or stale)
                    if not retry:
                        reason = "timed out" if isinstance(exc, socket.timeout) else type(exc).__name__
                        raise SlurmError(f"slurmrestd at {self.base_url} is unreachable ({reason}).",
                                         code="slurm_unavailable") from None
                    attempt += 1
                    if not (stale and attempt == 1):
                        time.sleep(self.retry_delay * attempt)
                    continue
                finally:
                    self.calls += 1
            if status == 304:  # "nothing changed since update_time"
                return {"not_modified": True}
            error = error_from_response(status, payload)
            if error is None:
                return json.loads(payload)
            if error.code == "slurm_auth_failed" and not auth_retried and idempotent:
                auth_retried = True  # a token file may have been renewed, a minted token expired
                self.tokens.refresh()
                continue
            raise error

    # v0.0.38 calls
    def ping(self) -> dict:
        started = time.perf_counter()
        payload = self.request("GET", "/ping")
        latency_ms = (time.perf_counter() - started) * 1000
        pings = payload.get("pings") or [{}]
        release = (payload.get("meta") or {}).get("Slurm", {}).get("release", "")
        return {"ok": all(p.get("ping") == "UP" for p in pings), "latency_ms": round(latency_ms, 2),
                "version": release, "api": API_VERSION,
                "controllers": [{"host": p.get("hostname"), "state": p.get("ping"), "mode": p.get("mode")}
                                for p in pings]}

    def submit(self, script: str, job: dict) -> int:
        return int(self.request("POST", "/job/submit", {"script": script, "job": job})["job_id"])

    def cancel(self, slurm_job_id: int) -> None:
        self.request("DELETE", f"/job/{int(slurm_job_id)}")

    def jobs(self, *, update_time: int | None = None) -> list[dict] | None:
        """Every job in slurmctld's memory; None when ``update_time`` is given and nothing changed since
        (slurmrestd answers 304 then: a quiet poll costs one tiny request instead of the whole list)."""
        path = "/jobs" if update_time is None else f"/jobs?update_time={int(update_time)}"
        payload = self.request("GET", path, timeout=self.list_timeout)
        if payload.get("not_modified"):
            return None
        return payload.get("jobs") or []

    def nodes(self) -> list[dict]:
        return self.request("GET", "/nodes").get("nodes") or []

    def partitions(self) -> list[dict]:
        return self.request("GET", "/partitions").get("partitions") or []


# --- mapping ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobScript:
    """What runs: the shell script and the environment the job gets (``scripts`` gives None for a job
    with nothing to run: no command and an application without a launch script)."""

    script: str
    environment: dict[str, str]


def build_script(*, job_id: int, name: str, launch_script: str, command: str) -> str:
    name = "".join(c if c.isprintable() else " " for c in name)  # a comment line stays one line
    lines = ["#!/bin/bash", f"# Suanwang job {job_id}" + (f": {name}" if name else "")]
    if launch_script.strip():
        lines.append(launch_script.rstrip("\n"))
    if command.strip():
        lines.append(command.rstrip("\n"))
    return "\n".join(lines) + "\n"


def job_description(*, job_id: int, slurm_partition: str, nodes: int, cores_per_node: int, memory_mb_per_node: int,
                    gpus_per_node: int, walltime_s: int, environment: dict[str, str], workdir: str) -> dict:
    """Our job as a v0.0.38 job description (``environment`` is required; ``nodes`` is an integer)."""
    job = {
        "name": f"{JOB_NAME_PREFIX}{job_id}",
        "partition": slurm_partition,
        "nodes": nodes,
        "tasks": nodes,
        "tasks_per_node": 1,
        "cpus_per_task": cores_per_node,
        "memory_per_node": memory_mb_per_node,
        "time_limit": max(1, -(-walltime_s // 60)),  # minutes, rounded up
        "current_working_directory": workdir or DEFAULT_WORKDIR,
        "standard_output": f"{JOB_NAME_PREFIX}%j.out",
        "environment": environment,
    }
    if gpus_per_node:
        job["gpus_per_node"] = str(gpus_per_node)  # "[type:]count": a bare count, never "gpu:N"
    return job


def exit_status(raw: int | None) -> int | None:
    """v0.0.38 reports the raw wait status: the exit code is its high byte, a signal 128 + its number."""
    if raw is None or raw < 0:
        return None
    if raw & 0x7F:
        return 128 + (raw & 0x7F)
    return (raw >> 8) & 0xFF


# Slurm job state → (our state, detail)
STATE_MAP = {
    "PENDING": (QUEUED, ""),
    "REQUEUED": (QUEUED, ""),
    "REQUEUE_FED": (QUEUED, ""),
    "REQUEUE_HOLD": (QUEUED, ""),
    "CONFIGURING": (QUEUED, ""),
    "RESV_DEL_HOLD": (QUEUED, ""),
    "RUNNING": (RUNNING, ""),
    "COMPLETING": (RUNNING, ""),
    "SUSPENDED": (RUNNING, "suspended"),
    "STOPPED": (RUNNING, "stopped"),
    "SIGNALING": (RUNNING, ""),
    "STAGE_OUT": (RUNNING, ""),
    "RESIZING": (RUNNING, ""),
    "COMPLETED": (COMPLETED, ""),
    "FAILED": (FAILED, ""),
    "CANCELLED": (CANCELLED, "cancelled"),
    "TIMEOUT": (TIMED_OUT, DETAIL_WALLTIME),
    "DEADLINE": (TIMED_OUT, "deadline"),
    "NODE_FAIL": (FAILED, DETAIL_NODE_FAILURE),
    "BOOT_FAIL": (FAILED, DETAIL_NODE_FAILURE),
    "OUT_OF_MEMORY": (FAILED, "out_of_memory"),
    "PREEMPTED": (FAILED, "preempted"),
    "REVOKED": (CANCELLED, "revoked"),
    "SPECIAL_EXIT": (FAILED, "special_exit"),
}


def map_job(record: dict) -> tuple[str, str, int | None]:
    """A Slurm job record → (our state, detail, exit code). Unknown states read as queued."""
    raw_state = str(record.get("job_state") or "").split()[0].split("+")[0].upper() if record.get("job_state") else ""
    state, detail = STATE_MAP.get(raw_state, (QUEUED, raw_state.lower()))
    code = None
    if state in (COMPLETED, FAILED):
        code = exit_status(record.get("exit_code"))
        if state == FAILED and not detail and code is not None:
            detail = f"exit_code={code}"
    return state, detail, code


def our_job_id(record: dict) -> int | None:
    name = str(record.get("name") or "")
    if not name.startswith(JOB_NAME_PREFIX):
        return None
    rest = name[len(JOB_NAME_PREFIX):]
    return int(rest) if rest.isdigit() else None


_GRES_GPU = re.compile(r"gpu(?::[^:(,]+)?:(\d+)")


def gres_gpus(text: str | None) -> int:
    """GPUs in a gres string: ``gpu:8``, ``gpu:a100:4(S:0)``, ``gpu:(null):2(IDX:0-1)``."""
    if not text:
        return 0
    total = 0
    for part in re.split(r",(?![^(]*\))", text):
        part = part.strip().replace("(null):", "")
        m = _GRES_GPU.match(part)
        if m:
            total += int(m.group(1))
    return total


# --- the adapter -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Tracked:
    slurm_id: int
    state: str = ""  # our state last reported ("" = handed over, not seen yet)
    seen: bool = False


@dataclass
class SlurmSiteConfig:
    """What the adapter needs from a Site (plain values: no Django here)."""

    code: str
    url: str
    user: str
    token_source: str
    token: str = field(default="", repr=False)
    credential_path: str = ""
    workdir: str = DEFAULT_WORKDIR
    partitions: dict[str, str] = field(default_factory=dict)  # ours → Slurm's

    def fingerprint(self) -> tuple:
        digest = hashlib.sha256(self.token.encode()).hexdigest() if self.token else ""
        return (self.url, self.user, self.token_source, digest, self.credential_path, self.workdir,
                tuple(sorted(self.partitions.items())))

    def tokens(self) -> TokenSource:
        if self.token_source == TOKEN_FILE:
            return TokenFile(self.credential_path)
        if self.token_source == JWT_KEY:
            return KeyMinter(self.credential_path, self.user)
        return StaticToken(self.token)


class SlurmAdapter:
    """A Slurm centre behind the federation's site-adapter shape.

    ``scripts``: a callable giving, for our job ids, the ``JobScript`` to run (the federation reads
    them from the database; tests and benchmarks pass their own).
    """

    CAPACITY_REFRESH_S = 10.0
    IGNORE_RECHECK_S = 60.0
    FULL_POLL_S = 30.0  # between them, polls ask "changed since the last one?" (304: nothing to read)

    def __init__(self, config: SlurmSiteConfig, *, scripts, active=None, client: SlurmClient | None = None):
        self.config = config
        # ``active(ids)``: which of these job ids the federation has handed to this centre and not seen end
        # (jobs another process submitted, or submitted before this process started). None: all of them.
        self.active = active
        # Slurm job ids named like ours that were not ours to report when last asked (→ when): asked again after
        # IGNORE_RECHECK_S, since another process may have handed the job over and not committed yet.
        self._ignored: dict[int, float] = {}
        self._since: int | None = None  # the last poll's time: the next asks only "anything changed since?"
        self._full_at = 0.0
        self.site_code = config.code
        self.client = client or SlurmClient(config.url, config.user, config.tokens())
        self.scripts = scripts
        self._tracked: dict[int, _Tracked] = {}
        self._lock = threading.Lock()
        self._capacity: CapacitySnapshot | None = None
        self._capacity_at = 0.0
        self._counts: dict[str, tuple[int, int, int, int]] = {}  # Slurm partition → queued, running, pend core/gpu s
        self.last_error: SlurmError | None = None

    def __repr__(self) -> str:
        return f"<SlurmAdapter {self.site_code} {self.config.url}>"

    # submit ---------------------------------------------------------------------------------
    def submit_batch(self, jobs) -> list[Ack]:
        """One POST /job/submit per job. Jobs Slurm refuses get a reason; when Slurm stops answering,
        the rest get no answer at all (they stay routed and are handed over on a later pass)."""
        if not jobs:
            return []
        scripts = self.scripts([j.job_id for j in jobs])
        acks = []
        for job in jobs:
            with self._lock:
                known = self._tracked.get(job.job_id)
            if known is not None:
                acks.append(Ack(str(job.job_id), False, REFUSED_DUPLICATE, str(known.slurm_id)))
                continue
            remote = self.config.partitions.get(job.partition, job.partition)
            if not remote:
                acks.append(Ack(str(job.job_id), False, REFUSED_UNKNOWN_PARTITION))
                continue
            what = scripts.get(job.job_id)
            if what is None:
                acks.append(Ack(str(job.job_id), False,
                                "slurm_no_command: the job has no command and its application no launch script"))
                continue
            description = job_description(
                job_id=job.job_id, slurm_partition=remote, nodes=job.nodes, cores_per_node=job.cores_per_node,
                memory_mb_per_node=job.memory_mb_per_node, gpus_per_node=job.gpus_per_node,
                walltime_s=job.walltime_s, environment=what.environment, workdir=self.config.workdir)
            try:
                slurm_id = self.client.submit(what.script, description)
            except SlurmError as exc:
                if exc.code in CENTRE_ERRORS:
                    self.last_error = exc
                    log.warning("slurm %s: submit stopped: %s", self.site_code, exc.message)
                    break  # the centre, not the job: leave the rest routed
                acks.append(Ack(str(job.job_id), False, f"{exc.code}: {exc.message}"[:250]))
                continue
            with self._lock:
                self._tracked[job.job_id] = _Tracked(slurm_id)
            acks.append(Ack(str(job.job_id), True, site_job_id=str(slurm_id)))
        return acks

    # cancel ---------------------------------------------------------------------------------
    def cancel(self, job_id: int) -> bool:
        """Cancel our job in Slurm (scancel semantics: the whole job, at once). False: Slurm has no such job."""
        with self._lock:
            tracked = self._tracked.get(job_id)
        if tracked:
            slurm_ids = [tracked.slurm_id]
        else:  # another process submitted it: the newest live Slurm job of that name and user
            live = [int(r["job_id"]) for r in self.client.jobs() or []
                    if our_job_id(r) == job_id and r.get("user_name", self.config.user) == self.config.user
                    and map_job(r)[0] not in TERMINAL_STATES]
            slurm_ids = [max(live)] if live else []
        cancelled = False
        for slurm_id in slurm_ids:
            try:
                self.client.cancel(slurm_id)
                cancelled = True
            except SlurmError as exc:
                if exc.code != "slurm_invalid_job":
                    raise
        return cancelled

    # poll -----------------------------------------------------------------------------------
    def poll(self, until: float | None = None) -> list[StatusChange]:
        """One GET /jobs: what changed for our jobs since the last poll (``until`` is ignored: a real
        centre runs on the wall clock). Raises SlurmError when Slurm cannot be asked."""
        now = time.time()
        full = self._since is None or time.monotonic() - self._full_at >= self.FULL_POLL_S
        records = self.client.jobs(update_time=None if full else self._since)
        if records is None:  # nothing changed at the centre since the last poll
            self.last_error = None
            return []
        self._since = int(now) - 1  # Slurm's update times are whole seconds
        if full:
            self._full_at = time.monotonic()
        changes: list[StatusChange] = []
        counts: dict[str, list[int]] = {}
        latest: dict[int, dict] = {}
        for record in records:
            if record.get("user_name") and record["user_name"] != self.config.user:
                continue
            job_id = our_job_id(record)
            if job_id is None:
                continue
            previous = latest.get(job_id)
            if previous is None or int(record.get("job_id") or 0) > int(previous.get("job_id") or 0):
                latest[job_id] = record
        with self._lock:
            unknown = [j for j, r in latest.items() if j not in self._tracked
                       and now - self._ignored.get(int(r["job_id"]), -1e18) >= self.IGNORE_RECHECK_S]
        adopted = set(unknown) if self.active is None or not unknown else set(self.active(unknown))
        with self._lock:
            for job_id in unknown:
                slurm_id = int(latest[job_id]["job_id"])
                if job_id in adopted:
                    self._tracked[job_id] = _Tracked(slurm_id)
                    self._ignored.pop(slurm_id, None)
                else:
                    self._ignored[slurm_id] = now
            present = {int(r["job_id"]) for r in latest.values()}
            self._ignored = {k: v for k, v in self._ignored.items() if k in present}
            for job_id, record in latest.items():
                if job_id not in self._tracked:
                    continue
                state, detail, code = map_job(record)
                c = counts.setdefault(str(record.get("partition") or ""), [0, 0, 0, 0])
                if state == QUEUED:
                    limit_s = int(record.get("time_limit") or 0) * 60
                    c[0] += 1
                    c[2] += int(record.get("cpus") or 0) * limit_s
                    c[3] += gres_gpus(str(record.get("tres_per_node") or "")) * int(record.get("node_count") or 1) \
                        * limit_s
                elif state == RUNNING:
                    c[1] += 1
                tracked = self._tracked[job_id]
                tracked.seen = True
                tracked.slurm_id = int(record["job_id"])
                if tracked.state == state:
                    continue
                start = float(record.get("start_time") or 0) or None
                end = float(record.get("end_time") or 0) or None
                submit = float(record.get("submit_time") or 0) or now
                if state == QUEUED:
                    changes.append(StatusChange(str(job_id), QUEUED, submit, detail))
                elif state == RUNNING:
                    nodes = str(record.get("nodes") or "")
                    changes.append(StatusChange(str(job_id), RUNNING, start or now, detail or nodes))
                else:
                    if start and (end is None or end > start) and tracked.state != RUNNING:
                        # It started and ended between two polls: report the run, so it is charged.
                        changes.append(StatusChange(str(job_id), RUNNING, start, str(record.get("nodes") or "")))
                    changes.append(StatusChange(str(job_id), state, end or now, detail, code))
                tracked.state = state
            # Jobs we saw that Slurm no longer knows (its memory of ended jobs is MinJobAge long; a lost
            # controller state loses them all): lost by the centre, so re-routed elsewhere.
            for job_id, tracked in list(self._tracked.items()):
                if job_id in latest:
                    continue
                if tracked.seen and tracked.state not in TERMINAL_STATES:
                    changes.append(StatusChange(str(job_id), FAILED, now, DETAIL_SITE_OUTAGE))
                if tracked.seen:
                    del self._tracked[job_id]
            self._counts = {k: tuple(v) for k, v in counts.items()}
        self.last_error = None
        return changes

    # capacity -------------------------------------------------------------------------------
    def refresh_capacity(self) -> CapacitySnapshot:
        """GET /nodes and /partitions: free cores, cards and memory per (our) partition."""
        nodes = {n.get("name"): n for n in self.client.nodes()}
        slurm_partitions = {p.get("name"): p for p in self.client.partitions()}
        ours_by_remote: dict[str, list[str]] = {}
        for ours, remote in self.config.partitions.items():
            ours_by_remote.setdefault(remote or ours, []).append(ours)
        snapshots = []
        for remote, ours_names in ours_by_remote.items():
            part = slurm_partitions.get(remote)
            members = [n for n in nodes.values() if remote in (n.get("partitions") or [])] if part else []
            usable = [n for n in members if not re.search(r"down|drain|fail|maint|inval|future|not_responding",
                                                          str(n.get("state") or "").lower())]
            idle = [n for n in usable if str(n.get("state") or "").lower() == "idle"]
            cores_total = sum(int(n.get("cpus") or 0) for n in members)
            cores_free = sum(int(n.get("idle_cpus") or 0) for n in usable)
            gpus_total = sum(gres_gpus(n.get("gres")) for n in members)
            gpus_free = sum(max(0, gres_gpus(n.get("gres")) - gres_gpus(n.get("gres_used"))) for n in usable)
            memory_total = sum(int(n.get("real_memory") or 0) for n in members)
            memory_free = sum(max(0, int(n.get("real_memory") or 0) - int(n.get("alloc_memory") or 0))
                              for n in usable)
            queued, running, pend_cores, pend_gpus = self._counts.get(remote, (0, 0, 0, 0))
            state = "up" if part and str(part.get("state", "UP")).upper() == "UP" else "drained"
            for name in ours_names:
                snapshots.append(PartitionSnapshot(
                    name=name, state=state, nodes_total=len(members), nodes_up=len(usable), nodes_idle=len(idle),
                    cores_total=cores_total, cores_free=cores_free, gpus_total=gpus_total, gpus_free=gpus_free,
                    memory_mb_total=memory_total, memory_mb_free=memory_free, queued=queued, running=running,
                    pending_core_seconds=pend_cores, pending_gpu_seconds=pend_gpus, core_seconds_allocated=0.0,
                    gpu_seconds_allocated=0.0))
        snapshot = CapacitySnapshot(self.site_code, time.time(), SITE_ONLINE, snapshots)
        self._capacity, self._capacity_at = snapshot, time.monotonic()
        return snapshot

    def capacity(self) -> CapacitySnapshot:
        """The last capacity read (refreshed by the poller, at most every CAPACITY_REFRESH_S): the router asks
        on every submission and must not wait on the centre."""
        if self._capacity is None:
            return CapacitySnapshot(self.site_code, time.time(), SITE_OFFLINE if self.last_error else SITE_ONLINE, [])
        return self._capacity

    def capacity_due(self) -> bool:
        return self._capacity is None or time.monotonic() - self._capacity_at >= self.CAPACITY_REFRESH_S

    def ping(self) -> dict:
        return self.client.ping()

    def sync_state(self, state: str) -> None:
        """A real centre runs on its own: the federation's view of it changes nothing there."""
        return None

    def tracked(self) -> dict[int, int]:
        """Our job id → Slurm job id, for the jobs this adapter follows."""
        with self._lock:
            return {k: v.slurm_id for k, v in self._tracked.items()}
