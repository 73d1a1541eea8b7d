"""Run extraction with a loaded model: one text, or a stream of records.

``Extractor`` holds everything fixed for a run (task, schema chunks, their
grammars); for each document it makes the prompts, and turns the answers
into one record. ``extract``/``extract_many`` drive it sequentially through
``Model.generate``, or in batches through the native engine when present.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lamina.errors import LaminaError, SchemaError
from lamina.runtime.ie.grammar import GrammarLimits, build_grammar, build_pair_grammar
from lamina.runtime.ie.instructions import (
    build_instruction,
    pair_user_turn,
    parse_instruction,
    render_prompt,
)
from lamina.runtime.ie.parse import parse_answer, parse_pairs
from lamina.runtime.ie.schema_split import (
    merge_results,
    normalize_schema,
    schema_keys,
    split_schema,
)
from lamina.runtime.ie.tasks import check_lang, get_task

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


@lru_cache(maxsize=256)
def _grammar(task: str, chunk_json: str, max_items: int, max_chars: int) -> str:
    return build_grammar(task, json.loads(chunk_json), GrammarLimits(max_items, max_chars))


class Extractor:
    """A prepared extraction run: task, language, schema chunks and grammars."""

    def __init__(self, model: Any, *, task: str = "NER", schema: Any = None, lang: str = "zh",
                 split_num: int | None = None, use_grammar: bool = True,
                 limits: GrammarLimits | None = None, style: str = "iepile") -> None:
        self.model = model
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
        """Prompts for one document; a ready-made IEPile ``instruction`` is used as is."""
        template = self.model.template
        if instruction is not None:
            data = parse_instruction(instruction)
            chunk = normalize_schema(self.spec, data["schema"])
            return Job(str(data["input"]), [render_prompt(template, instruction)],
                       [self._grammar_for(chunk)], [chunk], instruction=instruction)
        if self.schema is None:
            raise SchemaError("No schema given: say what to extract.",
                              hint='For example --schema \'["人物","地理位置"]\'.')
        if not isinstance(text, str) or not text.strip():
            raise SchemaError("The text to extract from is empty.")
        if self.style == "pairs":
            users = [pair_user_turn(list(self.schema), text)]  # never split: one answer
            chunks = [list(self.schema)]
        else:
            users = [build_instruction(self.spec.name, c, text, self.lang) for c in self.chunks]
            chunks = self.chunks
        return Job(text, [render_prompt(template, u) for u in users],
                   [self._grammar_for(c) for c in chunks], list(chunks))

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
        schema = self.schema if job.instruction is None else job.chunks[0]
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
        record: dict[str, Any] = {"output": output, "result": result}
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
    text = model.generate(prompt, params, grammar=grammar, add_bos=not prompt.startswith("<s>"))
    stats = getattr(model, "last_stats", None)
    return Answer(str(text), getattr(stats, "finish_reason", "stop") or "stop")


def extract(model: Any, text: str, *, task: str = "NER", schema: Any = None, lang: str = "zh",
            split_num: int | None = None, use_grammar: bool = True, params: Any = None,
            limits: GrammarLimits | None = None, style: str = "iepile") -> dict[str, Any]:
    """Extract from one text; returns the result ``{schema key: value}`` in schema order.

    Raises ExtractionError (with the full record attached) when an answer could
    not be read, which with grammar decoding happens only at max_tokens.
    """
    ex = Extractor(model, task=task, schema=schema, lang=lang, split_num=split_num,
                   use_grammar=use_grammar, limits=limits, style=style)
    job = ex.job(text)
    p = _default_params(params)
    record = ex.finish(job, [_generate(model, pr, p, g) for pr, g in zip(job.prompts, job.grammars, strict=True)])
    if "error" in record:
        raise ExtractionError(f"Extraction failed: {record['error']}.", record)
    return record["result"]


def as_item(item: Any, index: int) -> dict[str, Any]:
    """Normalise an input item: a string, or a dict with text/input/instruction and id."""
    if isinstance(item, str):
        return {"id": str(index + 1), "text": item}
    if isinstance(item, Mapping):
        data = dict(item)
        data.setdefault("id", str(index + 1))
        return data
    raise SchemaError(f"Item {index + 1} is a {type(item).__name__}; give text or a dict "
                      "with a 'text' field.")


_PASS_THROUGH = ("instruction", "label", "source", "task")


def _make_record(item: Mapping[str, Any], job: Job | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": item["id"],
                           "input": job.text if job else item.get("text", item.get("input"))}
    for key in _PASS_THROUGH:
        if key in item:
            rec[key] = item[key]
    return rec


#: Documents per engine call, in units of --batch (records are written per call).
ENGINE_GROUP_BATCHES = 4


def extract_many(model: Any, items: Iterable[Any], *, batch: int = 1, task: str = "NER",
                 schema: Any = None, lang: str = "zh", split_num: int | None = None,
                 use_grammar: bool = True, params: Any = None,
                 limits: GrammarLimits | None = None, style: str = "iepile",
                 ) -> Iterator[dict[str, Any]]:
    """Extract from many items, yielding one output record per item, in order.

    Items are strings or dicts (``text``/``input``, optional ``id``, or an
    IEPile ``instruction``). A record has ``id``, ``input``, ``output`` (the
    answer as JSON text, IEPile style), ``result`` (parsed, schema order), and
    ``error`` when it failed; a bad item yields a record with ``error`` and the
    run goes on. ``batch > 1`` uses the native batched engine when available.
    """
    ex = Extractor(model, task=task, schema=schema, lang=lang, split_num=split_num,
                   use_grammar=use_grammar, limits=limits, style=style)
    p = _default_params(params)
    engine = _engine() if batch > 1 else None
    # The engine batches continuously inside one call: hand it several batches'
    # worth of documents so slots do not sit idle while a group's last ones finish.
    group = max(1, batch) * ENGINE_GROUP_BATCHES if engine is not None else 1
    pending: list[tuple[dict[str, Any], Job | None, str | None]] = []
    for index, raw in enumerate(items):
        try:
            item = as_item(raw, index)
            text = item.get("text", item.get("input"))
            job = ex.job(text if isinstance(text, str) else "", item.get("instruction"))
            pending.append((item, job, None))
        except LaminaError as exc:
            item = raw if isinstance(raw, Mapping) else {"id": str(index + 1), "text": raw}
            pending.append((dict(item), None, exc.message))
        if len(pending) >= group:
            yield from _run_pending(ex, model, pending, p, engine, batch)
            pending = []
    if pending:
        yield from _run_pending(ex, model, pending, p, engine, batch)


def _engine() -> Any:
    try:
        from lamina.runtime import engine
    except ImportError:
        return None
    try:
        return engine if engine.native_available() else None
    except Exception:  # a broken native build must not stop extraction
        return None


def _run_pending(ex: Extractor, model: Any, pending: list[tuple[dict[str, Any], Job | None,
                 str | None]], params: Any, engine: Any, batch: int) -> Iterator[dict[str, Any]]:
    answers: dict[int, list[Answer]] = {}
    jobs = [(i, job) for i, (_, job, _) in enumerate(pending) if job is not None]
    if engine is not None and len(jobs) > 1:
        prompts = [pr for _, job in jobs for pr in job.prompts]
        grammars = [g for _, job in jobs for g in job.grammars]
        try:
            texts = engine.generate_many(model, prompts, params, grammars, n_seq=batch)
        except LaminaError as exc:
            texts = None
            for _, job in jobs:
                job.errors.append(exc.message)
        if texts is not None:
            pos = 0
            for i, job in jobs:
                n = len(job.prompts)
                answers[i] = [Answer(t, "stop") for t in texts[pos:pos + n]]
                pos += n
    for i, (item, job, error) in enumerate(pending):
        rec = _make_record(item, job)
        if job is None:
            rec.update({"output": "", "result": {}, "error": error})
            yield rec
            continue
        if i not in answers and not job.errors:
            try:
                answers[i] = [_generate(model, pr, params, g)
                              for pr, g in zip(job.prompts, job.grammars, strict=True)]
            except LaminaError as exc:
                job.errors.append(exc.message)
        if i not in answers:
            rec.update({"output": "", "result": {}, "error": "; ".join(job.errors)})
        else:
            rec.update(ex.finish(job, answers[i]))
        yield rec
