"""The Ray actor: load the GGUF once, then turn batches of input lines into output records.

Parsing a line, extracting and building the output/error record are the IE
package's own functions, called exactly as the local ``lamina extract`` calls
them, so both paths write the same bytes for the same document.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina.errors import LaminaError, ModelLoadError
from lamina.runtime.sampling import SamplingParams

if TYPE_CHECKING:  # pragma: no cover
    from lamina.ie.job import ExtractOptions


@dataclass(frozen=True)
class ExtractSettings:
    """The extraction options of ``lamina extract``, applied by every worker.

    ``options`` are keyword arguments of ``lamina.ie.api.extract_many``
    (task, schema, lang, split_num, use_grammar, limits, style); the schema must
    already be loaded (a schema *file* exists only on the driver's machine).
    """

    options: dict[str, Any] = field(default_factory=dict)
    batch: int | None = 1  # documents decoded together per worker; None: as the local CLI picks
    max_tokens: int = 512

    @classmethod
    def from_options(cls, options: ExtractOptions) -> ExtractSettings:
        """The settings of a local job's options (checked), with its schema file read here."""
        from lamina.ie.job import check_options
        from lamina.ie.schema_split import load_schema

        extractor = check_options(options)
        if extractor.get("schema") is not None:
            extractor["schema"] = load_schema(extractor["schema"])  # the file is on this machine
        return cls(options=extractor, batch=options.batch, max_tokens=options.max_tokens)


@dataclass(frozen=True)
class WorkerConfig:
    """What one actor needs; pickled once by Ray and sent to every worker."""

    model: str  # absolute path as seen by the driver
    model_as_given: str  # as the user typed it: relative paths resolve in the worker's cwd
    n_threads: int
    n_ctx: int | None = None
    template: str | None = None
    settings: ExtractSettings = field(default_factory=ExtractSettings)
    fail_once: str | None = None  # test-only: marker file, see ``ExtractWorker._maybe_fail``
    fail_mode: str = "exit"


class ExtractWorker:
    """A ``map_batches`` callable class: Ray builds one per actor, so the model loads once."""

    def __init__(self, config: WorkerConfig) -> None:
        import lamina

        self.config = config
        self.calls = 0
        path = _model_path(config)
        try:
            self.model = lamina.load(path, n_ctx=config.n_ctx, n_threads=config.n_threads,
                                     template=config.template)
        except LaminaError:
            raise
        except Exception as exc:  # llama.cpp's own failures: name the node and the file
            raise ModelLoadError(f"A Ray worker on {_node()} could not load '{path}': {exc}") from exc

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        self.calls += 1
        self._maybe_fail()
        paths = [str(p) for p in batch["path"]]
        lines = [int(n) for n in batch["line"]]
        kinds, records = process_lines(self.model, self.config.settings, lines,
                                       [str(t) for t in batch["text"]],
                                       [bool(j) for j in batch["jsonl"]])
        return {"path": paths, "line": lines, "kind": kinds,
                "failed": [k == "ok" and "error" in r for k, r in zip(kinds, records, strict=True)],
                "json": [json.dumps(r, ensure_ascii=False) for r in records]}

    def _maybe_fail(self) -> None:
        """Test-only fault injection (LAMINA_RAY_FAIL_ONCE): on its second batch, the first
        worker to claim the marker file dies (or raises), once per marker.

        The second batch, not the first, so that the worker has already delivered
        results: the retry must neither lose nor repeat them.
        """
        marker = self.config.fail_once
        if not marker or self.calls != 2:
            return
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        if self.config.fail_mode == "raise":
            raise RuntimeError("LAMINA_RAY_FAIL_ONCE: injected worker failure")
        os._exit(1)


def process_lines(model: Any, settings: ExtractSettings, lines: list[int], texts: list[str],
                  jsonl: list[bool]) -> tuple[list[str], list[dict[str, Any]]]:
    """One record per input line, in order: ("ok", output record) or ("error", bad line).

    The same steps as the local ``lamina extract``: ``read_inputs``' per-line rule,
    then ``extract_many`` with greedy sampling; a bad line goes to the errors file.
    """
    from lamina.ie.api import extract_many
    from lamina.ie.io import BadLine, jsonl_item

    kinds: list[str] = ["error"] * len(lines)
    records: list[dict[str, Any]] = [{} for _ in lines]
    todo: list[tuple[int, dict[str, Any]]] = []
    for i, (line, text, is_jsonl) in enumerate(zip(lines, texts, jsonl, strict=True)):
        item = jsonl_item(text, line) if is_jsonl else {"id": str(line), "text": text}
        if isinstance(item, BadLine):
            records[i] = item.as_record()
        else:
            todo.append((i, item))
    params = SamplingParams.greedy(max_tokens=settings.max_tokens)
    batch = settings.batch
    if batch is None:  # the local CLI's rule, with this worker's threads
        from lamina.runtime.engine import default_n_seq, native_available

        batch = default_n_seq(model) if native_available() else 1
    done = extract_many(model, [item for _, item in todo], batch=batch, params=params,
                        **settings.options)
    count = 0
    for (i, _), record in zip(todo, done, strict=False):
        kinds[i], records[i] = "ok", record
        count += 1
    if count != len(todo):  # extract_many promises one record per item
        raise RuntimeError(f"extract_many returned {count} records for {len(todo)} items")
    return kinds, records


def _model_path(config: WorkerConfig) -> str:
    """The driver's absolute path when this node has it (shared disk, same layout), else the
    path as given, relative to the worker's directory (Ray's runtime_env working_dir)."""
    for candidate in (config.model, config.model_as_given):
        if Path(candidate).is_file():
            return candidate
    raise ModelLoadError(
        f"The model file '{config.model_as_given}' is not on the Ray node {_node()}.",
        hint="Every worker node needs the GGUF: put it on a shared path (same path on every "
             "node), copy it to the same path on each node, or ship it with the job's "
             "runtime_env working_dir and pass a relative path.",
    )


def _node() -> str:
    import socket

    return socket.gethostname()
