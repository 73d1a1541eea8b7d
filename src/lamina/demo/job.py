"""``lamina demo`` as a library function: the whole product on this machine in a minute.

:func:`run_demo` builds a tiny Chinese-LLaMA-like base and two LoRA patches (a
Plus-like one that extends the vocabulary, then an Alpaca-like one trained on a
few answers), runs the real build (merge + convert + quantize to Q4_K_M + verify),
then one streamed chat turn and one NER extraction on the 4-bit file, and writes
sample extraction input and gold files for the commands the demo suggests.
Nothing is downloaded. The caller sees each stage through :class:`DemoHooks`
(the CLI draws them; nothing here prints).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina.errors import InputError, require

DEMO_MODEL_NAME = "demo-q4_k_m.gguf"
DEMO_QUESTION = "请介绍一下西湖。"
TRAINING_STEPS = 30


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path = Path("lamina-demo")
    keep: bool = False  # keep the HF base and LoRA folders (by default only the GGUF stays)
    n_threads: int | None = None


@dataclass
class DemoHooks:
    """What the caller is told as the demo runs; every hook is optional."""

    on_stage: Callable[[int, str], None] | None = None  # (number, title)
    on_train_step: Callable[[int, int, float], None] | None = None  # (step, total, loss)
    on_family: Callable[[Any], None] | None = None  # the DemoFamily just made
    #: Runs the build (default: ``lamina.build.run_build`` without progress);
    #: the CLI passes one that draws progress bars and the result tables.
    build: Callable[[Any], Any] | None = None
    on_question: Callable[[str], None] | None = None
    on_piece: Callable[[str], None] | None = None  # streamed chat answer
    on_extracted: Callable[[str, list[str], Any], None] | None = None  # (text, schema, result)


@dataclass
class DemoReport:
    model: Path
    answer: str
    ner_text: str
    ner_schema: list[str]
    ner_result: Any
    docs: Path  # sample extraction input (JSONL)
    gold: Path  # its gold answers
    seconds: float
    build: Any = None  # lamina.build.BuildReport
    next_commands: list[str] = field(default_factory=list)


def run_demo(options: DemoOptions, hooks: DemoHooks | None = None) -> DemoReport:
    """Make, build, chat and extract; see the module docstring."""
    from lamina.build import BuildOptions, run_build
    from lamina.demo.training import DEMO_NER_DOCS, DEMO_NER_SCHEMA, build_demo_family

    require("torch", "convert")
    require("peft", "convert")
    hooks = hooks or DemoHooks()
    _quiet_training_libraries()
    started = time.perf_counter()
    workdir = options.workdir
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the demo folder '{workdir}': {exc.strerror}.",
                         hint="Choose a writable place with --workdir.") from exc
    sources = workdir / "checkpoints"
    if sources.exists():
        shutil.rmtree(sources)

    _stage(hooks, 1, "Make a base model and two LoRA patches")
    on_step = None
    if hooks.on_train_step is not None:
        def on_step(step: int, loss: float) -> None:
            hooks.on_train_step(step, TRAINING_STEPS, loss)
    family = build_demo_family(sources, steps=TRAINING_STEPS, on_step=on_step)
    if hooks.on_family is not None:
        hooks.on_family(family)

    _stage(hooks, 2, "lamina build: merge + convert + quantize to Q4_K_M + verify")
    model_path = workdir / DEMO_MODEL_NAME
    build_opts = BuildOptions(base=family.base, output=model_path, qtype="Q4_K_M",
                              loras=[family.lora_plus, family.lora_alpaca], template="alpaca2",
                              intermediate="f16", n_threads=options.n_threads, force=True)
    build_report = (hooks.build or run_build)(build_opts)

    import lamina

    _stage(hooks, 3, "Chat with the 4-bit model (streamed)")
    model = lamina.load(model_path, n_ctx=1024, n_threads=options.n_threads)
    if hooks.on_question is not None:
        hooks.on_question(DEMO_QUESTION)
    pieces = []
    for piece in model.chat([{"role": "user", "content": DEMO_QUESTION}],
                            stream=True, temperature=0.0, max_tokens=64):
        pieces.append(piece)
        if hooks.on_piece is not None:
            hooks.on_piece(piece)

    _stage(hooks, 4, "Information extraction (NER, OneKE format, grammar-constrained)")
    from lamina.ie.api import extract

    text = DEMO_NER_DOCS[0][0]
    result = extract(model, text, task="NER", schema=DEMO_NER_SCHEMA, lang="zh")
    if hooks.on_extracted is not None:
        hooks.on_extracted(text, DEMO_NER_SCHEMA, result)

    docs, gold = write_samples(workdir, DEMO_NER_DOCS)
    if not options.keep:
        shutil.rmtree(sources, ignore_errors=True)
    schema = json.dumps(DEMO_NER_SCHEMA, ensure_ascii=False)
    return DemoReport(
        model=model_path, answer="".join(pieces), ner_text=text, ner_schema=DEMO_NER_SCHEMA,
        ner_result=result, docs=docs, gold=gold, seconds=time.perf_counter() - started,
        build=build_report, next_commands=[
            f"lamina chat {model_path}",
            f"lamina extract {model_path} --task NER --schema '{schema}' \"{text}\"",
            f"lamina extract {model_path} --task NER --schema '{schema}' -i {docs} "
            f"-o {workdir / 'ner_out.jsonl'}",
            f"lamina eval --pred {workdir / 'ner_out.jsonl'} --gold {gold} --task NER",
            f"lamina serve {model_path}",
            f"lamina info {model_path}",
        ])


def _stage(hooks: DemoHooks, number: int, title: str) -> None:
    if hooks.on_stage is not None:
        hooks.on_stage(number, title)


def _quiet_training_libraries() -> None:
    """transformers/peft print their own progress bars and deprecation notices;
    the demo reports its own progress instead."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="peft")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def write_samples(workdir: Path, docs: list[tuple[str, dict[str, list[str]]]]
                  ) -> tuple[Path, Path]:
    """Sample extraction input and gold answers, for the README's extract/eval examples."""
    from lamina.files import atomic_output

    docs_path, gold_path = workdir / "ner_docs.jsonl", workdir / "ner_gold.jsonl"
    with atomic_output(docs_path, force=True) as tmp:
        tmp.write_text("".join(json.dumps({"id": f"d{i}", "text": text}, ensure_ascii=False)
                               + "\n" for i, (text, _) in enumerate(docs, 1)), encoding="utf-8")
    with atomic_output(gold_path, force=True) as tmp:
        tmp.write_text("".join(
            json.dumps({"id": f"d{i}", "output": json.dumps(gold, ensure_ascii=False)},
                       ensure_ascii=False) + "\n" for i, (_, gold) in enumerate(docs, 1)),
            encoding="utf-8")
    return docs_path, gold_path
