"""Run extraction with a loaded model: one text, or a stream of records.

``Extractor`` holds everything fixed for a run (task, schema chunks, their
grammars); for each document it makes the prompts, and turns the answers
into one record. ``extract``/``extract_many`` drive it sequentially through
``Model.generate``, or in batches through the native engine when present.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lamina.errors import LaminaError, SchemaError
from lamina.ie.fewshot import Demo, check_selection, history, load_demos, select_demos
from lamina.ie.grammar import (
    GrammarLimits,
    build_grammar,
    build_icl_grammar,
    build_pair_grammar,
)
from lamina.ie.icl import IclExample, IclParams, get_icl_task
from lamina.ie.icl import build_prompt as icl_prompt
from lamina.ie.icl import load_examples as icl_examples
from lamina.ie.icl import pick as icl_pick
from lamina.ie.icl import read_answer as icl_read
from lamina.ie.inputs import RecordError, as_input
from lamina.ie.instructions import (
    build_instruction,
    pair_categories,
    pair_user_turn,
    parse_instruction,
    render_prompt,
)
from lamina.ie.parse import parse_answer, parse_pairs
from lamina.ie.schema_split import (
    merge_results,
    normalize_schema,
    schema_keys,
    split_schema,
)
from lamina.ie.tasks import check_lang, get_task

STYLES = ("iepile", "pairs")
DEFAULT_MAX_TOKENS = 512


class ExtractionError(LaminaError):
    """The model's answer could not be turned into a result (cut off, not JSON)."""

    def __init__(self, message: str, record: dict[str, Any]) -> None:
        super().__init__(message, hint="Keep grammar decoding on, or raise max_tokens "
                                       "(SamplingParams.max_tokens).")
        self.record = record


@dataclass
class Answer:
    """One chunk's generated text and why generation ended ("stop" | "length")."""

    text: str
    finish_reason: str = "stop"


@dataclass
class Job:
    """The prompts of one document and how to read their answers."""

    text: str
    prompts: list[str]
    grammars: list[str | None]
    chunks: list[Any]
    instruction: str | None = None
    errors: list[str] = field(default_factory=list)
    #: Set when the document was cut to fit the token budget (see Extractor.fit).
    truncated: dict[str, int] | None = None
    #: The Extractor that reads the answers (runs can mix tasks, see Extractors).
    extractor: Any = None


@lru_cache(maxsize=256)
def _grammar(task: str, chunk_json: str, max_items: int, max_chars: int) -> str:
    return build_grammar(task, json.loads(chunk_json), GrammarLimits(max_items, max_chars))


def fit_prompts(model: Any, budget: int | None, text: str, prompts_of: Any,
                ) -> tuple[str, list[str], dict[str, int] | None]:
    """Cut the end of ``text`` until every prompt of ``prompts_of(text)`` holds at most
    ``budget`` tokens (see :meth:`Extractor.fit`)."""
    prompts = prompts_of(text)
    if budget is None:
        return text, prompts, None
    count = model.tokenize

    def longest(ps: list[str]) -> int:
        return max(len(count(p)) for p in ps)

    n = longest(prompts)
    if n <= budget:
        return text, prompts, None
    bare = longest(prompts_of(""))
    if bare > budget:
        raise SchemaError(
            f"The prompt is {n} tokens and its instruction alone {bare}, but at most "
            f"{budget} fit (--max-input-tokens, default: the context after --max-tokens).",
            hint="Load the model with a larger --ctx, lower --max-tokens, split the "
                 "schema further (--split-num), or give fewer --shots.")
    lo, hi = 0, len(text)  # the most characters whose prompts fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if longest(prompts_of(text[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    kept = text[:lo]
    return kept, prompts_of(kept), {"kept_chars": lo, "input_chars": len(text),
                                    "prompt_tokens": n, "max_input_tokens": budget}


