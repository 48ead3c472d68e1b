"""Fixtures for the service tests: an in-process app on the tiny open_clip model, and a real
server process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTBED_KEY = "browser-test-key-0123456789"


def citrus():
    from coderclip.knowledge import ClassKnowledge, Knowledge

    return Knowledge([
        ClassKnowledge("lime", synonyms=["key lime"], attributes=["green peel", "small round shape"],
                       analogous=["tennis ball"], contrasts={"lemon": ["dark green skin"]}),
        ClassKnowledge("lemon", attributes=["yellow peel", "oval shape", "pointed ends"],
                       analogous=["grapefruit", "yellow egg"],
                       contrasts={"lime": ["bright yellow skin", "pointed tips"]}),
        ClassKnowledge("orange", synonyms=["sweet orange"], attributes=["orange peel"],
                       analogous=["tangerine"]),
    ], domain="food", name="citrus")


@pytest.fixture(scope="module")
def service(open_clip_encoder):
    """The tiny open_clip model with every method's text bank (no on-disk cache)."""
    from coderclip.serve.service import ClassifierService, Limits

    return ClassifierService(open_clip_encoder, citrus(), cache=False,
                             limits=Limits(max_body_bytes=200_000, max_images=4, max_pixels=1_000_000))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``coderclip serve`` in a real subprocess; ready once /healthz answers."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the server's output goes to a file (a pipe could fill up and block it), opened for
        # appending so that reading it here never moves where the server writes
        fd, name = tempfile.mkstemp(prefix="coderclip-serve-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coderclip", "serve", *args, "--port", str(self.port)],
            env=full_env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 420.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}):\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)   # polling interval, not synchronisation: readiness is /healthz
        raise AssertionError(f"server not ready after {timeout} s")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out = self.output()
        self.log.close()
        self.log_path.unlink(missing_ok=True)
        return out


@pytest.fixture(scope="module")
def testbed_server(tmp_path_factory):
    """``coderclip serve -m testbed -k testbed`` on a free port, with its own empty text cache
    (one method, so that only its text bank is encoded) and an API key."""
    cache = tmp_path_factory.mktemp("serve-cache")
    server = ServerProcess(["-m", "testbed", "-k", "testbed", "--methods", "coder-rerank"],
                           env={"CODERCLIP_CACHE": str(cache), "CODERCLIP_API_KEY": TESTBED_KEY})
    server.headers = {"Authorization": f"Bearer {TESTBED_KEY}"}
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
