"""The terminal chat UI behind ``lamina chat`` (Rich, stdlib readline; no heavy deps)."""

from lamina.runtime.tui.app import ChatApp, run_pipe

__all__ = ["ChatApp", "run_pipe"]
