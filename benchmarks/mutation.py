"""Mutation testing of four core modules: do their unit tests notice a wrong line?

Each *mutant* is the module with one small change (``+`` -> ``-``, ``<`` -> ``<=``,
``True`` -> ``False``, a string changed or one of its implicitly joined parts
dropped, a statement removed, a return value replaced by None...). A mutant is
*killed* when the module's fast tests fail (or time out) with it, and *survives*
when they pass; the score is killed / (tried - known equivalent) in percent.

Why a runner of its own (standard library ``ast`` + pytest) rather than mutmut or
cosmic-ray: the tests import lamina through ``wheel.packages`` (``convert/`` is
``lamina.convert``), and CI tests the *installed* wheel, so a mutant written into
the checkout (cosmic-ray) or copied into a ``mutants/`` tree (mutmut 3) would not
be the code the tests import. Here the mutant is compiled from the checkout's file
and served under the module's import name by a meta-path finder, whatever the
install. And a fresh pytest process per mutant costs 5-30 s of imports (torch,
peft, llama_cpp); this script imports those once and forks one pytest session
per mutant from the warm process, so a mutant costs about the tests' own time.
Lines that the unmutated tests never execute (traced once) are reported as
surviving without running.

    python benchmarks/mutation.py                    # full run -> results/mutation.json
    python benchmarks/mutation.py --smoke --budget 150   # CI: must-kill list + seeded sample
    python benchmarks/mutation.py --list lora        # every mutant id of one module
    python benchmarks/mutation.py --show 'ID'        # one mutant: diff and pytest output

The smoke run (``.ci/run``) first runs the MUST_KILL mutants of each module (it fails
if one survives, or if one no longer exists: then update the list), then a seeded
random sample until the module's share of ``--budget`` is spent, and fails when the
sample's score is below the module's SMOKE_MIN_SCORE.
"""

from __future__ import annotations

import argparse
import ast
import importlib.abc
import importlib.util
import io
import json
import os
import random
import signal
import sys
import tempfile
import time
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    """One module under test: its import name, source file and fast tests."""

    key: str
    module: str
    source: str
    tests: tuple[str, ...]
    warm: tuple[str, ...]  # third-party imports done once, before forking
    smoke_share: float  # part of the smoke budget


TARGETS = {t.key: t for t in (
    Target("lora", "lamina.convert.lora", "convert/lora.py",
           ("tests/convert/test_lora.py", "tests/convert/test_lora_mutants.py",
            "tests/convert/test_errors.py::test_unknown_target_modules",
            "tests/convert/test_errors.py::test_lora_for_a_different_base",
            "tests/convert/test_errors.py::test_truncated_bin_adapter",
            "tests/convert/test_errors.py::test_missing_lora_folder"),
           ("numpy", "torch", "safetensors", "sentencepiece", "transformers", "peft", "gguf",
            "llama_cpp", "transformers:LlamaForCausalLM", "transformers:LlamaConfig",
            "peft:get_peft_model", "peft:LoraConfig", "peft:PeftModel"), 0.4),
    Target("metrics", "lamina.ie.metrics", "src/lamina/ie/metrics.py",
           ("tests/ie/test_parse_metrics.py", "tests/ie/test_metrics_mutants.py",
            "tests/ie/test_eval_deepke.py", "-k", "not cli"),
           ("jieba", "nltk", "rouge_chinese"), 0.2),
    Target("grammar", "lamina.ie.grammar", "src/lamina/ie/grammar.py",
           ("tests/ie/test_grammar_mutants.py",
            "tests/ie/test_grammar.py::test_grammar_keys_with_quotes_backslashes_and_newlines_are_escaped"),
           ("llama_cpp", "numpy"), 0.2),
    Target("templates", "lamina.templates", "src/lamina/templates.py",
           ("tests/runtime/test_templates.py", "tests/runtime/test_templates_mutants.py"),
           ("jinja2", "jinja2.sandbox", "llama_cpp", "numpy",
            "transformers.utils.chat_template_utils:render_jinja_template"), 0.2),
)}

#: Mutants that matter: each breaks a documented rule (peft's merge formula, DeepKE's
#: counting and rounding, the answer grammar's shape, a template's exact prompt). The
#: smoke run fails if any of them survives.
MUST_KILL: dict[str, tuple[str, ...]] = {
    "lora": (
        "LoraConfig.scale_for: binop: alpha / r -> alpha * r",
        "LoraConfig.scale_for: binop: alpha / math.sqrt(r) -> alpha * math.sqrt(r)",
        "LoraAdapter._index: compare: u in name -> u not in name",
        "_pattern_value: string: '(.*\\\\.)?(' -> 'XX(.*\\\\.)?(XX'",
        "lora_delta: boolop: fan_in_fan_out or embedding -> fan_in_fan_out and embedding",
        "lora_delta: binop: b @ a -> b * a",
        "lora_delta: delete: delta *= np.float32(scale) -> pass",
        "LoraAdapter._index: compare: pair.a is None -> pair.a is not None",
        "LoraAdapter.delta_shape: boolop: pair.embedding or self.config.fan_in_fan_out"
        " -> pair.embedding and self.config.fan_in_fan_out",
        "LoraConfig.from_dict: compare: r <= 0 -> r < 0",
        "_recorded_model_type: return: return str(model_type) if model_type else None"
        " -> return None",
    ),
    "metrics": (
        "count_matches: delete: remaining.remove(p) -> pass",
        "percent: number: 2 -> 3",
        "percent: binop: part / whole -> part * whole",
        "f1_score: binop: 2 * p -> 2 / p",
        "PRF.scores: swap-args: percent(self.tp, self.pred) -> percent(self.pred, self.tp)",
        "type_index: number: 1 -> 2",
        "Scorer.add: augassign: self.errors += errors -> self.errors -= errors",
        "seed000_scores: number: 4 -> 5 #2",
    ),
    "grammar": (
        "_list_of: binop: limits.max_items - 1 -> limits.max_items + 1",
        "_Rules.text: string: 'strs ::= ' -> 'XXstrs ::= XX'",
        "gbnf_literal: string: '\\\\\"' -> 'XX\\\\\"XX'",
        "_object: compare: i == 0 -> i != 0",
        "build_grammar: string: 'root ::= \" \"? ' -> 'XXroot ::= \" \"? XX'",
        "_optional_subset: compare: k == n - 1 -> k != n - 1",
        "build_pair_grammar: binop: lim.max_items - 1 -> lim.max_items + 1",
        "build_icl_grammar: bool: False -> True",
    ),
    "templates": (
        "_ALPACA_JINJA: drop-part: \"{{ bos_token }}\"",
        "_LLAMA2_JINJA: drop-part: \"{% set ns.first = false %}\"",
        "_CHATML_JINJA: drop-part: \"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\\\n' }}{% endif %}\"",
        "_check_messages: compare: i != 0 -> i == 0",
        "_compile: delete: env.globals['raise_exception'] = _raise_exception -> pass",
        "detect_template: boolop: name and name in _TEMPLATES -> name or name in _TEMPLATES",
        "detect_template: compare: builtin.jinja == jinja -> builtin.jinja != jinja",
        "ChatTemplate.render: compare: self.native_tool_format is None"
        " -> self.native_tool_format is not None",
        "tools_as_text: delete: out[-1]['content'] += '\\n' + block -> pass",
        "_compile: delete: env.filters['tojson'] = _tojson -> pass",
    ),
}