class Extractor:
    """A prepared extraction run: task, language, schema chunks and grammars."""

    def __init__(self, model: Any, *, task: str = "NER", schema: Any = None, lang: str = "zh",
                 split_num: int | None = None, use_grammar: bool = True,
                 limits: GrammarLimits | None = None, style: str = "iepile",
                 max_input_tokens: int | None = None, examples: Sequence[Demo] = (),
                 shots: int = 2, select: str = "overlap") -> None:
        self.model = model
        #: Few-shot demonstrations (lamina.ie.fewshot), ``shots`` per prompt.
        self.examples = list(examples)
        self.shots = shots
        self.select = check_selection(select)
        #: Most prompt tokens a document's prompt may have; None: no cut (see fit).
        self.max_input_tokens = max_input_tokens
        self.spec = get_task(task)
        self.lang = check_lang(lang)
        if style not in STYLES:
            raise SchemaError(f"Unknown prompt style '{style}'.", hint=f"Use one of: {', '.join(STYLES)}.")
        if style == "pairs" and self.spec.name != "NER":
            raise SchemaError("The '类别_实体' pair format (seed 000) is for NER only.")
        self.style = style
        self.use_grammar = use_grammar
        self.limits = limits or GrammarLimits()
        self.split_num = self.spec.split_num if split_num is None else split_num
        self.schema = normalize_schema(self.spec, schema) if schema is not None else None
        self.chunks = split_schema(self.schema, self.split_num) if self.schema is not None else []

    # ---- prompts

    def _grammar_for(self, chunk: Any) -> str | None:
        if not self.use_grammar:
            return None
        if self.style == "pairs":
            return build_pair_grammar(chunk, self.limits)
        return _grammar(self.spec.name, json.dumps(chunk, ensure_ascii=False),
                        self.limits.max_items, self.limits.max_chars)

    def job(self, text: str, instruction: str | None = None) -> Job:
        """Prompts for one document; a record's own ``instruction`` is used as is
        (only its input is cut when the prompt is over the token budget): an
        IEPile instruction JSON in the iepile style, seed 000's free-text
        instruction (categories listed in it) in the pairs style."""
        if instruction is not None and self.style == "pairs":
            return self._pair_job(text, instruction)
        if instruction is not None:
            data = parse_instruction(instruction)
            chunk = normalize_schema(self.spec, data["schema"])

            def users_of(doc: str) -> list[str]:
                if doc == data["input"]:
                    return [instruction]
                return [json.dumps({**data, "input": doc}, ensure_ascii=False)]

            doc, prompts, cut = self.fit(str(data["input"]), users_of,
                                         self._histories([chunk], str(data["input"])))
            return Job(doc, prompts, [self._grammar_for(chunk)], [chunk],
                       instruction=instruction, truncated=cut)
        if self.schema is None:
            raise SchemaError("No schema given: say what to extract.",
                              hint='For example --schema \'["人物","地理位置"]\'.')
        if not isinstance(text, str) or not text.strip():
            raise SchemaError("The text to extract from is empty.")
        if self.style == "pairs":
            return self._pair_job(text, None)
        else:
            chunks = self.chunks

            def users_of(doc: str) -> list[str]:
                return [build_instruction(self.spec.name, c, doc, self.lang) for c in chunks]
        doc, prompts, cut = self.fit(text, users_of, self._histories(chunks, text))
        return Job(doc, prompts, [self._grammar_for(c) for c in chunks], list(chunks),
                   truncated=cut)

    def _pair_job(self, text: str, instruction: str | None) -> Job:
        """Seed 000: one prompt, never split; the categories come from the schema or
        from the record's own instruction."""
        if not isinstance(text, str) or not text.strip():
            raise SchemaError("The text to extract from is empty.")
        if self.schema is not None:
            categories = list(self.schema)
        elif instruction is not None:
            categories = pair_categories(instruction)
        else:
            raise SchemaError("No schema given: say what to extract.",
                              hint='For example --schema \'["人物","地理位置"]\'.')

        def users_of(doc: str) -> list[str]:
            return [pair_user_turn(categories, doc, instruction)]

        doc, prompts, cut = self.fit(text, users_of, self._histories([categories], text))
        return Job(doc, prompts, [self._grammar_for(categories)], [categories],
                   instruction=instruction, truncated=cut)

    def _histories(self, chunks: Sequence[Any], text: str) -> list[list[dict[str, str]]]:
        """The demonstration turns before each chunk's prompt (none without examples);
        picked once per document, so cutting the document never changes them."""
        if not self.examples:
            return [[] for _ in chunks]
        out = []
        for chunk in chunks:
            keys = chunk if self.style == "pairs" else schema_keys(self.spec, chunk)
            chosen = select_demos(self.examples, keys, task=self.spec.name, text=text,
                                  shots=self.shots, how=self.select)
            out.append(history(chosen))
        return out

    def fit(self, text: str, users_of: Any,
            histories: Sequence[Sequence[dict[str, str]]] | None = None,
            ) -> tuple[str, list[str], dict[str, int] | None]:
        """The document, its prompts, and how it was cut: the longest prompt keeps to
        ``max_input_tokens`` (seed 002's cutoff_len) by cutting the end of the
        document, never the instruction, the demonstrations (``histories``: the
        chat turns before each prompt) or the template around them.

        A document whose instruction alone is over the budget cannot be cut to fit
        and fails (alone) with a SchemaError naming both numbers.
        """
        template = self.model.template

        def prompts_of(doc: str) -> list[str]:
            users = users_of(doc)
            before = histories or [()] * len(users)
            return [render_prompt(template, u, h) for u, h in zip(users, before, strict=True)]

        return fit_prompts(self.model, self.max_input_tokens, text, prompts_of)

    # ---- answers

    def finish(self, job: Job, answers: Sequence[Answer]) -> dict[str, Any]:
        """Merge the chunk answers of one document into an output record."""
        parts, errors = [], list(job.errors)
        for chunk, ans in zip(job.chunks, answers, strict=True):
            if self.style == "pairs":
                parsed = parse_pairs(ans.text, chunk)
            else:
                parsed = parse_answer(self.spec, chunk, ans.text)
            if not parsed.ok and ans.finish_reason == "length":
                parsed.error = f"the answer was cut off at max_tokens ({parsed.error})"
            parts.append(parsed.result if parsed.ok else None)
            if not parsed.ok:
                errors.append(parsed.error or "unreadable answer")
        schema = self.schema if job.instruction is None or self.style == "pairs" \
            else job.chunks[0]
        if self.style == "pairs":
            result: dict[str, Any] = {}
            for part in parts:
                for key, values in (part or {}).items():
                    result.setdefault(key, []).extend(values)
        else:
            result = merge_results(self.spec, schema, parts)
        if errors:
            output = "\n".join(a.text for a in answers)
        elif self.style == "pairs":
            output = answers[0].text.strip() if answers else ""
        else:
            output = json.dumps(result, ensure_ascii=False)
        finish = "length" if any(a.finish_reason == "length" for a in answers) else "stop"
        record: dict[str, Any] = {"output": output, "result": result, "finish_reason": finish}
        if job.truncated is not None:
            record["truncated"] = dict(job.truncated)
        if errors:
            record["error"] = "; ".join(dict.fromkeys(errors))
        return record

    def keys(self) -> list[str]:
        return schema_keys(self.spec, self.schema) if self.schema is not None else []


