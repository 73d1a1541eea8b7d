"""Real ``lamina serve`` processes on free loopback ports, shared by the server tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

API_KEY = "test-key-123"
#: A JSON string of at least 100000 characters: the grammar forbids the end of the
#: answer, so a generation with it runs to max_tokens whatever the model's weights.
ENDLESS = {"type": "json_schema",
           "json_schema": {"name": "endless", "schema": {"type": "string", "minLength": 100000}}}


#: Context and max_tokens of a stream that holds its slot until the test closes it. It is
#: never sized in time: a stream's response moves on only while its client reads (the
#: route takes the next pieces after each send, and a socket that is not read stops the
#: sends; on one slot the model itself then stops), and a client of ``holding_client()``
#: reads nothing after the first chunk. HOLD_TOKENS is
#: far more than the socket buffers can take (about 13 bytes of SSE per token), so
#: such a stream stops long before its end, on any machine, at any load.
HOLD_CTX = 32768
HOLD_TOKENS = 30000


def holding_client() -> httpx.Client:
    """An HTTP client with a 4 KiB receive buffer: a stream it stops reading stalls at
    once instead of filling megabytes of kernel buffers first."""
    transport = httpx.HTTPTransport(
        socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    return httpx.Client(timeout=60, transport=transport)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    api_key: str | None
    proc: subprocess.Popen

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def health(self) -> dict:
        r = httpx.get(f"{self.url}/health", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_for(self, predicate, timeout: float = 20.0) -> dict:
        """Poll /health until ``predicate(health)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if predicate(h):
                return h
            if time.monotonic() > deadline:
                raise AssertionError(f"server never reached the expected state: {h}")
            time.sleep(0.02)


def start_server(model: Path, *args: str, api_key: str | None = None,
                 env_api_key: str | None = None, host: str = "127.0.0.1") -> Server:
    """Start ``lamina serve``; ``env_api_key`` passes the key through LAMINA_API_KEY,
    ``host`` is given as --host."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LAMINA_API_KEY"}
    if env_api_key:
        env["LAMINA_API_KEY"] = env_api_key
    cmd = [sys.executable, "-m", "lamina", "serve", str(model), "--port", str(port),
           "--threads", "1", "--host", host, *args]
    if api_key:
        cmd += ["--api-key", api_key]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lamina serve exited with {proc.returncode}:\n"
                               f"{proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Server(url, api_key or env_api_key, proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("lamina serve did not answer /health within 60 s")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def server(chat_gguf: Path) -> Iterator[Server]:
    """The main server: API key on, one slot, room for 8+ queued clients."""
    srv = start_server(chat_gguf, "--parallel", "1", "--queue", "16", "--max-tokens", "1000",
                       "--max-body", "65536", api_key=API_KEY)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def model(chat_gguf: Path):
    """The same model loaded in-process: what the server's answers must equal."""
    import lamina

    m = lamina.load(chat_gguf, n_threads=1)
    yield m
    m.close()


@pytest.fixture()
def client(server: Server):
    from openai import OpenAI

    with OpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0, timeout=60) as c:
        yield c