_RULE_NAME = "a generated rule's name, changed consistently where it is defined and used"

#: Mutants no test can kill because the program behaves the same (id -> why).
EQUIVALENT: dict[str, str] = {
    # lora
    "lora_delta: bool: False -> True #3": "astype(copy=True) copies; the values are the same",
    "lora_delta: bool: False -> True #4": "astype(copy=True) copies; the values are the same",
    "lora_delta: delete: a = a.astype(np.float32, copy=False) -> pass":
        "numpy computes float16 @ float32 in float32: the other factor's cast suffices",
    "lora_delta: delete: b = b.astype(np.float32, copy=False) -> pass":
        "numpy computes float32 @ float16 in float32: the other factor's cast suffices",
    "lora_delta: delete: delta = np.ascontiguousarray(delta) -> pass":
        "memory layout only; the converter adds the delta into its own buffer",
    "LoraAdapter.validate_targets: number: 2 -> 3":
        "rsplit('.', 3)[-2] is rsplit('.', 2)[-2]",
    "LoraAdapter.validate_targets: number: 1 -> 2": "rsplit('.', 2)[-1] is rsplit('.', 1)[-1]",
    "LoraAdapter.delta_shape: unary: -1 -> 1": "A is 2-D (factors() refuses others): a[1] is a[-1]",
    # metrics
    "PRF.add: swap-args: count_matches(gold, pred) -> count_matches(pred, gold)":
        "a multiset intersection is symmetric",
    "PRF.scores: swap-args: f1_score(p, r) -> f1_score(r, p)": "2PR / (P + R) is symmetric",
    "EMPTY_ANSWER: string: '*****' -> 'XX*****XX'":
        "jieba cuts any text into single '*' words, so no answer's words are the one-word"
        " placeholder: only an empty side gets it, whatever word it is",
    "seed000_scores: delete: warnings.simplefilter('ignore') -> pass":
        "nltk warns only without smoothing (method0); with method3, and in jieba and"
        " rouge_chinese, nothing warns: the filter is a guard",
    # grammar
    "gbnf_literal: number: 32 -> 33": "a space written as \\x20 is the same GBNF character",
    "gbnf_literal: compare: ord(ch) < 32 -> ord(ch) <= 32":
        "a space written as \\x20 is the same GBNF character",
    "_list_of: compare: limits.max_items > 1 -> limits.max_items >= 1":
        "the repetition {0,0} matches nothing, as the empty string does",
    "build_grammar: compare: lim.max_items > 1 -> lim.max_items >= 1":
        "the repetition {0,0} matches nothing, as the empty string does",
    "build_pair_grammar: compare: lim.max_items > 1 -> lim.max_items >= 1":
        "the repetition {0,0} matches nothing, as the empty string does",
    "_object: bool: True -> False": "keys and values have the same length by construction",
    "build_grammar: number: 0 -> 1": "llama.cpp starts at the rule named root, wherever it is",
    "build_grammar: string: '' -> 'XXXX'": "the RE pair rule is not used by other tasks",
    "_optional_subset: number: 1 -> 2 #2":
        "one more iteration adds a rule no other rule refers to",
    "build_icl_grammar: number: 0 -> 1": "llama.cpp starts at the rule named root, wherever it is",
    "build_icl_grammar: number: 0 -> 1 #2":
        "llama.cpp starts at the rule named root, wherever it is",
    **{f"{where}: string: '{name}' -> 'XX{name}XX'{n}": _RULE_NAME for where, name, n in (
        ("build_grammar", "so", ""), ("build_grammar", "rel", ""), ("build_grammar", "args", ""),
        ("build_grammar", "eargs", ""), ("build_grammar", "event", ""),
        ("build_grammar", "events", ""), ("build_grammar", "kg", ""),
        ("build_grammar", "entity", ""), ("build_grammar", "entities", ""),
        ("_optional_subset", "obj", ""), ("_optional_subset", "obj", " #2"),
        *(("build_icl_grammar", name, "") for name in
          ("ent", "arg", "args", "event", "triple", "sample")))},
    # templates
    "_compile: number: 32 -> 33": "the size of the compiled-template cache",
}

