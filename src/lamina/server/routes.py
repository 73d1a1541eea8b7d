"""The HTTP routes: OpenAI's /v1 endpoints, lamina's /v1/extract, /health, /metrics.

Each route validates and maps the request first (so a bad request never
waits in the queue), then takes a slot and runs the model on the slot's
thread. Streams evaluate the prompt before the response starts, so prompt
errors still get a proper HTTP status; after that, pieces are sent as
server-sent events and a client that goes away stops its generation.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from lamina.errors import LaminaError
from lamina.ie.api import extract as ie_extract
from lamina.ie.tasks import get_task
from lamina.runtime.sampling import SamplingParams
from lamina.server import shapes
from lamina.server.app import ServerState
from lamina.server.backend import Usage
from lamina.server.errors import APIError, ClientGone, from_lamina_error
from lamina.server.grammar import grammar_for
from lamina.server.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DocumentsRequest,
    EmbeddingRequest,
    ExtractRequest,
    check_max_tokens,
)
from lamina.server.slots import POLL_SECONDS, PieceStream
from lamina.server.tools import ToolRun

log = logging.getLogger("lamina.server")
router = APIRouter()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _state(request: Request) -> ServerState:
    return request.app.state.lamina


class SlotStreamingResponse(StreamingResponse):
    """A StreamingResponse that always gives its slot back, even if never iterated."""

    def __init__(self, content: AsyncIterator[bytes], cleanup: Callable[[], Any]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._cleanup = cleanup

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._cleanup()


class _Run:
    """One generation holding a slot: the piece stream plus what to release."""

    def __init__(self, state: ServerState, stack: contextlib.AsyncExitStack,
                 stream: PieceStream, first: list[str]) -> None:
        self.state = state
        self.stack = stack
        self.stream = stream
        self.first = first
        self.completed = False
        self.counted = False  # tokens added to the metrics

    async def release(self) -> None:
        """Stop the generation if it still runs, give the slot back (idempotent)."""
        if not self.completed and not self.stream.finished:
            self.completed = True  # count a cancelled run once
            self.state.slots.cancelled += 1
        await self.stack.aclose()
        if not self.counted and self.stream.result is not None:
            self.counted = True
            use = self.stream.result
            self.state.metrics.count_usage(use.prompt_tokens, use.completion_tokens)

    def usage(self) -> dict[str, int]:
        use = self.stream.result or Usage()
        return shapes.usage(use.prompt_tokens, use.completion_tokens)

    def finish_reason(self) -> str:
        return shapes.finish_reason((self.stream.result or Usage()).finish_reason)


async def _start(request: Request, make_iter: Callable[[], Iterator[str]],
                 prompt_param: str, finish: Callable[[Any], Usage] | None = None) -> _Run:
    """Wait for a slot, then evaluate the prompt and get the first pieces.

    A library error before the first piece is about the prompt (sampling values
    were checked before queueing): its 400 names ``prompt_param``.
    """
    state = _state(request)
    arrived = time.perf_counter()
    stack = contextlib.AsyncExitStack()
    try:
        slot = await stack.enter_async_context(state.slots.slot(request.is_disconnected))
        stream = PieceStream(slot, make_iter, finish=finish or state.backend.usage,
                             on_gap=state.metrics.itl.observe)
        stack.push_async_callback(stream.aclose)
        try:
            first = await stream.next_pieces()
        except LaminaError as exc:
            err = from_lamina_error(exc)
            err.param = err.param or prompt_param
            raise err from exc
        state.metrics.first_piece(arrived)
    except BaseException:
        await stack.aclose()
        raise
    return _Run(state, stack, stream, first)


async def _collect(request: Request, run: _Run) -> list[str]:
    """The rest of a generation's pieces; stop early if the client disconnects."""
    try:
        parts = list(run.first)
        while not run.stream.finished:
            if await request.is_disconnected():
                raise ClientGone()
            parts.extend(await run.stream.next_pieces(POLL_SECONDS))
    finally:
        await run.release()
    return parts


