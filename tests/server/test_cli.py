"""``lamina serve`` as a command: clear errors before serving, the key from the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx

from tests.server.conftest import free_port, start_server, stop_server


def run_serve(*args: str) -> subprocess.CompletedProcess:
    """Run ``lamina serve`` expecting it to stop; stderr with Rich's wrapping undone."""
    proc = subprocess.run([sys.executable, "-m", "lamina", "serve", *args], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ))
    proc.stderr = " ".join(proc.stderr.split())
    return proc


def test_missing_model_file_is_one_clear_error(tmp_path):
    proc = run_serve(str(tmp_path / "nope.gguf"), "--port", str(free_port()))
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_non_gguf_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_text("not a model")
    proc = run_serve(str(bad), "--port", str(free_port()))
    assert proc.returncode == 1
    assert "not a GGUF" in proc.stderr and "Traceback" not in proc.stderr


def test_port_in_use_is_reported_before_loading(chat_gguf):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = run_serve(str(chat_gguf), "--port", str(taken.getsockname()[1]))
    assert proc.returncode == 1
    assert "Cannot listen" in proc.stderr and "--port" in proc.stderr


def test_api_key_from_environment(chat_gguf):
    srv = start_server(chat_gguf, env_api_key="env-secret")
    try:
        assert httpx.get(f"{srv.v1}/models", timeout=10).status_code == 401
        r = httpx.get(f"{srv.v1}/models", timeout=10,
                      headers={"Authorization": "Bearer env-secret"})
        assert r.status_code == 200
        assert httpx.get(f"{srv.url}/health", timeout=10).status_code == 200
    finally:
        stop_server(srv)


def test_sigterm_ends_open_streams_and_exits_promptly(chat_gguf):
    import time

    from tests.server.conftest import ENDLESS, HOLD_CTX, HOLD_TOKENS, holding_client

    srv = start_server(chat_gguf, "--ctx", str(HOLD_CTX), "--max-tokens", str(HOLD_TOKENS))
    try:
        with holding_client() as http:  # the stream is still open when SIGTERM comes
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": HOLD_TOKENS,
                    "temperature": 0, "stream": True, "response_format": ENDLESS}
            with http.stream("POST", f"{srv.v1}/chat/completions", json=body) as resp:
                lines = resp.iter_lines()
                assert '"role": "assistant"' in next(lines)
                srv.proc.terminate()
                start = time.monotonic()
                rest = list(lines)
        # uvicorn re-raises the signal after a clean shutdown: "terminated by SIGTERM"
        assert srv.proc.wait(timeout=10) in (0, -15)
        assert time.monotonic() - start < 5
        assert any("shutting down" in line for line in rest)
        assert rest[-1] != "data: [DONE]"  # cut short, not finished
    finally:
        stop_server(srv)