#: Surviving mutants left on purpose (id -> why no test should pin them down). They
#: still count against the score.
ACCEPTED: dict[str, str] = {
    r'_LORA_KEY: drop-part: r"(?:\.(?P<adapter>[^.]+))?(?:\.weight)?$"':
        "without the anchored tail the regex still splits every key peft writes the same way;"
        " only made-up keys with more after the adapter name would differ",
    "LoraAdapter.close: delete: self.files.close() -> pass":
        "close() drops references so memory is freed sooner; nothing a test can observe",
    "LoraAdapter.validate_targets: string: 'LLaMA' -> 'XXLLaMAXX'":
        "the family an error text names when the caller names none (convert/plan.py always"
        " names it)",
    "seed000_scores: delete: jieba.setLogLevel(logging.WARNING) -> pass":
        "silences jieba's start-up log; the runner initialises jieba before forking",
    "seed000_scores: string: ': ' -> 'XX: XX'":
        "the text of a skipped pair's error ('ValueError: ...'), prose like raised errors",
    **{f"EXAMPLE_MESSAGES: string: '{text}' -> 'XX{text}XX'":
       "the text of the example conversation `lamina templates` shows"
       for text in ("你好", "你好！有什么可以帮你？", "介绍一下北京")},
    **{f"get_template: string: {part} -> {mutated}":
       "the renamed-template part of the hint, prose like hints (built before the raise)"
       for part, mutated in (('"\'"', '"XX\'XX"'), ("''", "'XXXX'"))},
}


#: Lowest score (percent) of the smoke sample before CI fails, set from the full run.
SMOKE_MIN_SCORE = {"lora": 98.0, "metrics": 96.5, "grammar": 99.0, "templates": 95.5}


# --------------------------------------------------------------------------- mutants

_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
               ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
               ast.MatMult: ast.Mult, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
               ast.LShift: ast.RShift, ast.RShift: ast.LShift}
_CMP_SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt,
             ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
             ast.In: ast.NotIn, ast.NotIn: ast.In}

#: Keyword arguments whose strings are prose for people, never parsed: an error's hint,
#: a one-line description (``lamina templates`` prints the templates'). Not mutated.
_PROSE_KEYWORDS = {"hint", "description"}

#: Calls whose swapped arguments can only raise TypeError (no information).
_TYPE_CHECKS = {"isinstance", "issubclass", "getattr", "hasattr", "setattr"}


@dataclass
class Mutant:
    """One change: ``index`` counts mutation points in a fixed walk of the module."""

    target: str
    index: int
    id: str
    line: int
    span: tuple[int, int]  # lines of the innermost statement it changes
    status: str = "pending"  # killed | survived | timeout | uncovered
    seconds: float = 0.0