def _default_params(params: Any) -> Any:
    if params is not None:
        return params
    from lamina.runtime.sampling import SamplingParams

    return SamplingParams.greedy(max_tokens=DEFAULT_MAX_TOKENS)


def _generate(model: Any, prompt: str, params: Any, grammar: str | None) -> Answer:
    text = model.generate(prompt, params, grammar=grammar)
    stats = getattr(model, "last_stats", None)
    reason = getattr(stats, "finish_reason", "stop")
    return Answer(str(text), "length" if reason == "length" else "stop")


def extract(model: Any, text: str, *, task: str = "NER", schema: Any = None, lang: str = "zh",
            split_num: int | None = None, use_grammar: bool = True, params: Any = None,
            limits: GrammarLimits | None = None, style: str = "iepile",
            max_input_tokens: int | None = None,
            examples: Sequence[Demo] | str | os.PathLike[str] | None = None, shots: int = 2,
            select: str = "overlap") -> dict[str, Any]:
    """Extract from one text; returns the result ``{schema key: value}`` in schema order.

    Raises ExtractionError (with the full record attached) when an answer could
    not be read, which with grammar decoding happens only at max_tokens. A text
    too long for the context is cut as in :func:`extract_iter`.
    """
    p = _default_params(params)
    if isinstance(examples, (str, os.PathLike)):
        examples = load_demos(examples)
    ex = Extractor(model, task=task, schema=schema, lang=lang, split_num=split_num,
                   use_grammar=use_grammar, limits=limits, style=style,
                   max_input_tokens=max_input_tokens if max_input_tokens is not None
                   else default_max_input_tokens(model, p.max_tokens),
                   examples=examples or (), shots=shots, select=select)
    job = ex.job(text)
    record = ex.finish(job, [_generate(model, pr, p, g) for pr, g in zip(job.prompts, job.grammars, strict=True)])
    if "error" in record:
        raise ExtractionError(f"Extraction failed: {record['error']}.", record)
    return record["result"]


