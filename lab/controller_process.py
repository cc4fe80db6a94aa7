"""Run ``shadownet-manager`` and ``shadownet-agent`` as child processes, as a user would."""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from shadownet.retry import RetryPolicy, transient_http

LOG = logging.getLogger("shadownet.lab")

# Readiness polling: quick at first (a child is often up within a second), at
# most every half second after; the deadline is the start timeout. Each failed
# probe is logged at DEBUG only: not answering yet is what starting looks like.
READY_POLL = RetryPolicy(attempts=None, initial=0.05, maximum=0.5, jitter=0.05, deadline=30.0,
                         log_level=logging.DEBUG)


class ChildExited(RuntimeError):
    """The child process ended while we waited for it to answer."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ChildProcess:
    """A Python child with an HTTP API on 127.0.0.1, a log file, and a clean stop."""

    name = "child"
    ready_path = "/"

    def __init__(self, workdir: Path, api_port: int | None = None,
                 token: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.api_port = api_port or free_port()
        self.token = token  # sent as a bearer token on every call, the readiness check too
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _spawn(self, cmd: list[str], timeout: float) -> None:
        """Start ``cmd`` and wait until ``ready_path`` answers (or the child dies)."""
        self.starts += 1
        with open(self.log_path, "a") as log:
            log.write(f"--- start {self.starts}: {' '.join(cmd)}\n")
            log.flush()
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float, poll: RetryPolicy = READY_POLL) -> None:
        """Retry the readiness request until it answers 2xx/3xx, for up to ``timeout`` s.

        Not answering yet (refused, reset, timed out, 5xx) is retried; a child that
        exited, or an answer that will not change (a 4xx), fails at once.
        """
        proc = self.proc
        assert proc is not None

        def probe() -> None:
            if proc.poll() is not None:
                raise ChildExited(f"{self.name} exited with {proc.returncode}:\n"
                                  f"{self.log_tail()}")
            urllib.request.urlopen(self.build_request(self.ready_path), timeout=2).close()

        policy = dataclasses.replace(poll, deadline=timeout)
        try:
            policy.call(probe, retry_if=transient_http, what=f"{self.name} readiness",
                        logger=LOG)
        except urllib.error.HTTPError as exc:
            if not transient_http(exc):
                raise RuntimeError(f"{self.name} answered {exc.code} on {self.ready_path}:\n"
                                   f"{self.log_tail()}") from None
            raise RuntimeError(f"{self.name} did not answer within {timeout:.0f}s "
                               f"(last: {exc.code}):\n{self.log_tail()}") from None
        except (OSError, http.client.HTTPException):
            if proc.poll() is not None:  # it died during the last probe
                raise RuntimeError(f"{self.name} exited with {proc.returncode}:\n"
                                   f"{self.log_tail()}") from None
            raise RuntimeError(f"{self.name} did not answer within {timeout:.0f}s:\n"
                               f"{self.log_tail()}") from None

    def build_request(self, path: str, body: Any = None, method: str | None = None
                ) -> urllib.request.Request:
        """A request to this child's API, with the token if there is one."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return urllib.request.Request(self.base_url + path, data=data, method=method,
                                      headers=headers)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it will not go. Returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ControllerProcess(ChildProcess):
    """A controller with its own ports, database and log file."""

    name = "controller"
    ready_path = "/api/health"

    def __init__(
        self,
        workdir: Path,
        *,
        db_url: str | None = None,
        config_file: Path | None = None,
        ofp_port: int | None = None,
        api_port: int | None = None,
        hub: str | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(workdir, api_port, token)
        self.db_url = db_url or f"sqlite:///{self.workdir / 'state.db'}"
        self.config_file = config_file
        self.ofp_port = ofp_port or free_port()
        self.hub = hub

    def start(self, timeout: float = 30.0) -> None:
        cmd = [
            sys.executable, "-m", "controller.manager",
            "--ofp-listen-host", "127.0.0.1",
            "--ofp-tcp-listen-port", str(self.ofp_port),
            "--wsapi-host", "127.0.0.1",
            "--wsapi-port", str(self.api_port),
            "--db-url", self.db_url,
        ]
        if self.config_file:
            cmd += ["--config-file", str(self.config_file)]
        if self.hub:
            cmd += ["--hub", self.hub]
        self._spawn(cmd, timeout)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.build_request(path), timeout=5) as resp:
            return json.loads(resp.read())

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.build_request(path), timeout=5) as resp:
            text: str = resp.read().decode()
            return text

    def post(self, path: str, body: Any) -> Any:
        with urllib.request.urlopen(self.build_request(path, body, "POST"), timeout=10) as resp:
            return json.loads(resp.read())


class AgentProcess(ChildProcess):
    """The per-host mirroring agent (``shadownet-agent``)."""

    name = "agent"
    ready_path = "/health"

    def __init__(self, workdir: Path, controller_url: str, *, tokens: Path | None = None,
                 rules: Path | None = None, api_port: int | None = None,
                 args: list[str] | None = None,
                 controller_token_file: Path | None = None) -> None:
        super().__init__(workdir, api_port)
        self.controller_url = controller_url
        self.controller_token_file = controller_token_file
        self.tokens, self.rules = tokens, rules
        self.args = list(args or [])

    def start(self, remove_on_exit: bool = True, timeout: float = 30.0) -> None:
        cmd = [sys.executable, "-m", "mirror.agent", "--controller", self.controller_url,
               "--api-port", str(self.api_port), "--poll-interval", "0.5",
               "--db-url", f"sqlite:///{self.workdir / 'agent.db'}"]
        if self.tokens:
            cmd += ["--tokens", str(self.tokens)]
        if self.controller_token_file:
            cmd += ["--controller-token-file", str(self.controller_token_file)]
        if self.rules:
            cmd += ["--rules", str(self.rules)]
        if remove_on_exit:
            cmd.append("--remove-on-exit")
        self._spawn(cmd + self.args, timeout)

    def request(self, path: str, token: str | None = None) -> tuple[int, Any]:
        """GET with an optional bearer token: (status, JSON or raw bytes)."""
        req = urllib.request.Request(self.base_url + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = resp.read()
                if resp.headers.get_content_type() == "application/json":
                    return resp.status, json.loads(body)
                return resp.status, body
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")