def _short(node: ast.AST | str, limit: int = 90) -> str:
    text = node if isinstance(node, str) else ast.unparse(node)
    text = " ".join(text.split("\n"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _string_parts(source_lines: list[str], node: ast.Constant) -> list[str]:
    """The literal tokens an implicitly joined string constant was written as."""
    lines = source_lines[node.lineno - 1: node.end_lineno]
    lines[-1] = lines[-1][: node.end_col_offset]
    lines[0] = lines[0][node.col_offset:]
    try:
        toks = list(tokenize.generate_tokens(io.StringIO("\n".join(lines)).readline))
    except (tokenize.TokenError, SyntaxError):
        return []
    return [t.string for t in toks if t.type == tokenize.STRING]


class _Walker(ast.NodeTransformer):
    """Finds mutation points in a fixed order; applies the one at ``apply`` if set.

    Skipped: docstrings, annotations, imports, the texts of raised errors, ``hint=``
    and ``description=`` (reviewed prose, matched by tests on a word), and lines or blocks marked
    ``# pragma: no cover`` / ``# pragma: no mutate``.
    """

    def __init__(self, source: str, apply: int | None = None) -> None:
        self.lines = source.splitlines()
        self.apply = apply
        self.points: list[tuple[str, int, tuple[int, int]]] = []  # (id, line, statement span)
        self.stmts: list[ast.stmt] = []
        self.scope: list[str] = []
        self.in_text = 0  # inside a raise, hint= or description=: strings are prose
        self.bound: list[set[str]] = [set()]
        self.skip_lines = {i + 1 for i, line in enumerate(self.lines)
                           if "pragma: no cover" in line or "pragma: no mutate" in line}

    # -- bookkeeping
    def _point(self, kind: str, before: str, after: str, line: int) -> bool:
        """Register a point; True when it is the one to apply now."""
        where = ".".join(self.scope) or "<module>"
        stmt = self.stmts[-1] if self.stmts else None
        span = (stmt.lineno, stmt.end_lineno or stmt.lineno) if stmt else (line, line)
        self.points.append((f"{where}: {kind}: {before} -> {after}" if after is not None
                            else f"{where}: {kind}: {before}", line, span))
        return self.apply == len(self.points) - 1

    def _skipped(self, node: ast.AST) -> bool:
        return getattr(node, "lineno", None) in self.skip_lines

    def _body(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out = []
        for i, s in enumerate(stmts):
            if i == 0 and isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) \
                    and isinstance(s.value.value, str) and self.scope_is_def_or_module():
                out.append(s)  # docstring
                continue
            if self._skipped(s):
                out.append(s)
                continue
            self.stmts.append(s)
            new = self.visit(s)
            self.stmts.pop()
            out.extend(new if isinstance(new, list) else [new] if new is not None else [])
        return out

    def scope_is_def_or_module(self) -> bool:
        return True

    def _else_skipped(self, node: ast.If | ast.For | ast.While | ast.Try) -> bool:
        if not node.orelse:
            return False
        start, stop = node.body[-1].end_lineno or 0, node.orelse[0].lineno
        return any(n in self.skip_lines for n in range(start + 1, stop))

    # -- scopes
    def visit_Module(self, node: ast.Module) -> ast.Module:
        node.body = self._body(node.body)
        return node

    def _def(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        self.scope.append(node.name)
        if not isinstance(node, ast.ClassDef):
            args = node.args
            self.bound.append({a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                                               *filter(None, [args.vararg, args.kwarg])]})
            args.defaults = [self.visit(d) for d in args.defaults]
            args.kw_defaults = [d if d is None else self.visit(d) for d in args.kw_defaults]
        else:
            self.bound.append(set())
            node.bases = [self.visit(b) for b in node.bases]
            node.keywords = [self.visit(k) for k in node.keywords]
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.body = self._body(node.body)
        self.bound.pop()
        self.scope.pop()
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _def

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node.body = self.visit(node.body)
        return node

    # -- statements
    def visit_Import(self, node: ast.AST) -> ast.AST:
        return node

    visit_ImportFrom = visit_Import

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        top = not self.scope and isinstance(node.target, ast.Name)
        if top:
            self.scope.append(node.target.id)
        if node.value is not None:
            node.value = self.visit(node.value)
        if top:
            self.scope.pop()
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        top = not self.scope
        if top and isinstance(node.targets[0], ast.Name):
            self.scope.append(node.targets[0].id)
        node.value = self.visit(node.value)
        if top and isinstance(node.targets[0], ast.Name):
            self.scope.pop()
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        rebinding = names and all(n in self.bound[-1] for n in names)
        attr = all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets)
        self.bound[-1].update(names)
        if self.scope and (rebinding or attr):
            if self._point("delete", _short(node), "pass", node.lineno):
                return ast.copy_location(ast.Pass(), node)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        node.value = self.visit(node.value)
        swap = _BINOP_SWAP.get(type(node.op))
        if swap is not None:
            new = ast.AugAssign(target=node.target, op=swap(), value=node.value)
            if self._point("augassign", _short(node), _short(new), node.lineno):
                return ast.copy_location(new, node)
        if self._point("delete", _short(node), "pass", node.lineno):
            return ast.copy_location(ast.Pass(), node)
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        node.value = self.visit(node.value)
        if isinstance(node.value, ast.Call) and self.scope:
            if self._point("delete", _short(node), "pass", node.lineno):
                return ast.copy_location(ast.Pass(), node)
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        self.in_text += 1
        self.generic_visit(node)
        self.in_text -= 1
        if self._point("delete", _short(node), "pass", node.lineno):
            return ast.copy_location(ast.Pass(), node)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        if node.value is None:
            return node
        node.value = self.visit(node.value)
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            if self._point("return", _short(node), "return None", node.lineno):
                return ast.copy_location(ast.Return(value=ast.Constant(None)), node)
        return node

    def visit_Continue(self, node: ast.AST) -> ast.AST:
        if self._point("delete", _short(node), "pass", node.lineno):
            return ast.copy_location(ast.Pass(), node)
        return node

    visit_Break = visit_Continue

    def _compound(self, node: ast.If | ast.For | ast.While) -> ast.AST:
        for name in ("test", "iter", "target"):
            if hasattr(node, name):
                setattr(node, name, self.visit(getattr(node, name)))
        node.body = self._body(node.body)
        if not self._else_skipped(node):
            node.orelse = self._body(node.orelse)
        return node

    visit_If = visit_For = visit_While = _compound

    def visit_Try(self, node: ast.Try) -> ast.AST:
        node.body = self._body(node.body)
        for h in node.handlers:
            h.body = self._body(h.body)
        node.orelse = self._body(node.orelse)
        node.finalbody = self._body(node.finalbody)
        return node

    def visit_With(self, node: ast.With) -> ast.AST:
        node.items = [self.visit(i) for i in node.items]
        node.body = self._body(node.body)
        return node

    # -- expressions
    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        if node.arg in _PROSE_KEYWORDS:
            self.in_text += 1
            node.value = self.visit(node.value)
            self.in_text -= 1
            return node
        node.value = self.visit(node.value)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        swap = _BINOP_SWAP.get(type(node.op))
        if swap is not None and not self.in_text:
            new = ast.BinOp(left=node.left, op=swap(), right=node.right)
            if self._point("binop", _short(node), _short(new), node.lineno):
                return ast.copy_location(new, node)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            swap = _CMP_SWAP.get(type(op))
            if swap is None:
                continue
            ops = list(node.ops)
            ops[i] = swap()
            new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
            if self._point("compare", _short(node), _short(new), node.lineno):
                return ast.copy_location(new, node)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        new = ast.BoolOp(op=ast.Or() if isinstance(node.op, ast.And) else ast.And(),
                         values=node.values)
        if self._point("boolop", _short(node), _short(new), node.lineno):
            return ast.copy_location(new, node)
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, (ast.Not, ast.USub)):
            if self._point("unary", _short(node), _short(node.operand), node.lineno):
                return node.operand
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        # Two neighbouring positional arguments (names or attributes) swapped.
        simple = (ast.Name, ast.Attribute)
        crash = isinstance(node.func, ast.Name) and node.func.id in _TYPE_CHECKS
        if not self.in_text and not crash and not any(isinstance(a, ast.Starred) for a in node.args):
            for i in range(len(node.args) - 1):
                a, b = node.args[i], node.args[i + 1]
                if not (isinstance(a, simple) and isinstance(b, simple)) or \
                        ast.dump(a) == ast.dump(b):
                    continue
                args = list(node.args)
                args[i], args[i + 1] = b, a
                new = ast.Call(func=node.func, args=args, keywords=node.keywords)
                if self._point("swap-args", _short(node), _short(new), node.lineno):
                    return ast.copy_location(new, node)
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        for i, v in enumerate(node.values):
            if isinstance(v, ast.FormattedValue):
                node.values[i] = self.visit(v)
            elif isinstance(v, ast.Constant) and not self.in_text:
                new = f"XX{v.value}XX"
                if self._point("string", repr(v.value), repr(new), node.lineno):
                    node.values[i] = ast.Constant(new)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        v = node.value
        if isinstance(v, bool):
            if self._point("bool", repr(v), repr(not v), node.lineno):
                return ast.copy_location(ast.Constant(not v), node)
        elif isinstance(v, (int, float)):
            if self._point("number", repr(v), repr(v + 1), node.lineno):
                return ast.copy_location(ast.Constant(v + 1), node)
        elif isinstance(v, str) and not self.in_text:
            parts = _string_parts(self.lines, node)
            if len(parts) > 1:
                for k, part in enumerate(parts):
                    if self._point("drop-part", _short(part, 200), None, node.lineno):
                        rest = "".join(ast.literal_eval(p) for j, p in enumerate(parts) if j != k)
                        return ast.copy_location(ast.Constant(rest), node)
            else:
                new = f"XX{v}XX"
                if self._point("string", _short(repr(v)), _short(repr(new)), node.lineno):
                    return ast.copy_location(ast.Constant(new), node)
        return node


