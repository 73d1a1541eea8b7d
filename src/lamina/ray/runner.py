"""``lamina extract --ray``: read with Ray Data, extract on an actor pool, write like the local path.

The flow, and why:

1. Every input line is read with its file and line number (``source``); Ray Data
   preserves input order, so results stream back in order however the actors finish.
2. ``map_batches`` runs ``worker.ExtractWorker`` on a fixed pool of ``workers``
   actors; each loads the GGUF once and uses ``threads`` llama.cpp threads. Each
   actor reserves ``threads`` CPUs, so Ray places them where the cores are.
3. A worker that dies or raises is replaced and its batch re-run by Ray itself
   (``max_restarts`` / ``max_task_retries`` / ``actor_task_retry_on_errors``);
   a batch's output is only kept once it completed, so nothing is lost or doubled.
4. The driver streams the results into temporary output and errors files
   (``sink``), checking that every input record comes back exactly once
   (records in = records out + errors), and only then renames them into place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina import gguf_io
from lamina.errors import InputError, LaminaError, require
from lamina.files import check_output_path, require_file
from lamina.ie.io import errors_path
from lamina.ray.sink import OrderedSink, open_sink
from lamina.ray.worker import ExtractSettings, WorkerConfig

#: Value of ``--ray`` with no address: start a private local Ray instance.
LOCAL = "local"
#: Test-only failure injection: path of a marker file; the first worker that finds
#: it missing creates it and dies mid-run (see ``worker.ExtractWorker``).
FAIL_ONCE_ENV = "LAMINA_RAY_FAIL_ONCE"
#: "exit" (the worker process dies, default) or "raise" (the batch raises).
FAIL_MODE_ENV = "LAMINA_RAY_FAIL_MODE"
#: How often Ray may replace a dead actor / re-run one failed batch.
MAX_RESTARTS = 3
MAX_TASK_RETRIES = 3


@dataclass(frozen=True)
class RayExtractOptions:
    """Everything ``run_extract`` needs; the CLI fills it from ``lamina extract`` options."""

    model: Path
    input: str  # a local file/folder, or any path Ray Data reads (s3://, gs://, hdfs://...)
    output: Path | None  # None: records go to stdout, bad lines are reported on stderr
    settings: ExtractSettings = field(default_factory=ExtractSettings)
    address: str | None = None  # None or "local": start a local Ray instance
    workers: int = 2
    threads: int | None = None  # llama.cpp threads per worker (default: cores / workers)
    batch_size: int = 8  # documents per actor call
    n_ctx: int | None = None
    template: str | None = None
    force: bool = False
    #: ``on_progress(done, total)`` as result blocks arrive (the CLI draws a bar).
    on_progress: Callable[[int, int], None] | None = None


@dataclass
class RayExtractReport:
    """What a run did; ``check`` is the records-in = out + errors line the CLI prints."""

    records_in: int
    records_out: int  # output records, including those whose extraction failed
    errors: int  # rejected input lines (the errors file)
    failed: int  # output records with an 'error' field (answer unreadable)
    seconds: float  # the whole run: Ray start-up, reading, workers loading the model, extraction
    extract_seconds: float  # from the first batch handed to the pool to the last result
    workers: int
    threads: int
    address: str
    output: Path | None
    errors_path: Path | None
    #: Why input lines were rejected when there is no errors file (output on stdout).
    skipped_reasons: list[str] = field(default_factory=list)

    @property
    def docs_per_second(self) -> float:
        """Throughput of the extraction phase (Ray start-up excluded; model loading included)."""
        return self.records_in / self.extract_seconds if self.extract_seconds > 0 else 0.0

    @property
    def check(self) -> str:
        ok = self.records_in == self.records_out + self.errors
        return (f"records in {self.records_in} = {self.records_out} written + "
                f"{self.errors} errors {'✓' if ok else '✗'}")

    def as_dict(self) -> dict[str, Any]:
        return {"records_in": self.records_in, "records_out": self.records_out,
                "errors": self.errors, "failed": self.failed, "seconds": round(self.seconds, 3),
                "extract_seconds": round(self.extract_seconds, 3),
                "docs_per_second": round(self.docs_per_second, 3), "workers": self.workers,
                "threads_per_worker": self.threads, "ray": self.address,
                "output": str(self.output) if self.output else None,
                "errors_file": str(self.errors_path) if self.errors_path else None,
                "check": self.records_in == self.records_out + self.errors}


def default_threads(workers: int) -> int:
    """Split this machine's cores between the workers (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // workers)


