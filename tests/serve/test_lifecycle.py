"""The server as a real process: SIGTERM lets an in-flight request finish, the access log is JSON
lines without the API key, and a non-local bind without a key is refused before loading."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from .conftest import ROOT, ServerProcess, citrus

KEY = "a-test-key-that-is-long-enough"


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight(tmp_path, open_clip_spec, image_files):
    kfile = citrus().save(tmp_path / "citrus.json")
    # a 4 s batching window keeps the request queued while the signal arrives
    server = ServerProcess(["-m", open_clip_spec, "-k", str(kfile), "--method", "coder",
                            "--methods", "coder", "--batch-window-ms", "4000", "--max-batch", "64"],
                           env={"CODERCLIP_API_KEY": KEY})
    try:
        server.wait_ready()
        headers = {"Authorization": f"Bearer {KEY}"}
        out: dict = {}
        photo = image_files["jpeg"]

        def post():
            out["r"] = httpx.post(server.url + "/v1/classify", headers=headers, timeout=60,
                                  files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))])

        t = threading.Thread(target=post)
        t.start()
        deadline = time.monotonic() + 60
        while httpx.get(server.url + "/healthz").json()["queued_images"] < 1:
            assert time.monotonic() < deadline, "the request never reached the queue"
        server.proc.send_signal(signal.SIGTERM)
        t.join(60)
        assert out["r"].status_code == 200, out["r"].text
        assert out["r"].json()["results"][0]["image"] == photo.name
        # uvicorn re-raises the signal after its graceful shutdown: death by SIGTERM, not a crash
        assert server.proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        log = server.stop()
    assert "Application shutdown complete" in log      # the lifespan's drain ran to its end
    assert KEY not in log
    access = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    done = [a for a in access if a["path"] == "/v1/classify"]
    assert done and done[0]["status"] == 200 and done[0]["ms"] > 0 and done[0]["request_id"]


def test_non_local_bind_without_key_is_refused(tmp_path):
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "coderclip", "serve", "-m", "testbed", "-k", "testbed",
                        "--host", "0.0.0.0", "--port", "9"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "CODERCLIP_API_KEY" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_two_worker_processes_each_load_the_model_and_answer(tmp_path, open_clip_spec, image_files):
    kfile = citrus().save(tmp_path / "citrus.json")
    server = ServerProcess(["-m", open_clip_spec, "-k", str(kfile), "--method", "coder",
                            "--methods", "coder", "--workers", "2"])
    try:
        server.wait_ready()
        deadline = time.monotonic() + 180
        while server.output().count("Application startup complete") < 2:   # both workers up
            assert server.proc.poll() is None and time.monotonic() < deadline, server.output()
            time.sleep(0.2)
        photo = image_files["png"]
        answers = set()
        for _ in range(4):
            r = httpx.post(server.url + "/v1/classify", timeout=60,
                           files=[("images", (photo.name, photo.read_bytes(), "image/png"))])
            assert r.status_code == 200, r.text
            answers.add(r.json()["results"][0]["label"])
        assert len(answers) == 1, "every worker gives the same answer"
    finally:
        log = server.stop()
    assert log.count("Application shutdown complete") == 2, log
