"""One extraction job on this machine: documents in, records out, resumable.

``lamina extract`` is a thin shell around :func:`run_extract`, and Python users
call it directly; the Ray path (:mod:`lamina.ray`) shares its option type and
reader. What the job guarantees:

- records are written as documents finish and the finished file is put back in
  input order (a temporary ``.part`` file renamed at the end);
- ``resume`` skips the ids already in the output and tries the failed ones again
  (unless ``keep_failed``), so an interrupted run continues where it stopped;
- a bad input line goes to the errors file with its reason, a document whose
  answer cannot be read gets an ``error`` field: neither touches other records;
- on Ctrl-C the records written so far are kept for ``resume``
  (:class:`ExtractInterrupted` says how many).

Progress is reported through callbacks; nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina.errors import InputError
from lamina.ie.grammar import GrammarLimits
from lamina.ie.io import BadLine, JsonlRun, errors_path, read_records


@dataclass(frozen=True)
class ExtractOptions:
    """What to extract, from what, with which model; the CLI fills it from its options."""

    model: Path
    input: Path | None = None  # a file of documents (text lines, JSONL, IEPile test JSONL)
    text: str | None = None  # ... or one document
    output: Path | None = None  # JSONL records (None: records only reach ``on_record``)
    task: str | None = None  # for records that name none (default NER); a record's own wins
    schema: Any = None  # list, JSON text or a JSON file; None when records bring instructions
    lang: str = "zh"
    split_num: int | None = None
    use_grammar: bool = True
    limits: GrammarLimits = field(default_factory=GrammarLimits)
    style: str | None = None  # "iepile", "pairs" (seed 000), "icl"; None: from the records
    examples: Path | None = None  # few-shot demonstrations (or, with icl, seed 002's examples)
    shots: int = 2
    select: str = "overlap"  # or "order"
    #: --format icl only: the texts' domain, the label set, RE's given head/tail entities.
    domain: str | None = None
    labels: str | None = None
    head_entity: str | None = None
    head_type: str | None = None
    tail_entity: str | None = None
    tail_type: str | None = None
    max_tokens: int = 512
    max_input_tokens: int | None = None
    batch: int | None = None  # None: what the KV budget allows on the native engine
    exact: bool = True  # batch-invariant decoding (see docs/engine.md)
    n_threads: int | None = None
    n_ctx: int | None = None
    template: str | None = None
    resume: bool = False
    keep_failed: bool = False
    force: bool = False

    def icl_values(self) -> dict[str, str | None]:
        return dict(domain=self.domain, labels=self.labels, head_entity=self.head_entity,
                    head_type=self.head_type, tail_entity=self.tail_entity,
                    tail_type=self.tail_type)


@dataclass
class ExtractReport:
    """What a run did, for the summary line and ``--json``-style reporting."""

    written: int = 0  # records written (or passed to on_record) in this run
    skipped: int = 0  # already in the output (resume)
    retried: int = 0  # failed before, tried again (resume)
    failed: int = 0  # records with an 'error' field
    cut: int = 0  # answers that hit max_tokens
    bad_lines: list[BadLine] = field(default_factory=list)  # rejected input lines
    seconds: float = 0.0
    output: Path | None = None

    @property
    def docs_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors_path(self) -> Path | None:
        return errors_path(self.output) if self.output is not None else None


class ExtractInterrupted(KeyboardInterrupt):
    """Ctrl-C during a job; ``kept`` records are in the output for ``resume``."""

    def __init__(self, kept: int) -> None:
        super().__init__(kept)
        self.kept = kept


#: ``on_progress(done, total)``: called once before the first document and after each.
ProgressCallback = Callable[[int, int], None]


def check_options(options: ExtractOptions) -> dict[str, Any]:
    """The checks that need no model, run before a (slow) load by the local job and the
    Ray path; returns the keyword arguments of :func:`lamina.ie.api.extract_iter` the
    options set (the examples file read once, here)."""
    from lamina.ie.api import Extractor

    if (options.text is None) == (options.input is None):
        raise InputError("Give either a TEXT argument or --input FILE (exactly one).",
                         hint="lamina extract MODEL.gguf --schema '[\"人物\"]' \"康有为是广东人。\"")
    if options.resume and options.output is None:
        raise InputError("--resume needs --output (the file of the run to continue).")
    if options.keep_failed and not options.resume:
        raise InputError("--keep-failed only applies with --resume.")
    icl, demos = prepare_examples(options)
    if options.style != "icl":
        Extractor(_NoModel(), task=options.task or "NER", schema=options.schema,
                  lang=options.lang, split_num=options.split_num,
                  use_grammar=options.use_grammar, limits=options.limits,
                  style=options.style or "iepile")
    return dict(task=options.task, schema=options.schema, lang=options.lang,
                split_num=options.split_num, use_grammar=options.use_grammar,
                limits=options.limits, style=options.style,
                max_input_tokens=options.max_input_tokens, exact=options.exact,
                examples=demos, shots=options.shots, select=options.select, icl=icl)


_ICL_FLAGS = {"domain": "--domain", "labels": "--labels", "head_entity": "--head",
              "head_type": "--head-type", "tail_entity": "--tail", "tail_type": "--tail-type"}


def prepare_examples(options: ExtractOptions) -> tuple[Any, Any]:
    """(ICL parameters, demonstrations) from the options, read and checked."""
    from lamina.ie.fewshot import load_demos
    from lamina.ie.icl import get_icl_task, icl_params, load_examples

    if options.style == "icl":
        if options.task is None:
            raise InputError("--format icl needs --task (ner, re, ee, rte or da).")
        get_icl_task(options.task)
        examples = load_examples(options.examples, options.task) if options.examples else ()
        return icl_params(**options.icl_values()), examples
    given = [_ICL_FLAGS[k] for k, v in options.icl_values().items() if v is not None]
    if given:
        raise InputError(f"{', '.join(given)} only apply with --format icl.")
    return None, load_demos(options.examples) if options.examples else ()


class _NoModel:
    """Stands in for a model when only the task, schema and limits are being checked."""

    template = None


def run_extract(options: ExtractOptions, on_progress: ProgressCallback | None = None,
                on_record: Callable[[dict[str, Any]], None] | None = None) -> ExtractReport:
    """Run one job; see the module docstring. ``on_record`` sees every finished record
    (in input order when there is no output file, as they finish otherwise)."""
    extractor = check_options(options)
    items = _documents(options)
    run = JsonlRun(items, options.output, resume=options.resume, force=options.force,
                   keep_failed=options.keep_failed)
    report = ExtractReport(output=options.output, skipped=run.skipped, retried=run.retried,
                           bad_lines=list(run.bad))
    positions = [pos for pos, _ in run.todo]
    start = time.perf_counter()
    try:
        for index, rec in _extract(options, extractor, [item for _, item in run.todo],
                                   ordered=options.output is None, on_progress=on_progress):
            report.failed += int("error" in rec)
            report.cut += int(rec.get("finish_reason") == "length")
            report.written += 1
            if options.output is not None:
                run.write(positions[index], rec)
            if on_record is not None:
                on_record(rec)
    except BaseException as exc:
        kept = run.interrupted()
        if isinstance(exc, KeyboardInterrupt) and kept:
            raise ExtractInterrupted(kept) from exc
        raise
    run.finish()
    report.seconds = time.perf_counter() - start
    return report


def _documents(options: ExtractOptions) -> list[dict[str, Any] | BadLine]:
    """The job's documents (and rejected lines), checked before any model is loaded."""
    if options.input is not None:
        items: list[Any] = list(read_records(options.input, task=options.task))
        if not items:
            raise InputError(f"The input file '{options.input}' holds no documents.",
                             hint="Put one document per line, or JSONL records with a 'text' field.")
    else:
        items = [{"id": "1", "text": options.text}]
    if options.schema is None and options.style != "icl" and \
            not any(isinstance(i, dict) and "instruction" in i for i in items):
        raise InputError("No --schema given: say what to extract.",
                         hint='For example --schema \'["人物","地理位置","组织机构"]\'.')
    return items