def run_extract(opts: RayExtractOptions) -> RayExtractReport:
    """Run one extraction job on Ray and write its output; see the module docstring."""
    require("ray", "ray")
    if opts.workers < 1:
        raise InputError(f"--workers must be at least 1, got {opts.workers}.")
    if opts.batch_size < 1:
        raise InputError(f"The batch size must be at least 1, got {opts.batch_size}.")
    local = opts.address in (None, LOCAL)
    threads = opts.threads or default_threads(opts.workers)
    model = Path(opts.model)
    if local or model.exists():  # on a cluster the driver's machine may not hold the model
        model = require_file(model, "model file").resolve()
        gguf_io.read_header(model)  # a non-GGUF file fails here, not in every worker
    source = _resolve_input(opts.input)
    errors = errors_path(opts.output) if opts.output is not None else None
    if opts.output is not None:
        check_output_path(opts.output, force=opts.force)
    config = WorkerConfig(model=str(model), model_as_given=str(opts.model), n_threads=threads,
                          n_ctx=opts.n_ctx, template=opts.template, settings=opts.settings,
                          fail_once=os.environ.get(FAIL_ONCE_ENV) or None,
                          fail_mode=os.environ.get(FAIL_MODE_ENV, "exit"))
    start = time.perf_counter()
    with ray_session(opts.address, num_cpus=opts.workers * threads) as address, \
            open_sink(opts.output, errors, opts.force) as sink:
        records_in, extract_seconds = _execute(opts, source, config, threads, sink)
        sink.check(records_in)
    return RayExtractReport(records_in=records_in, records_out=sink.written, errors=sink.errors,
                            failed=sink.failed, seconds=time.perf_counter() - start,
                            extract_seconds=extract_seconds, workers=opts.workers,
                            threads=threads, address=address, output=opts.output,
                            errors_path=errors if sink.errors else None,
                            skipped_reasons=sink.skipped_reasons)


def _resolve_input(path: str) -> str:
    """A local input as an absolute path, checked before Ray starts; URIs as given.

    Absolute, because Ray's read tasks run in worker processes whose working
    directory is not the user's: a relative path would read some other file.
    """
    if "://" in path:
        return path
    p = Path(path)
    if not p.exists():
        raise InputError(f"The input '{p}' does not exist.", hint="Check the path and try again.")
    return str(p.resolve())


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int) -> Iterator[str]:
    """Connect to ``address`` or start a quiet local instance sized for the workers.

    An instance that is already running in this process (a test fixture, a
    notebook) is reused and left running; one started here is shut down after.
    """
    import ray

    _quiet_ray_data()
    if ray.is_initialized():
        yield "existing"
        return
    local = address in (None, LOCAL)
    if not local:
        _probe(str(address))
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                              "configure_logging": True}
    try:
        with _quiet_native_logs(), _workers_at_normal_priority(local):
            if local:
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
            else:
                ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise LaminaError(
            f"Could not connect to the Ray cluster at '{address}': {exc}",
            hint="Start one with `ray start --head` (or check the address), or use --ray "
                 "with no address to run on a local Ray instance.",
        ) from exc
    try:
        yield LOCAL if local else str(address)
    finally:
        ray.shutdown()


