"""User-facing error types.

Every failure a user can cause (a missing file, a wrong format, a bad option)
is raised as a ``LaminaError`` subclass whose message is written for a person:
it names the problem and says what to do. The CLI prints these in red without a
traceback; anything else is a bug and is shown with one (``--debug``).
"""

from __future__ import annotations


class LaminaError(Exception):
    """Base class for errors caused by user input or environment, not by bugs."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n{hint}")


class InputError(LaminaError):
    """A file or folder given by the user is missing, unreadable or malformed."""


class FormatError(LaminaError):
    """A file exists but is not in the format lamina expected (not GGUF, bad JSON...)."""


class ShapeMismatchError(LaminaError):
    """Weights that must fit together do not (a LoRA made for another base model)."""


class ChecksumError(LaminaError):
    """A file's SHA-256 differs from the expected value."""


class OutputExistsError(LaminaError):
    """The output path exists and the user did not pass --force."""


class UnsafeCheckpointError(LaminaError):
    """A pickle-based checkpoint tried to do something other than load tensors."""


class MissingDependencyError(LaminaError):
    """An optional extra (convert, serve, eval, ray) is needed but not installed."""


class ModelLoadError(LaminaError):
    """llama.cpp refused to load a model or adapter file."""


class TemplateError(LaminaError):
    """An unknown chat template name, or a template that failed to render."""


class SchemaError(LaminaError):
    """An extraction schema or task that does not fit the chosen task."""


def require(module: str, extra: str) -> None:
    """Fail with install advice when an optional dependency is missing.

    Heavy imports live behind extras so ``lamina chat`` starts fast; this turns
    an ImportError deep inside a command into one clear line.
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"This command needs the Python package '{module}', which is not installed.",
            hint=f'Install it with: pip install "lamina[{extra}]"',
        )
