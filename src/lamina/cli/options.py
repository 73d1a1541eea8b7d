"""Options shared by several subcommands, defined once so names never drift.

Use them as decorators: ``@threads_option`` etc. The same names are used by the
Python API (``n_threads``, ``n_gpu_layers``...) and the server.
"""

from __future__ import annotations

import click

threads_option = click.option(
    "--threads", "-t", "n_threads", type=click.IntRange(min=1), default=None,
    help="CPU threads (default: all physical cores).",
)
gpu_layers_option = click.option(
    "--n-gpu-layers", "-ngl", "n_gpu_layers", type=int, default=0, show_default=True,
    help="Layers to offload to the GPU (-1 = all) when llama.cpp was built with GPU support.",
)
ctx_option = click.option(
    "--ctx", "-c", "n_ctx", type=click.IntRange(min=16), default=None,
    help="Context length in tokens (default: the model's, capped at 4096).",
)
template_option = click.option(
    "--template", "template", type=str, default=None,
    help="Chat template name (see `lamina templates`); default: from the model file.",
)
lora_option = click.option(
    "--lora", "lora", multiple=True, type=click.Path(dir_okay=True),
    help="Extra LoRA adapter (GGUF) applied at load time; repeatable.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
force_option = click.option("--force", "-f", is_flag=True, help="Overwrite the output if it exists.")
name_option = click.option(
    "--name", "model_name", default=None,
    help="Model name recorded in the output (GGUF general.name); default: the input "
         "folders' names, base+lora+..., the same for convert, build and merge.",
)
resume_option = click.option(
    "--resume", is_flag=True,
    help="Continue an interrupted run of the same --output (failed records are tried again).",
)
keep_failed_option = click.option(
    "--keep-failed", is_flag=True,
    help="With --resume: keep the failed records instead of trying them again.",
)
output_option = click.option(
    "--output", "-o", "output", type=click.Path(dir_okay=False), required=True,
    help="Output file.",
)


def sampling_options(func):  # type: ignore[no-untyped-def]
    """--temp/--top-k/--top-p/--min-p/--repeat-penalty/--presence-penalty/
    --frequency-penalty/--max-tokens/--seed/--stop.

    Each defaults to None ("use the template's / SamplingParams' default");
    ``lamina.cli.options.sampling_overrides(kwargs)`` pops them into a dict.
    """
    opts = [
        click.option("--temp", "temperature", type=float, default=None,
                     help="Sampling temperature (0 = greedy)."),
        click.option("--top-k", "top_k", type=int, default=None, help="Top-k sampling (0 = off)."),
        click.option("--top-p", "top_p", type=float, default=None, help="Nucleus sampling."),
        click.option("--min-p", "min_p", type=float, default=None, help="Min-p sampling."),
        click.option("--repeat-penalty", "repeat_penalty", type=float, default=None,
                     help="Repetition penalty (1 = off)."),
        click.option("--presence-penalty", "presence_penalty", type=float, default=None,
                     help="OpenAI's presence penalty (-2..2, 0 = off)."),
        click.option("--frequency-penalty", "frequency_penalty", type=float, default=None,
                     help="OpenAI's frequency penalty (-2..2, 0 = off)."),
        click.option("--max-tokens", "-n", "max_tokens", type=int, default=None,
                     help="Most tokens per answer."),
        click.option("--seed", "seed", type=int, default=None, help="RNG seed (reproducible)."),
        click.option("--stop", "stop", multiple=True, help="Stop string; repeatable."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


SAMPLING_KEYS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty",
                 "frequency_penalty", "max_tokens", "seed", "stop")


def sampling_overrides(kwargs: dict) -> dict:
    """Pop the sampling options out of a command's kwargs, keeping only those given."""
    out = {}
    for key in SAMPLING_KEYS:
        value = kwargs.pop(key, None)
        if value is not None and value != ():
            out[key] = tuple(value) if key == "stop" else value
    return out