def _extract(options: ExtractOptions, extractor: dict[str, Any], todo: list[dict[str, Any]], *,
             ordered: bool, on_progress: ProgressCallback | None
             ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index in ``todo``, record) pairs from the model, as finished (or in order)."""
    import lamina
    from lamina.ie.api import extract_iter, extract_many
    from lamina.runtime.engine import default_n_seq, native_available
    from lamina.runtime.sampling import SamplingParams

    llm = lamina.load(options.model, n_threads=options.n_threads, n_ctx=options.n_ctx,
                      template=options.template)
    batch = options.batch
    if batch is None:
        batch = default_n_seq(llm) if native_available() else 1
    params = SamplingParams.greedy(max_tokens=options.max_tokens)
    if on_progress is not None:
        on_progress(0, len(todo))
    if ordered:
        records: Iterator[tuple[int, dict[str, Any]]] = enumerate(
            extract_many(llm, todo, batch=batch, params=params, **extractor))
    else:
        records = extract_iter(llm, todo, batch=batch, params=params, **extractor)
    for finished, (index, rec) in enumerate(records, 1):
        yield index, rec
        if on_progress is not None:
            on_progress(finished, len(todo))


__all__ = ["ExtractInterrupted", "ExtractOptions", "ExtractReport", "check_options",
           "run_extract"]
