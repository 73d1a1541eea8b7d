"""Server settings, one typed object shared by the CLI, the app and the tests."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lamina.errors import InputError

#: Environment variable read when ``--api-key`` is not given.
API_KEY_ENV = "LAMINA_API_KEY"
#: Port of seed 003's OpenAI-style server, kept so its curl examples work as-is.
DEFAULT_PORT = 19327


@dataclass(frozen=True)
class ServerConfig:
    """How the server admits and limits requests.

    ``parallel`` is the number of slots (requests generating at the same time;
    ``None``: as many as the KV-cache budget allows, see ``backend.default_slots``);
    ``queue`` is how many more may wait for a slot before the server answers 429.
    ``strict_model`` refuses requests naming another model (404) instead of
    serving them with the one model there is, as llama-server does;
    ``completions_template`` sends /v1/completions prompts through the chat
    template unless a request says otherwise (seed 003's server did that).
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    parallel: int | None = None
    queue: int = 32
    max_body_bytes: int = 2 * 1024 * 1024
    max_tokens_cap: int = 4096
    model_name: str | None = None
    strict_model: bool = False
    completions_template: bool = False

    def __post_init__(self) -> None:
        if self.parallel is not None and self.parallel < 1:
            raise InputError(f"--parallel must be at least 1, got {self.parallel}.")
        if self.queue < 0:
            raise InputError(f"--queue must be 0 or more, got {self.queue}.")
        if not 1 <= self.port <= 65535:
            raise InputError(f"--port must be between 1 and 65535, got {self.port}.")
        if self.max_tokens_cap < 1:
            raise InputError(f"--max-tokens must be at least 1, got {self.max_tokens_cap}.")

    @staticmethod
    def resolve_api_key(cli_value: str | None) -> str | None:
        """``--api-key`` wins; otherwise ``LAMINA_API_KEY``; empty means no auth."""
        key = cli_value if cli_value is not None else os.environ.get(API_KEY_ENV)
        return key or None