def as_item(item: Any, index: int) -> dict[str, Any]:
    """Normalise an input item: a string, or a record in any shape ``lamina.ie.inputs``
    reads (items from its reader are already normalised)."""
    if isinstance(item, Mapping) and "kind" in item and "id" in item:
        return dict(item)
    if not isinstance(item, (str, Mapping)):
        raise SchemaError(f"Item {index + 1} is a {type(item).__name__}; give text or a dict "
                          "with a 'text' field.")
    try:
        return as_input(item, default_id=str(index + 1))
    except RecordError as exc:
        raise SchemaError(f"Item {index + 1} {exc}.") from None


class IclExtractor:
    """Seed 002's in-context-learning prompts (``lamina.ie.icl``) for one ICL task:
    the same job/finish interface as :class:`Extractor`, one prompt per document."""

    style = "icl"

    def __init__(self, model: Any, *, task: str, lang: str = "zh",
                 params: IclParams | None = None, examples: Sequence[IclExample] = (),
                 shots: int = 2, use_grammar: bool = True, limits: GrammarLimits | None = None,
                 max_input_tokens: int | None = None) -> None:
        self.model = model
        self.task = get_icl_task(task)
        self.lang = check_lang(lang)
        self.params = params or IclParams()
        self.examples = list(examples)
        self.shots = shots
        self.use_grammar = use_grammar
        self.limits = limits or GrammarLimits()
        self.max_input_tokens = max_input_tokens

    def job(self, text: str, instruction: str | None = None,
            record: Mapping[str, Any] | None = None) -> Job:
        """The prompt for one document; a record's own ICL fields (labels, head and
        tail entity...) win over the run's."""
        if instruction is not None:
            raise SchemaError("--format icl writes its own prompt, but this record carries "
                              "an instruction.", hint="Give plain text records, or leave "
                              "--format icl out.")
        if not isinstance(text, str) or not text.strip():
            raise SchemaError("The text to extract from is empty.")
        params = self.params.merged(record or {}).check(self.task)
        shown = icl_pick(self.examples, text, self.shots)
        template = self.model.template

        def prompts_of(doc: str) -> list[str]:
            return [render_prompt(template, icl_prompt(self.task, self.lang, doc, params, shown))]

        doc, prompts, cut = fit_prompts(self.model, self.max_input_tokens, text, prompts_of)
        grammar = build_icl_grammar(self.task, params.labels, self.limits) \
            if self.use_grammar else None
        return Job(doc, prompts, [grammar], [params], truncated=cut)

    def finish(self, job: Job, answers: Sequence[Answer]) -> dict[str, Any]:
        """The record: ``output`` is the result as IEPile JSON (so ``lamina eval`` reads
        it; da: the answer itself), ``answer`` the model's text."""
        (ans,) = answers
        text = ans.text.strip()
        result, error = icl_read(self.task, text, job.chunks[0])
        if error and ans.finish_reason == "length":
            error = f"the answer was cut off at max_tokens ({error})"
        output = text if error or self.task == "da" else json.dumps(result, ensure_ascii=False)
        record: dict[str, Any] = {"output": output, "answer": text, "result": result,
                                  "finish_reason": ans.finish_reason}
        if job.truncated is not None:
            record["truncated"] = dict(job.truncated)
        if error:
            record["error"] = error
        return record


class Extractors:
    """The Extractor each item needs: a run may mix tasks (a record's own ``task``
    wins over the run's) and prompt styles (seed 000's records bring their own
    free-text instruction, IEPile records their instruction JSON)."""

    def __init__(self, model: Any, *, task: str | None, style: str | None,
                 icl: Mapping[str, Any] | None = None, **options: Any) -> None:
        self.model = model
        self.task = task
        self.style = style
        self.options = options
        #: IclExtractor settings (params, examples, shots) for style "icl".
        self.icl = dict(icl or {})
        self._made: dict[tuple[str, str], Any] = {}

    def for_item(self, item: Mapping[str, Any]) -> tuple[Extractor, str | None]:
        """(Extractor, the record's own instruction or None); SchemaError if the
        record does not fit the run's options."""
        kind = item.get("kind", "text")
        if self.style == "icl":
            key = (str(self.task), "icl")
            if key not in self._made:
                o = self.options
                self._made[key] = IclExtractor(
                    self.model, task=str(self.task), lang=o.get("lang", "zh"),
                    use_grammar=o.get("use_grammar", True), limits=o.get("limits"),
                    max_input_tokens=o.get("max_input_tokens"), **self.icl)
            return self._made[key], item.get("instruction") if kind != "text" else None
        style = self.style or ("pairs" if kind == "alpaca" else "iepile")
        if kind == "alpaca" and style != "pairs":
            raise SchemaError("This record's instruction is free text (seed 000's "
                              "instruction/input/output layout), not an IEPile instruction.",
                              hint="Use --format pairs, or leave --format out.")
        if kind == "iepile" and style == "pairs":
            raise SchemaError("This record carries an IEPile instruction; --format pairs is "
                              "for seed 000's '类别_实体' files.",
                              hint="Leave --format out for IEPile files.")
        task = str(item.get("task") or self.task or "NER")
        key = (get_task(task).name, style)
        if key not in self._made:
            self._made[key] = Extractor(self.model, task=key[0], style=style, **self.options)
        instruction = item.get("instruction") if kind in ("iepile", "alpaca") else None
        return self._made[key], instruction


