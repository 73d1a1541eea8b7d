"""Child process that runs libllama's ``llama_model_quantize`` for ``lamina quantize``.

Why a child: a quantization of a 13 GB model is one long C call that Python
cannot interrupt, and libllama may abort() on inputs it does not expect. In a
child, Ctrl-C kills it at once and a crash becomes an error message instead of
taking lamina down. The child reports progress by hooking libllama's log
(``llama_log_set``) and turning its "[ i/ N] tensor" lines into JSON events on
stdout, one per line:

    {"event": "tensor", "index": 3, "total": 21, "name": "token_embd.weight"}
    {"event": "done", "rc": 0, "error": null}

The job arrives as one JSON object on stdin (see ``quantizer.WorkerJob``).

If lamina itself is killed (SIGKILL, no chance to stop its child), the worker
stops too (``_die_with_parent``) instead of finishing a quantization nobody
waits for, into a temporary file the next run will remove.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import sys
from typing import Any

_TENSOR_LINE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
_FAILED = re.compile(r"failed to quantize:\s*(.+)")
_GGML_TYPE_F16 = 1
_KV_OVERRIDE_INT = 0
_KV_OVERRIDE_STR = 3


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class _LogWatcher:
    """Collects libllama log text; emits one event per new tensor line."""

    def __init__(self) -> None:
        self.buffer = ""
        self.seen = 0
        self.errors: list[str] = []

    def feed(self, text: str) -> None:
        self.buffer += text
        for match in _TENSOR_LINE.finditer(self.buffer):
            index = int(match.group(1))
            if index > self.seen:
                self.seen = index
                _emit({"event": "tensor", "index": index, "total": int(match.group(2)),
                       "name": match.group(3)})
        *done, self.buffer = self.buffer.split("\n")
        for line in done:
            found = _FAILED.search(line)
            if found:
                self.errors.append(found.group(1).strip())
            elif "ERROR" in line or "error:" in line:
                self.errors.append(line.strip(" =\n"))
        if len(self.buffer) > 4096:  # a long line without newline: keep only its tail
            self.buffer = self.buffer[-1024:]


def _kv_override(key: str, value: int | str) -> Any:
    import llama_cpp.llama_cpp as lc

    kvo = lc.llama_model_kv_override()
    kvo.key = key.encode()
    if isinstance(value, int):
        kvo.tag = _KV_OVERRIDE_INT
        kvo.value.val_i64 = value
    else:
        kvo.tag = _KV_OVERRIDE_STR
        kvo.value.val_str = value.encode()[:127]
    return kvo


def build_params(job: dict[str, Any], keep: list[Any]) -> Any:
    """llama_model_quantize_params for ``job``; ctypes buffers are appended to ``keep``.

    Mirrors what llama-quantize sets for the same command line, including the
    ``quantize.imatrix.*`` metadata it records when an imatrix is used.
    """
    import llama_cpp.llama_cpp as lc

    params = lc.llama_model_quantize_default_params()
    params.ftype = int(job["ftype"])
    params.nthread = int(job.get("nthread") or 0)
    params.only_copy = bool(job.get("only_copy", False))
    if job.get("keep_output_f16"):
        params.output_tensor_type = _GGML_TYPE_F16
    if job.get("imatrix"):
        from lamina.quantize.imatrix import load_imatrix

        imatrix = load_imatrix(job["imatrix"])
        entries = (lc.llama_model_imatrix_data * (len(imatrix.values) + 1))()
        for i, (name, values) in enumerate(imatrix.values.items()):
            keep.append(values)
            entries[i].name = name.encode()
            entries[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entries[i].size = values.size
        keep.append(entries)
        params.imatrix = entries
        overrides = [_kv_override("quantize.imatrix.file", str(job["imatrix"]))]
        if imatrix.datasets:
            overrides.append(_kv_override("quantize.imatrix.dataset", imatrix.datasets[0]))
        overrides.append(_kv_override("quantize.imatrix.entries_count", len(imatrix.values)))
        if imatrix.chunk_count > 0:
            overrides.append(_kv_override("quantize.imatrix.chunks_count", imatrix.chunk_count))
        kv = (lc.llama_model_kv_override * (len(overrides) + 1))(*overrides)
        kv[len(overrides)].key = b""
        keep.append(kv)
        params.kv_overrides = kv
    return params


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int | None) -> None:
    """Have the kernel kill this process when lamina (``parent``) dies, on Linux.

    Without it an orphaned worker goes on writing a temporary output for
    minutes (a printed progress line then fails, but inside libllama's log
    callback, where the error is ignored). Elsewhere ``_orphaned`` is checked
    on every log line instead.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if _orphaned(parent):  # lamina died before prctl took effect
        os._exit(1)


def _orphaned(parent: int | None) -> bool:
    return parent is not None and os.getppid() != parent


def run(job: dict[str, Any]) -> int:
    import llama_cpp.llama_cpp as lc

    watcher = _LogWatcher()
    parent = job.get("parent_pid")

    @lc.llama_log_callback
    def on_log(level: int, text: bytes, user_data: Any) -> None:
        if _orphaned(parent):
            os._exit(1)
        watcher.feed(text.decode("utf-8", "replace"))

    lc.llama_log_set(on_log, ctypes.c_void_p(0))
    lc.llama_backend_init()
    keep: list[Any] = []
    params = build_params(job, keep)
    rc = lc.llama_model_quantize(job["input"].encode(), job["output"].encode(),
                                 ctypes.byref(params))
    watcher.feed("\n")
    error = watcher.errors[-1] if (rc != 0 and watcher.errors) else None
    _emit({"event": "done", "rc": int(rc), "error": error})
    return 0 if rc == 0 else 1


def main() -> None:
    job = json.loads(sys.stdin.read())
    _die_with_parent(job.get("parent_pid"))
    code = run(job)
    sys.stdout.flush()
    # Skip interpreter teardown: llama.cpp's static destructors are not needed here.
    os._exit(code)


if __name__ == "__main__":
    main()