def _stream_response(request: Request, run: _Run, answer: shapes.Answer,
                     tail: Callable[[], list[dict[str, Any]]]) -> SlotStreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for event in answer.head():
            yield shapes.sse(event)
        for event in answer.chunks(run.first):
            yield shapes.sse(event)
        while not run.stream.finished:
            if await request.is_disconnected():
                return  # release() stops the generation and counts it
            if run.state.closing:
                run.completed = True
                yield shapes.sse(shapes.error_event(503, "The server is shutting down."))
                return
            try:
                pieces = await run.stream.next_pieces()
            except Exception as exc:  # headers are sent: report in-band, OpenAI style
                run.completed = True
                if isinstance(exc, LaminaError):
                    yield shapes.sse(from_lamina_error(exc).body())
                else:
                    log.exception("internal error while streaming")
                    yield shapes.sse(shapes.error_event(500, f"Internal server error "
                                                             f"({type(exc).__name__})."))
                return
            for event in answer.chunks(pieces):
                yield shapes.sse(event)
        await run.release()  # free the slot before the client reads the tail
        for event in tail():
            yield shapes.sse(event)
        yield shapes.sse("[DONE]")

    return SlotStreamingResponse(body(), cleanup=run.release)


async def _answer(request: Request, make_answer: Callable[[], shapes.Answer],
                  make_iter: Callable[[], Iterator[str]], stream: bool, include_usage: bool,
                  prompt_param: str, finish: Callable[[Any], Usage] | None = None
                  ) -> JSONResponse | StreamingResponse:
    """Run a chat or text completion and answer whole or as a stream."""
    run = await _start(request, make_iter, prompt_param, finish)
    answer = make_answer()  # created: when the slot was taken and generation began
    if not stream:
        pieces = await _collect(request, run)
        return JSONResponse(answer.whole(pieces, run.finish_reason(), run.usage()))

    def tail() -> list[dict[str, Any]]:
        events = answer.closing(run.finish_reason())
        if include_usage:
            events.append(answer.usage(run.usage()))
        return events

    return _stream_response(request, run, answer, tail)


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    state = _state(request)
    pool = state.slots
    return {"status": "ok", "model": state.name,
            "slots": {"total": pool.n_slots, "busy": pool.busy, "waiting": pool.waiting,
                      "queue_limit": pool.max_queue},
            "requests": {"served": pool.served, "cancelled": pool.cancelled,
                         "rejected": pool.rejected}}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format (see lamina.server.metrics for what is counted)."""
    from lamina.server.metrics import CONTENT_TYPE_LATEST

    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    state = _state(request)
    return {"object": "list", "data": [_card(state)]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    state.check_model(model_id, lookup=True)
    return _card(state)


def _card(state: ServerState) -> dict[str, Any]:
    """OpenAI's model card plus what a client needs to start from the model's own
    settings: context size, template, default sampling and the max_tokens cap."""
    model = state.model
    template = getattr(getattr(model, "template", None), "name", None)
    return shapes.model_card(state.name, state.started,
                             {"n_ctx": getattr(model, "n_ctx", None), "template": template,
                              "sampling": model.default_params.as_dict(),
                              "max_tokens": state.config.max_tokens_cap})


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request
                           ) -> JSONResponse | StreamingResponse:
    state = _state(request)
    state.check_model(body.model)
    overrides = body.sampling_overrides(state.config.max_tokens_cap)
    grammar = grammar_for(body.response_format.model_dump() if body.response_format else None)
    plan = body.tool_plan()
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    if plan is None:
        def make_iter() -> Iterator[str]:
            return state.backend.chat(messages, grammar, overrides)

        return await _answer(request, lambda: shapes.ChatAnswer(state.name), make_iter,
                             body.stream, include_usage, "messages")
    if grammar is not None:
        raise APIError(400, "response_format and tools cannot be combined: the tool call's "
                            "arguments are already constrained by its schema.",
                       param="response_format")
    model = state.model
    fmt = model.template.tool_format

    def make_tool_run() -> ToolRun:
        prompt = model.chat_tokens(messages, tools=plan.tools)
        return ToolRun(state.backend, prompt, plan, fmt, overrides,
                       tuple(overrides.get("stop", ())) + tuple(model.template.stop),
                       lambda text: model.tokenize(text, add_bos=False))

    return await _answer(request, lambda: shapes.ToolChatAnswer(state.name, fmt),
                         make_tool_run, body.stream, include_usage, "messages",
                         finish=lambda run: run.usage)


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request
                      ) -> JSONResponse | StreamingResponse:
    state = _state(request)
    state.check_model(body.model)
    overrides = body.sampling_overrides(state.config.max_tokens_cap)
    prompt = body.prompt_text()
    templated = body.use_chat_template if body.use_chat_template is not None \
        else state.config.completions_template

    def make_iter() -> Iterator[str]:
        if templated:
            return state.backend.chat([{"role": "user", "content": prompt}], None, overrides)
        return state.backend.complete(prompt, None, overrides)

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return await _answer(request, lambda: shapes.TextAnswer(state.name), make_iter,
                         body.stream, include_usage, "prompt")


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    state = _state(request)
    state.check_model(body.model)
    texts = body.texts()
    if any(not t for t in texts):
        raise APIError(400, "input contains an empty string; every input needs some text.",
                       param="input")

    def work() -> tuple[list[list[float]], int]:
        vectors = state.model.embed(texts)
        n_tokens = sum(len(state.model.tokenize(t)) for t in texts)
        return vectors, n_tokens

    async with state.slots.slot(request.is_disconnected) as slot:
        vectors, n_tokens = await slot.run(work)
    if body.dimensions is not None and vectors and body.dimensions != len(vectors[0]):
        raise APIError(400, f"dimensions={body.dimensions} is not available: this model's "
                            f"embeddings have {len(vectors[0])} dimensions. Leave 'dimensions' "
                            "out.", param="dimensions")
    return shapes.embeddings(state.name, vectors, body.encoding_format, n_tokens)


@router.get("/v1/extract/tasks")
async def extract_tasks() -> dict[str, Any]:
    """The extraction tasks and their schema shapes (the web page's schema editor)."""
    from lamina.ie.schema_split import example_schema
    from lamina.ie.tasks import TASKS

    return {"object": "list", "data": [
        {"name": spec.name, "title": spec.title, "item_kind": spec.item_kind,
         "key_field": spec.key_field, "list_field": spec.list_field,
         "defaults": dict(spec.defaults), "split_num": spec.split_num,
         "example": example_schema(spec)} for spec in TASKS.values()]}


@router.post("/v1/extract/documents")
async def extract_documents(body: DocumentsRequest) -> dict[str, Any]:
    """The documents of an uploaded file, read as ``lamina extract -i`` reads files
    (lamina.ie.inputs), so the web page takes the same files; records it cannot
    use come back in ``bad`` with the reason, as lamina extract's errors file."""
    from lamina.ie.inputs import BadLine, text_records
    from lamina.ie.tasks import get_task

    task = get_task(body.task).name
    documents: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    # IEPile records carry their own instruction and schema; the page sends its own.
    for item in text_records(body.text, body.name, task=task, kinds=("text", "alpaca")):
        if isinstance(item, BadLine):
            bad.append({"line": item.line, "error": item.reason})
        elif item.get("task", task) != task:
            bad.append({"line": None, "error": f"record {item['id']} is a {item['task']} "
                                               f"record; this run extracts {task}"})
        else:
            documents.append({key: item[key] for key in ("id", "text", "label", "source")
                              if key in item})
    return {"object": "documents", "task": task, "documents": documents, "bad": bad}


@router.post("/v1/extract")
async def extract(body: ExtractRequest, request: Request) -> dict[str, Any]:
    """lamina's information extraction (IEPile/OneKE instructions) as one call."""
    state = _state(request)
    state.check_model(body.model)
    try:
        get_task(body.task)
    except LaminaError as exc:
        raise APIError(400, f"{exc.message} {exc.hint or ''}".strip(), param="task") from exc
    kwargs: dict[str, Any] = {"task": body.task, "schema": body.schema_, "lang": body.lang,
                              "use_grammar": body.use_grammar}
    if body.split_num is not None:
        kwargs["split_num"] = body.split_num
    if body.max_tokens is not None:
        check_max_tokens("max_tokens", body.max_tokens, state.config.max_tokens_cap)
        kwargs["params"] = SamplingParams.greedy(max_tokens=body.max_tokens)

    async with state.slots.slot(request.is_disconnected) as slot:
        result = await slot.run(lambda: ie_extract(state.model, body.input, **kwargs))
    return {"object": "extraction", "model": state.name, "task": body.task.upper(),
            "lang": body.lang, "result": result}