_PASS_THROUGH = ("instruction", "label", "source", "task")


def _make_record(item: Mapping[str, Any], job: Job | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": item["id"],
                           "input": job.text if job else item.get("text", item.get("input"))}
    for key in _PASS_THROUGH:
        if key in item:
            rec[key] = item[key]
    return rec


def _failed(rec: dict[str, Any], error: str) -> dict[str, Any]:
    rec.update({"output": "", "result": {}, "finish_reason": "error", "error": error})
    return rec


#: Documents per engine call, in units of --batch.
ENGINE_GROUP_BATCHES = 4


def default_max_input_tokens(model: Any, max_tokens: int) -> int:
    """Prompt tokens that fit the context with room for a ``max_tokens`` answer; at
    least half the context when ``max_tokens`` asks for more than the context can
    give (the answer is then cut at the context's end, finish_reason "length")."""
    n_ctx = int(model.n_ctx)
    return max(n_ctx - int(max_tokens), n_ctx // 2, 1)


def extract_iter(model: Any, items: Iterable[Any], *, batch: int = 1, task: str | None = None,
                 schema: Any = None, lang: str = "zh", split_num: int | None = None,
                 use_grammar: bool = True, params: Any = None,
                 limits: GrammarLimits | None = None, style: str | None = None,
                 max_input_tokens: int | None = None, exact: bool = True,
                 examples: Sequence[Demo] | str | os.PathLike[str] | None = None,
                 shots: int = 2, select: str = "overlap", icl: IclParams | None = None,
                 ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Extract from many items, yielding ``(item index, record)`` as each document
    is done (with ``batch > 1`` not in input order), so a caller can write every
    record at once and an interrupted run loses only the documents in flight.

    A record has ``id``, ``input``, ``output`` (the answer as JSON text, IEPile
    style), ``result`` (parsed, schema order), ``finish_reason`` ("stop",
    "length" when an answer hit max_tokens, "error"), ``truncated`` when the
    document was cut to ``max_input_tokens`` (default: what fits the context
    after max_tokens), and ``error`` when it failed. Any document's failure is
    its own: the others are decoded as if it were not there. Greedy answers do
    not depend on ``batch``; ``exact=False`` lets the engine decode all
    documents in one kernel call (faster on K-quant models, but the answers
    may then change in the last bits with the batch, see BatchEngine).

    Items are texts or records in any shape ``lamina.ie.inputs`` reads. A
    record's own ``task`` wins over ``task`` (default NER), and its own
    instruction is used: IEPile instruction JSON, or seed 000's free-text
    instruction, which picks the pairs style unless ``style`` says otherwise.
    ``examples`` (demonstrations, or the file of them, see ``lamina.ie.fewshot``)
    put ``shots`` solved examples before each prompt, picked by ``select``.
    ``style="icl"`` asks seed 002's in-context-learning tasks (``task`` one of
    ner/re/ee/rte/da, ``icl`` their labels, domain and entity pair; examples in
    the seed's ICL layout), see ``lamina.ie.icl``.
    """
    p = _default_params(params)
    budget = max_input_tokens if max_input_tokens is not None else \
        default_max_input_tokens(model, p.max_tokens)
    icl_settings = None
    if style == "icl":
        if task is None:
            raise SchemaError("--format icl needs --task (ner, re, ee, rte or da).")
        shown = icl_examples(examples, task) if isinstance(examples, (str, os.PathLike)) \
            else list(examples or ())
        icl_settings = {"params": icl, "examples": shown, "shots": shots}
        examples = None
    elif isinstance(examples, (str, os.PathLike)):
        examples = load_demos(examples)
    extractors = Extractors(model, task=task, style=style, schema=schema, lang=lang,
                            split_num=split_num, use_grammar=use_grammar, limits=limits,
                            max_input_tokens=budget, examples=examples or (), shots=shots,
                            select=select, icl=icl_settings)
    engine = native_engine() if batch > 1 else None
    # The engine batches continuously inside one call: hand it several batches'
    # worth of documents so slots do not sit idle while a group's last ones finish.
    group = max(1, batch) * ENGINE_GROUP_BATCHES if engine is not None else 1
    pending: list[tuple[int, dict[str, Any], Job | None, str | None]] = []
    for index, raw in enumerate(items):
        try:
            item = as_item(raw, index)
            ex, instruction = extractors.for_item(item)
            text = item.get("text")
            text = text if isinstance(text, str) else ""
            job = ex.job(text, instruction, item) if ex.style == "icl" else \
                ex.job(text, instruction)
            job.extractor = ex
            pending.append((index, item, job, None))
        except LaminaError as exc:
            item = raw if isinstance(raw, Mapping) else {"id": str(index + 1), "text": raw}
            pending.append((index, dict(item), None, exc.message))
        if len(pending) >= group:
            yield from _run_pending(model, pending, p, engine, batch, exact)
            pending = []
    if pending:
        yield from _run_pending(model, pending, p, engine, batch, exact)


def extract_many(model: Any, items: Iterable[Any], **kw: Any) -> Iterator[dict[str, Any]]:
    """:func:`extract_iter`'s records in input order (one per item)."""
    held: dict[int, dict[str, Any]] = {}
    nxt = 0
    for index, rec in extract_iter(model, items, **kw):
        held[index] = rec
        while nxt in held:
            yield held.pop(nxt)
            nxt += 1


def native_engine() -> Any:
    """``lamina.runtime.engine`` when the native batched engine is built, else None."""
    try:
        from lamina.runtime import engine
    except ImportError:
        return None
    try:
        return engine if engine.native_available() else None
    except Exception:  # a broken native build must not stop extraction
        return None


def _run_pending(model: Any,
                 pending: list[tuple[int, dict[str, Any], Job | None, str | None]],
                 params: Any, engine: Any, batch: int,
                 exact: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    runnable = []
    for index, item, job, error in pending:
        if job is None:
            yield index, _failed(_make_record(item, None), error or "unreadable item")
        else:
            runnable.append((index, item, job))
    if engine is not None and len(runnable) > 1:
        yield from _run_on_engine(model, runnable, params, engine, batch, exact)
        return
    for index, item, job in runnable:
        rec = _make_record(item, job)
        try:
            answers = [_generate(model, pr, params, g)
                       for pr, g in zip(job.prompts, job.grammars, strict=True)]
        except LaminaError as exc:
            yield index, _failed(rec, exc.message)
            continue
        rec.update(job.extractor.finish(job, answers))
        yield index, rec


def _run_on_engine(model: Any, runnable: list[tuple[int, dict[str, Any], Job]],
                   params: Any, engine: Any, batch: int,
                   exact: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """All chunk prompts of the documents on the engine; a document's record is
    yielded as soon as its last chunk is answered."""
    prompts, grammars, owner, first = [], [], [], []
    for d, (_, _, job) in enumerate(runnable):
        first.append(len(prompts))  # index of the document's first chunk prompt
        prompts += job.prompts
        grammars += job.grammars
        owner += [d] * len(job.prompts)
    answers: list[list[Answer | None]] = [[None] * len(job.prompts) for _, _, job in runnable]
    errors: list[list[str]] = [[] for _ in runnable]
    left = [len(job.prompts) for _, _, job in runnable]
    for i, c in engine.complete_many(model, prompts, params, grammars, n_seq=batch,
                                     exact=exact):
        d = owner[i]
        answers[d][i - first[d]] = Answer(c.text, c.finish_reason)
        if c.error is not None:
            errors[d].append(c.error)
        left[d] -= 1
        if left[d] == 0:
            index, item, job = runnable[d]
            rec = _make_record(item, job)
            if errors[d]:
                yield index, _failed(rec, "; ".join(dict.fromkeys(errors[d])))
            else:
                rec.update(job.extractor.finish(job, [a for a in answers[d] if a is not None]))
                yield index, rec