def mutants_of(target: Target) -> list[Mutant]:
    source = (ROOT / target.source).read_text(encoding="utf-8")
    walker = _Walker(source)
    walker.visit(ast.parse(source))
    seen: dict[str, int] = {}
    out = []
    for index, (mid, line, span) in enumerate(walker.points):
        seen[mid] = seen.get(mid, 0) + 1
        if seen[mid] > 1:
            mid = f"{mid} #{seen[mid]}"
        out.append(Mutant(target.key, index, mid, line, span))
    return out


def mutated_code(target: Target, index: int | None) -> Any:
    """The module's code object with mutation ``index`` applied (None: unmutated)."""
    path = ROOT / target.source
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    if index is not None:
        walker = _Walker(source, apply=index)
        tree = ast.fix_missing_locations(walker.visit(tree))
    return compile(tree, str(path), "exec", dont_inherit=True)


def mutant_source(target: Target, index: int) -> str:
    source = (ROOT / target.source).read_text(encoding="utf-8")
    tree = ast.fix_missing_locations(_Walker(source, apply=index).visit(ast.parse(source)))
    return ast.unparse(tree)


# --------------------------------------------------------------------------- running

class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``code`` as module ``name``, wherever lamina is installed."""

    def __init__(self, name: str, code: Any, origin: str) -> None:
        self.name, self.code, self.origin = name, code, origin

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=self.origin)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: Any) -> None:
        module.__file__ = self.origin
        exec(self.code, module.__dict__)


class _Coverage:
    """Which lines of the target each test executes (the baseline run only).

    Lines run outside a test's call phase (at import, in fixture setup or teardown,
    whose results later tests share) go to ``shared``: a mutant there runs every test.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.shared: set[int] = set()
        self.tests: dict[str, set[int]] = {}
        self.seconds: dict[str, float] = {}
        self.bucket = self.shared

    def tracer(self, frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != self.path:
            return None
        self.bucket.add(frame.f_lineno)
        return self._local

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.bucket.add(frame.f_lineno)
        return self._local

    def plugin(self) -> Any:
        """pytest hooks that switch the line bucket around each test's call phase."""
        import pytest

        cov = self

        class Hooks:
            @pytest.hookimpl(tryfirst=True)
            def pytest_runtest_call(self, item: Any) -> None:
                cov.bucket = cov.tests.setdefault(item.nodeid, set())

            @pytest.hookimpl(tryfirst=True)
            def pytest_runtest_teardown(self, item: Any) -> None:
                cov.bucket = cov.shared

            def pytest_runtest_logreport(self, report: Any) -> None:
                cov.seconds[report.nodeid] = cov.seconds.get(report.nodeid, 0.0) + report.duration
                if report.when == "call":
                    cov.bucket = cov.shared

        return Hooks()

    def dump(self) -> dict[str, Any]:
        return {"shared": sorted(self.shared), "seconds": self.seconds,
                "tests": {k: sorted(v) for k, v in self.tests.items()}}


def _test_args(target: Target) -> list[str]:
    """The target's test arguments, without files that do not exist (yet)."""
    return [t for t in target.tests
            if not t.startswith("tests/") or (ROOT / t.split("::")[0]).exists()]


def _child(target: Target, index: int | None, tests: list[str] | None, basetemp: Path,
           log: Path, coverage_out: Path | None) -> None:
    """In the forked process: install the mutant, run pytest, exit with its code."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):  # die with the runner (Ctrl-C, kill)
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 3
    try:
        import pytest

        path = str(ROOT / target.source)
        sys.meta_path.insert(0, _Finder(target.module, mutated_code(target, index), path))
        plugins: list[Any] = []
        cov = None
        if coverage_out is not None:
            import threading

            cov = _Coverage(path)
            plugins.append(cov.plugin())
            sys.settrace(cov.tracer)
            threading.settrace(cov.tracer)
        os.chdir(ROOT)
        try:  # a mutant that breaks the import is killed before pytest collects anything
            importlib.import_module(target.module)
        except Exception:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            os._exit(1)
        args = [*(tests if tests is not None else _test_args(target)), "-x", "-q",
                "-p", "no:cacheprovider", "-o", "addopts=", f"--basetemp={basetemp}",
                "-W", "ignore"]
        code = int(pytest.main(args, plugins=plugins))
        if cov is not None:
            sys.settrace(None)
            coverage_out.write_text(json.dumps(cov.dump()))
    except BaseException:  # noqa: BLE001 - report anything as a failed run
        import traceback

        traceback.print_exc()
        code = 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


@dataclass
class _Run:
    pid: int
    mutant: Mutant | None
    start: float
    log: Path
    basetemp: Path
    tests: list[str] | None


class Runner:
    """Forks one pytest session per mutant from a process with warm imports."""

    def __init__(self, target: Target, work: Path, jobs: int = 1) -> None:
        self.target, self.work, self.jobs = target, work, jobs
        self.timeout = 60.0
        self.coverage: dict[str, Any] = {"shared": [], "tests": {}, "seconds": {}}
        self.baseline_seconds = 0.0
        # Entry-point plugins of the environment (langsmith, anyio...) cost seconds per
        # session and none of the selected tests needs one.
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        from _pytest.config import default_plugins

        for name in [*(f"_pytest.{p}" for p in default_plugins), *target.warm]:
            module, _, attr = name.partition(":")
            try:
                obj = importlib.import_module(module)
                if attr:
                    getattr(obj, attr)
            except ImportError:
                pass
        if "jieba" in target.warm:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
        if any(m == "lamina" or m.startswith("lamina.") for m in sys.modules):
            raise RuntimeError("lamina was imported before forking; mutants would not load")

    def _start(self, mutant: Mutant | None, tests: list[str] | None = None,
               coverage_out: Path | None = None) -> _Run:
        tag = "base" if mutant is None else str(mutant.index)
        basetemp = Path(tempfile.mkdtemp(prefix=f"{self.target.key}-{tag}-", dir=self.work))
        log = self.work / f"{self.target.key}-{tag}.log"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(self.target, None if mutant is None else mutant.index, tests,
                   basetemp / "t", log, coverage_out)
        return _Run(pid, mutant, time.perf_counter(), log, basetemp, tests)

    def _finish(self, run: _Run, status: int | None) -> str:
        import shutil

        shutil.rmtree(run.basetemp, ignore_errors=True)
        if status is None:
            return "timeout"
        code = os.waitstatus_to_exitcode(status)
        # 4 (usage error: a test id not found) and 5 (nothing collected) are the runner's
        # fault, never a mutant's: counting them as kills would inflate the score.
        return {0: "survived", 4: "error", 5: "error"}.get(code, "killed")

    def _wait(self, runs: list[_Run], deadline_each: float) -> tuple[_Run, str]:
        while True:
            for run in runs:
                pid, status = os.waitpid(run.pid, os.WNOHANG)
                if pid:
                    return run, self._finish(run, status)
                if time.perf_counter() - run.start > deadline_each:
                    try:
                        os.killpg(run.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    os.waitpid(run.pid, 0)
                    return run, self._finish(run, None)
            time.sleep(0.02)

    def baseline(self) -> None:
        """The unmutated tests must pass; records which test runs which line, and times."""
        cov = self.work / f"{self.target.key}-coverage.json"
        run = self._start(None, coverage_out=cov)
        _, result = self._wait([run], 1800)
        if result != "survived":
            tail = run.log.read_text(errors="replace")[-4000:]
            raise SystemExit(f"{self.target.key}: the unmutated tests fail ({result}):\n{tail}")
        self.baseline_seconds = time.perf_counter() - run.start
        self.coverage = json.loads(cov.read_text())
        # The traced baseline is slower than a mutant's run; 3x and at least 30 s.
        self.timeout = max(30.0, 3 * self.baseline_seconds)
        # Mutants run the tests fastest first: unmutated, that order must pass too, or a
        # test that depends on another's side effects would count as a kill.
        every = self._every_test()
        run = self._start(None, every)
        _, result = self._wait([run], 1800)
        if result != "survived":
            tail = run.log.read_text(errors="replace")[-4000:]
            raise SystemExit(f"{self.target.key}: the unmutated tests fail when run fastest "
                             f"first (they depend on their order):\n{tail}")

    @property
    def lines(self) -> set[int]:
        return set(self.coverage["shared"]).union(*map(set, self.coverage["tests"].values()))

    def _every_test(self) -> list[str]:
        return self._by_function(list(self.coverage["seconds"]))

    def _by_function(self, hit: list[str]) -> list[str]:
        """Test functions, not parametrized ids (a mutant may change the parameters: ids
        made from the module's own data), fastest first (a function's cases summed)."""
        seconds = self.coverage["seconds"]
        per_function: dict[str, float] = {}
        for t in hit:
            fn = t.split("[", 1)[0]
            per_function[fn] = per_function.get(fn, 0.0) + seconds.get(t, 0.0)
        return sorted(per_function, key=per_function.get)

    def tests_for(self, span: tuple[int, int]) -> list[str] | None:
        """The tests that execute a line of ``span``, fastest first; every test when a
        shared line is hit; None when no test runs it."""
        lines = set(range(span[0], span[1] + 1))
        if lines & set(self.coverage["shared"]):
            return self._every_test()
        hit = [t for t, ls in self.coverage["tests"].items() if lines & set(ls)]
        return self._by_function(hit) or None

    def run(self, mutants: list[Mutant], budget: float | None = None, progress: bool = True) -> list[Mutant]:
        """Run ``mutants`` in order (uncovered ones are survivors without running);
        stop starting new ones once ``budget`` seconds have passed. Returns those tried."""
        start = time.perf_counter()
        pending = list(mutants)
        active: list[_Run] = []
        tried: list[Mutant] = []
        while pending or active:
            while pending and len(active) < self.jobs and \
                    (budget is None or time.perf_counter() - start < budget):
                m = pending.pop(0)
                tried.append(m)
                tests = self.tests_for(m.span)
                if tests is None:
                    m.status = "uncovered"
                    continue
                active.append(self._start(m, tests))
            if not active:
                break
            run, result = self._wait(active, self.timeout)
            active.remove(run)
            m = run.mutant
            assert m is not None
            m.status, m.seconds = result, time.perf_counter() - run.start
            if result == "error" and run.tests is not None:
                # A mutant can make a selected test vanish (its parameters come from the
                # module): run it again with every test.
                run.log.unlink(missing_ok=True)
                active.append(self._start(m, None))
                continue
            if result == "error":
                tail = run.log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"{m.id}: pytest could not run the selected tests:\n{tail}")
            if result == "survived" or progress:
                print(f"  [{len(tried)}/{len(mutants)}] {m.status:8} {m.seconds:5.1f}s "
                      f"L{m.line} {m.id}", flush=True)
            run.log.unlink(missing_ok=True)
        return tried


# --------------------------------------------------------------------------- reporting

@dataclass
class Summary:
    key: str
    total: int
    tried: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0
    baseline_seconds: float = 0.0

    def count(self, *status: str) -> int:
        return sum(m.status in status for m in self.tried)

    @property
    def equivalent(self) -> int:
        return sum(m.id in EQUIVALENT and m.status in ("survived", "uncovered")
                   for m in self.tried)

    @property
    def score(self) -> float:
        denom = len(self.tried) - self.equivalent
        return 100.0 * self.count("killed", "timeout") / denom if denom else 100.0

    def survivors(self) -> list[Mutant]:
        return [m for m in self.tried if m.status in ("survived", "uncovered")
                and m.id not in EQUIVALENT]


COLUMNS = ["module", "mutants", "tried", "killed", "survived", "not run by the tests",
           "equivalent", "score"]


def table_rows(summaries: list[Summary]) -> list[list[str]]:
    rows = []
    for s in summaries:
        rows.append([TARGETS[s.key].source, str(s.total), str(len(s.tried)),
                     str(s.count("killed", "timeout")),
                     str(s.count("survived") - sum(m.id in EQUIVALENT for m in s.tried
                                                   if m.status == "survived")),
                     str(s.count("uncovered") - sum(m.id in EQUIVALENT for m in s.tried
                                                    if m.status == "uncovered")),
                     str(s.equivalent), f"{s.score:.1f}%"])
    return rows


def print_table(summaries: list[Summary]) -> None:
    rows = [COLUMNS, *table_rows(summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def run_module(target: Target, args: argparse.Namespace, work: Path,
               budget: float | None) -> Summary:
    all_mutants = mutants_of(target)
    summary = Summary(target.key, len(all_mutants))
    t0 = time.perf_counter()
    pid = os.fork()  # the warm imports of one module stay out of the others
    if pid == 0:
        try:
            code = _run_module_child(target, args, work, budget, all_mutants)
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            code = 2
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            code = 2
        sys.stdout.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{target.key}: the mutation run failed")
    data = json.loads((work / f"{target.key}-result.json").read_text())
    by_index = {m.index: m for m in all_mutants}
    for index, status_, seconds in data["tried"]:
        m = by_index[index]
        m.status, m.seconds = status_, seconds
        summary.tried.append(m)
    summary.baseline_seconds = data["baseline_seconds"]
    summary.seconds = time.perf_counter() - t0
    return summary


def smoke_order(key: str, mutants: list[Mutant], seed: str) -> list[Mutant]:
    """The smoke run's order: the must-kill mutants, then the rest shuffled by ``seed``."""
    must_ids = MUST_KILL.get(key, ())
    must = [m for i in must_ids for m in mutants if m.id == i]
    rest = [m for m in mutants if m.id not in must_ids]
    random.Random(f"{seed}:{key}").shuffle(rest)
    return must + rest


def smoke_floor(summary: Summary, seed: str, min_sampled: int = 5) -> float:
    """The lowest score a smoke run could report for this module, whatever the machine
    speed (it stops after some prefix of :func:`smoke_order`), from a full run's results.
    SMOKE_MIN_SCORE sits just below it, so the smoke fails only when tests got weaker."""
    order = smoke_order(summary.key, summary.tried, seed)
    n_must = sum(m.id in MUST_KILL.get(summary.key, ()) for m in order)
    killed = tried = equivalent = 0
    floor = 100.0
    for i, m in enumerate(order, 1):
        tried += 1
        killed += m.status in ("killed", "timeout")
        equivalent += m.id in EQUIVALENT
        if i >= n_must + min_sampled and tried > equivalent:
            floor = min(floor, 100.0 * killed / (tried - equivalent))
    return floor


def _run_module_child(target: Target, args: argparse.Namespace, work: Path,
                      budget: float | None, all_mutants: list[Mutant]) -> int:
    runner = Runner(target, work, jobs=args.jobs)
    print(f"== {target.source}: {len(all_mutants)} mutants; baseline run ...", flush=True)
    runner.baseline()
    print(f"   baseline {runner.baseline_seconds:.1f} s, timeout {runner.timeout:.0f} s, "
          f"{len(runner.coverage['seconds'])} tests, {len(runner.lines)} lines executed",
          flush=True)
    if args.smoke:
        order = smoke_order(target.key, all_mutants, args.seed)
        n_must = sum(m.id in MUST_KILL.get(target.key, ()) for m in all_mutants)
        must, rest = order[:n_must], order[n_must:]
        tried = runner.run(must, None, progress=args.verbose)
        remaining = None if budget is None else max(0.0, budget - sum(m.seconds for m in tried))
        tried += runner.run(rest, remaining, progress=args.verbose)
    else:
        order = list(all_mutants)
        if args.sample:
            random.Random(f"{args.seed}:{target.key}").shuffle(order)
            order = sorted(order[: args.sample], key=lambda m: m.index)
        tried = runner.run(order, budget, progress=args.verbose)
    (work / f"{target.key}-result.json").write_text(json.dumps({
        "tried": [[m.index, m.status, m.seconds] for m in tried],
        "baseline_seconds": runner.baseline_seconds}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", default=[],
                    help=f"modules to mutate: {', '.join(TARGETS)} (default: all four)")
    ap.add_argument("--smoke", action="store_true", help="CI mode: must-kill list + seeded sample")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for all modules together (split by each module's share)")
    ap.add_argument("--sample", type=int, default=0, help="full run: a seeded sample per module")
    ap.add_argument("--seed", default="lamina", help="seed of the sample order")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at the same time")
    ap.add_argument("--json", type=Path, default=None,
                    help="where to write the result (full run default: benchmarks/results/mutation.json)")
    ap.add_argument("--name", default="mutation", help="result name (results/<name>.json)")
    ap.add_argument("--list", action="store_true", help="print the mutants' ids and exit")
    ap.add_argument("--show", metavar="ID", help="run one mutant, print its diff and pytest output")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per mutant")
    args = ap.parse_args()
    keys = args.modules or list(TARGETS)
    unknown = [k for k in keys if k not in TARGETS]
    if unknown:
        ap.error(f"unknown module {unknown[0]!r}; choose from {', '.join(TARGETS)}")
    if args.list:
        for key in keys:
            for m in mutants_of(TARGETS[key]):
                print(f"{key}\tL{m.line}\t{m.id}")
        return 0
    if args.show:
        return show(args.show)
    work = Path(tempfile.mkdtemp(prefix="lamina-mutation-"))
    summaries = []
    ids = {k: {m.id for m in mutants_of(TARGETS[k])} for k in keys}
    missing = [(k, i) for k in keys for i in MUST_KILL.get(k, ()) if i not in ids[k]]
    if set(keys) == set(TARGETS):  # a listed reason for a mutant that no longer exists
        every = set().union(*ids.values())
        for i in sorted({*EQUIVALENT, *ACCEPTED} - every):
            print(f"note: {i} is listed as equivalent/accepted but is no mutant; "
                  "remove it from the list")
    try:
        for key in keys:
            target = TARGETS[key]
            budget = None
            if args.budget is not None:
                share = target.smoke_share / sum(TARGETS[k].smoke_share for k in keys)
                budget = args.budget * share
            summaries.append(run_module(target, args, work, budget))
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(summaries)
    failures = [f"must-kill mutant no longer exists (update MUST_KILL): {k}: {i}"
                for k, i in missing]
    failures += [f"must-kill mutant is listed as equivalent/accepted: {k}: {i}"
                 for k in keys for i in MUST_KILL.get(k, ()) if i in EQUIVALENT or i in ACCEPTED]
    for s in summaries:
        for m in s.tried:
            if m.status in ("killed", "timeout") and (m.id in EQUIVALENT or m.id in ACCEPTED):
                print(f"note: {m.id} is listed as equivalent/accepted but was killed; "
                      "remove it from the list")
        for m in s.survivors():
            must = m.id in MUST_KILL.get(s.key, ())
            print(f"{'MUST-KILL ' if must else ''}{m.status}: {TARGETS[s.key].source}:{m.line}"
                  f"  {m.id}")
            if must:
                failures.append(f"must-kill mutant survived: {s.key}: {m.id}")
        if not args.smoke and not args.sample and len(s.tried) == s.total:
            floor = smoke_floor(s, args.seed)
            print(f"{s.key}: a smoke run scores at least {floor:.1f}% "
                  f"(SMOKE_MIN_SCORE {SMOKE_MIN_SCORE[s.key]}%)")
        if args.smoke and s.score < SMOKE_MIN_SCORE[s.key]:
            failures.append(f"{s.key}: sample score {s.score:.1f}% < {SMOKE_MIN_SCORE[s.key]}%")
    out = args.json
    if out is None and not args.smoke:
        out = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    if out is not None:
        save(out, args, summaries)
        print(f"wrote {out}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


def save(path: Path, args: argparse.Namespace, summaries: list[Summary]) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import machine_info

    sampled = f"a seeded sample of {args.sample} per module" if args.sample else "every mutant"
    notes = (f"{sampled}; tests per module: see TARGETS in benchmarks/mutation.py. "
             "Score = killed / (tried - equivalent). 'not run by the tests': mutants on "
             "lines the tests never execute (they survive without running).")
    payload = {
        "name": args.name,
        "title": "Mutation score of four core modules against their fast unit tests",
        "columns": COLUMNS, "rows": table_rows(summaries), "notes": notes,
        "machine": machine_info(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "extra": {
            "smoke": args.smoke, "seed": args.seed, "sample": args.sample, "budget": args.budget,
            "modules": {s.key: {
                "source": TARGETS[s.key].source, "tests": list(TARGETS[s.key].tests),
                "score": round(s.score, 1), "seconds": round(s.seconds, 1),
                "smoke_floor": None if args.smoke or args.sample else round(
                    smoke_floor(s, args.seed), 1),
                "smoke_min_score": SMOKE_MIN_SCORE[s.key],
                "baseline_seconds": round(s.baseline_seconds, 1),
                "survived": [f"L{m.line} {m.id}" for m in s.survivors() if m.status == "survived"],
                "not_run": [f"L{m.line} {m.id}" for m in s.survivors() if m.status == "uncovered"],
                "equivalent": {m.id: EQUIVALENT[m.id] for m in s.tried if m.id in EQUIVALENT
                               and m.status in ("survived", "uncovered")},
                "accepted": {m.id: ACCEPTED[m.id] for m in s.survivors() if m.id in ACCEPTED},
            } for s in summaries},
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def show(mutant_id: str) -> int:
    import difflib

    for target in TARGETS.values():
        for m in mutants_of(target):
            if m.id == mutant_id:
                source = (ROOT / target.source).read_text(encoding="utf-8")
                before = ast.unparse(ast.parse(source)).splitlines()
                after = mutant_source(target, m.index).splitlines()
                print("\n".join(difflib.unified_diff(before, after, target.source, "mutant",
                                                     lineterm="", n=2)))
                import shutil

                work = Path(tempfile.mkdtemp(prefix="lamina-mutation-"))
                try:
                    runner = Runner(target, work)
                    run = runner._start(m)
                    _, result = runner._wait([run], 1800)
                    print(run.log.read_text(errors="replace")[-6000:])
                    print(f"=> {result}")
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                return 0
    print(f"no mutant {mutant_id!r} (see --list)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
