"""Named corrections to DeepKE's IEPile scorer and seed 000's ROUGE/BLEU (``--fix NAME``).

By default ``lamina eval`` gives DeepKE's ``eval_func.py`` numbers, defects
included, so that a lamina score can be compared with published IEPile/OneKE
scores. Where DeepKE's rule is plainly wrong the corrected rule is one of
these names; a fix is never on unless asked for, and the report lists the
fixes it used, so two numbers are never compared across rule sets by mistake.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lamina.errors import InputError
from lamina.ie.tasks import TASKS, get_task


@dataclass(frozen=True)
class Fix:
    """One correction: which tasks it changes and, in a line, how."""

    name: str
    tasks: tuple[str, ...]
    summary: str
    #: Which numbers it changes: "f1" (DeepKE's scorer) or "text" (seed 000's ROUGE/BLEU).
    metrics: str = "f1"


FIXES: dict[str, Fix] = {f.name: f for f in (
    Fix("re-subject-object", ("RE",),
        "read a relation's subject/object (what IEPile models answer) instead of head/tail"),
    Fix("kg-triples", ("KG",),
        "score (entity, attribute, value) triples against the label's (head, relation, tail); "
        "DeepKE compares (type, entity, attributes) records with them, so KG always scores 0"),
    Fix("instance-key", tuple(TASKS),
        "group chunk answers by (source, id); DeepKE joins the two strings, so source 'A' "
        "id '11' and source 'A1' id '1' become one instance"),
    Fix("text-order", tuple(TASKS),
        "ROUGE/BLEU with the model's answer as the hypothesis and the gold as the reference; "
        "seed 000's test.py passes them the other way round (BLEU changes, and ROUGE-L over "
        "several sentences)", metrics="text"),
)}


def parse_fixes(names: Iterable[str], task: str) -> tuple[str, ...]:
    """Validated fix names for ``task`` (comma lists allowed; ``all`` = every fix for it).

    A fix named for another task is an error rather than silently ignored: the
    user expects it to change the number.
    """
    name = get_task(task).name
    wanted: list[str] = []
    for item in names:
        for raw in str(item).split(","):
            fix = raw.strip().lower()
            if not fix:
                continue
            if fix == "all":
                wanted.extend(f.name for f in FIXES.values() if name in f.tasks)
                continue
            if fix not in FIXES:
                raise InputError(f"Unknown --fix '{raw.strip()}'.",
                                 hint=f"Choose from: {', '.join(FIXES)}, or all.")
            if name not in FIXES[fix].tasks:
                raise InputError(f"--fix {fix} changes task {', '.join(FIXES[fix].tasks)}, "
                                 f"not {name}.", hint="Drop it, or use --fix all.")
            wanted.append(fix)
    return tuple(sorted(set(wanted)))
