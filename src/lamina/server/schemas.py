"""Request bodies in OpenAI's shapes, and their mapping onto ``SamplingParams``.

Fields OpenAI clients send routinely but that do not change an answer
(``user``, ``metadata``...) are accepted; fields that would silently change the
meaning of an answer (``n`` > 1, ``logprobs``, token-id prompts, the deprecated
``functions``) are refused with a 400 that names them. Sampler settings are
turned into the one ``SamplingParams`` type; nothing here defines another.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lamina.errors import LaminaError
from lamina.runtime.sampling import SamplingParams
from lamina.server.errors import APIError
from lamina.server.grammar import check_schema
from lamina.server.tools import ToolPlan, ToolSpec

ROLES = ("system", "user", "assistant", "tool")


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCall(BaseModel):
    """A call in an earlier assistant turn, as OpenAI clients send the history back."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _content_field(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("each message must be an object like "
                             '{"role": "user", "content": "..."}')
        if "content" not in data and isinstance(data.get("message"), str):
            # Seed 003's own client sends {"role": "user", "message": "..."}.
            data = {**data, "content": data["message"]}
        if "content" not in data and data.get("tool_calls"):
            data = {**data, "content": ""}
        if "content" not in data:
            wrong = [k for k in ("message", "text", "msg") if k in data]
            if wrong:
                raise ValueError(f"the message text is in '{wrong[0]}', but the field is called "
                                 f"'content': send {{\"role\": \"{data.get('role', 'user')}\", "
                                 "\"content\": \"...\"}")
            raise ValueError("'content' is missing: send {\"role\": \"user\", \"content\": \"...\"}")
        content = data["content"]
        if content is None and data.get("role") in ("assistant", "tool"):
            data = {**data, "content": ""}  # an assistant turn that only called tools
        elif isinstance(content, list):  # OpenAI "content parts"; only text parts
            texts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise ValueError(f"content part of type {kind!r} is not supported; "
                                     "this model reads text only")
                texts.append(str(part.get("text", "")))
            data = {**data, "content": "".join(texts)}
        return data

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value == "developer":  # OpenAI's newer name for the system role
            return "system"
        if value not in ROLES:
            raise ValueError(f"role {value!r} is not supported; use one of {', '.join(ROLES)}")
        return value


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = "text"
    json_schema: dict[str, Any] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _Sampled(BaseModel):
    """Fields shared by /v1/completions and /v1/chat/completions."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = 1
    logprobs: Any = None
    # OpenAI's penalties, applied; their range (-2..2) is checked by SamplingParams.
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # lamina/llama.cpp extensions (seed 003 sends repetition_penalty)
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    repetition_penalty: float | None = None

    def refuse_unsupported(self) -> None:
        if self.n not in (None, 1):
            raise APIError(400, f"n={self.n} is not supported: lamina returns one choice per "
                                "request. Send n=1 (or leave it out) and repeat the request.",
                           param="n")
        if self.logprobs not in (None, False, 0):
            raise APIError(400, "logprobs are not supported by lamina's server; leave "
                                "'logprobs' out.", param="logprobs")

    def sampling_overrides(self, max_tokens_cap: int) -> dict[str, Any]:
        """The SamplingParams fields this request sets (validated), as overrides.

        Only the fields the client sent are returned, so the model's own
        defaults (the chat template's sampling defaults) apply to the rest.
        """
        self.refuse_unsupported()
        check_max_tokens("max_tokens", self.max_tokens, max_tokens_cap)
        penalty_field = "repeat_penalty" if self.repeat_penalty is not None \
            else "repetition_penalty"
        # request field -> SamplingParams field, for the ones the client sent
        sent = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p",
                "seed": "seed", "top_k": "top_k", "min_p": "min_p",
                penalty_field: "repeat_penalty", "presence_penalty": "presence_penalty",
                "frequency_penalty": "frequency_penalty"}
        overrides: dict[str, Any] = {}
        named: dict[str, str] = {}
        for field, target in sent.items():
            value = getattr(self, field)
            if value is not None:
                overrides[target] = value
                named[target] = field
        if self.stop:
            overrides["stop"] = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
            named["stop"] = "stop"
        try:
            SamplingParams().replace(**overrides)  # validate now, before any work starts
        except LaminaError as exc:
            target = next((k for k in overrides if f" {k}=" in f" {exc.message}"), None)
            raise APIError(400, exc.message, param=named.get(target or "")) from exc
        return overrides


def check_max_tokens(field: str, value: int | None, cap: int) -> None:
    """A token budget between 1 and the server's ``--max-tokens``, named if not."""
    if value is None:
        return
    if value < 1:
        raise APIError(400, f"{field}={value} must be at least 1.", param=field)
    if value > cap:
        raise APIError(400, f"{field}={value} is more than this server allows ({cap}). Ask "
                            "for fewer tokens, or start the server with a larger --max-tokens.",
                       param=field)


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: FunctionDef


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: NamedFunction


#: Arguments schema of a function declared without ``parameters``.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


class ChatCompletionRequest(_Sampled):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: Any = None  # OpenAI's deprecated form: refused with a pointer to tools

    def tool_plan(self) -> ToolPlan | None:
        """The validated tool request, or None when no call can be made.

        ``required`` and a named function need tools; every function's
        ``parameters`` must be a valid JSON Schema (it becomes the grammar).
        """
        if self.functions is not None:
            raise APIError(400, "'functions' is OpenAI's deprecated form of tool calling; send "
                                "'tools': [{\"type\": \"function\", \"function\": {...}}].",
                           param="functions")
        choice = self.tool_choice
        if not self.tools:
            if choice not in (None, "none", "auto"):
                raise APIError(400, "tool_choice asks for a tool call, but the request has no "
                                    "'tools'.", param="tool_choice")
            return None
        names = [t.function.name for t in self.tools]
        dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if dup is not None:
            raise APIError(400, f"tools declares the function '{dup}' twice.",
                           param=f"tools.{names.index(dup, names.index(dup) + 1)}.function.name")
        specs = []
        for i, t in enumerate(self.tools):
            params = t.function.parameters if t.function.parameters is not None \
                else NO_PARAMETERS
            check_schema(params, f"tools.{i}.function.parameters")
            specs.append(ToolSpec(t.function.name, params))
        if choice == "none":
            return None
        mode = "auto" if choice in (None, "auto") else "required"
        if isinstance(choice, NamedToolChoice):
            if choice.function.name not in names:
                raise APIError(400, f"tool_choice names the function '{choice.function.name}', "
                                    f"which is not in tools ({', '.join(names)}).",
                               param="tool_choice.function.name")
            specs = [s for s in specs if s.name == choice.function.name]
        tools = [t.model_dump(exclude_none=True) for t in self.tools]
        return ToolPlan(tools, specs, mode)

    def sampling_overrides(self, max_tokens_cap: int) -> dict[str, Any]:
        check_max_tokens("max_completion_tokens", self.max_completion_tokens, max_tokens_cap)
        if self.max_tokens is None and self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        return super().sampling_overrides(max_tokens_cap)


class CompletionRequest(_Sampled):
    prompt: str | list[str]
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None
    #: lamina extension: render the prompt as one user message with the chat
    #: template (None: the server's --completions-template setting).
    use_chat_template: bool | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not isinstance(value[0], str):
            raise ValueError("token-id prompts are not supported; send the prompt as text")
        return value

    def prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise APIError(400, f"prompt has {len(self.prompt)} entries; lamina's server takes "
                                "one prompt per request.", param="prompt")
        return self.prompt[0]

    def sampling_overrides(self, max_tokens_cap: int) -> dict[str, Any]:
        if self.echo or self.suffix or self.best_of not in (None, 1):
            raise APIError(400, "echo, suffix and best_of are not supported by lamina's server.",
                           param="echo" if self.echo else "suffix" if self.suffix else "best_of")
        return super().sampling_overrides(max_tokens_cap)


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not isinstance(value[0], str):
            raise ValueError("token-id inputs are not supported; send text "
                             "(a string or a list of strings)")
        if isinstance(value, list) and not value:
            raise ValueError("input is an empty list; send at least one string")
        return value

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class ExtractRequest(BaseModel):
    """lamina's IE endpoint: IEPile/OneKE-style task + schema + input text."""

    model_config = ConfigDict(extra="ignore")

    input: str = Field(min_length=1)
    task: str = "NER"
    schema_: Any = Field(default=None, alias="schema")
    lang: Literal["zh", "en"] = "zh"
    model: str | None = None
    split_num: int | None = Field(default=None, ge=1)
    use_grammar: bool = True
    max_tokens: int | None = None


class DocumentsRequest(BaseModel):
    """A file's text for /v1/extract/documents (the web page's JSONL upload)."""

    model_config = ConfigDict(extra="ignore")

    text: str
    name: str = "upload.jsonl"
    task: str = "NER"