def _probe(address: str) -> None:
    """Fail in seconds on a HOST:PORT nobody listens on (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms are Ray's to resolve
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise LaminaError(
            f"Nothing answers at the Ray address '{address}' ({exc.strerror or exc}).",
            hint="Check the head node's address and port (`ray status` on the head prints it), "
                 "or use --ray with no address to run on a local Ray instance.",
        ) from exc


@contextlib.contextmanager
def _workers_at_normal_priority(local: bool) -> Iterator[None]:
    """Ray starts its workers at nice 15; in a private instance they *are* the job.

    At nice 15 they lose every CPU tussle with other programs, and llama.cpp's
    threads, which wait for each other at every layer, then crawl (measured 5x
    slower on a shared machine). A user's own RAY_worker_niceness is kept.
    """
    name = "RAY_worker_niceness"
    if not local or name in os.environ:
        yield
        return
    os.environ[name] = "0"
    try:
        yield
    finally:
        os.environ.pop(name, None)


@contextlib.contextmanager
def _quiet_native_logs() -> Iterator[None]:
    """Keep Ray's C++ log lines off the terminal while it starts.

    Ray's core worker prints an advisory ERROR line for every restartable actor
    pool; only fatal lines are kept. Setting that level makes the logger announce
    it on stderr once, so stderr is muted while ``ray.init`` runs (nothing else is
    drawn yet; a failure still arrives as an exception).
    """
    name = "RAY_BACKEND_LOG_LEVEL"
    saved_env = os.environ.get(name)
    if saved_env is None:
        os.environ[name] = "fatal"
    sys.stderr.flush()
    saved_fd = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        if saved_env is None:
            os.environ.pop(name, None)


def _quiet_ray_data() -> None:
    """Ray Data's own progress bars and INFO lines would fight with lamina's Rich bar."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _execute(opts: RayExtractOptions, path: str, config: WorkerConfig, threads: int,
             sink: OrderedSink) -> tuple[int, float]:
    """Build the Ray Data pipeline and stream its rows, in input order, into ``sink``."""
    import ray.data
    from ray.data import ActorPoolStrategy, DataContext

    from lamina.ray.source import NumberedLinesDatasource
    from lamina.ray.worker import ExtractWorker

    ctx = DataContext.get_current()
    saved = ctx.actor_task_retry_on_errors, ctx.execution_options.preserve_order
    ctx.actor_task_retry_on_errors = True  # a batch that raised is re-run (bounded below)
    ctx.execution_options.preserve_order = True  # stream the output in input order
    try:
        try:
            source = NumberedLinesDatasource(path)
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise InputError(f"Ray Data cannot read the input '{opts.input}': {exc}",
                             hint="Give a JSONL or text file, a folder of them, or a URI "
                                  "that Ray Data can read (s3://, gs://...).") from exc
        lines = ray.data.read_datasource(source, num_cpus=0)  # reading is I/O, not compute
        records_in = lines.count()
        if records_in == 0:
            raise InputError(f"The input '{opts.input}' holds no documents.",
                             hint="Put one document per line, or JSONL records with a 'text' field.")
        if opts.settings.options.get("schema") is None and \
                lines.filter(_has_instruction, num_cpus=0).limit(1).count() == 0:
            raise InputError("No --schema given: say what to extract.",
                             hint='For example --schema \'["人物","地理位置","组织机构"]\'.')
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_restarts/max_task_retries are "advanced" args
            results = lines.map_batches(
                ExtractWorker, fn_constructor_args=(config,), batch_size=opts.batch_size,
                batch_format="numpy", compute=ActorPoolStrategy(size=opts.workers),
                num_cpus=threads, max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
            )
        start = time.perf_counter()
        done = 0
        if opts.on_progress is not None:
            opts.on_progress(0, records_in)
        for batch in results.iter_batches(batch_size=None, batch_format="pandas"):
            for row in batch.to_dict("records"):
                sink.add(row)
            done += len(batch)
            if opts.on_progress is not None:
                opts.on_progress(done, records_in)
        return records_in, time.perf_counter() - start
    except LaminaError:
        raise
    except Exception as exc:  # Ray wraps what a task raised: show the user's error, if any
        user = _user_error(exc)
        if user is not None:
            raise user from None
        raise
    finally:
        ctx.actor_task_retry_on_errors, ctx.execution_options.preserve_order = saved


def _has_instruction(row: dict[str, Any]) -> bool:
    """A ready-made IEPile instruction carries its own schema (as in the local check)."""
    from lamina.ie.io import jsonl_item

    item = jsonl_item(str(row["text"]), int(row["line"])) if row["jsonl"] else None
    return isinstance(item, dict) and "instruction" in item


def _user_error(exc: BaseException) -> LaminaError | None:
    """The LaminaError a worker raised (e.g. the model file missing on a node), if any."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, LaminaError):
            return cur
        todo.extend([getattr(cur, "cause", None), cur.__cause__, cur.__context__])
        todo.extend(a for a in cur.args if isinstance(a, BaseException))  # ActorDiedError
    return None
