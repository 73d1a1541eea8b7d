"""The ``--ray`` branch of ``lamina extract``: a local job's options as a Ray job's.

The Ray path reads the same :class:`lamina.ie.job.ExtractOptions` the local path
does, so ``lamina extract`` only gains two options; what it cannot do on Ray
(resume, a single TEXT) is refused here with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lamina.errors import InputError
from lamina.ie.job import ExtractOptions

if TYPE_CHECKING:  # pragma: no cover
    from lamina.ray.runner import RayExtractOptions


def ray_options(options: ExtractOptions, *, address: str, workers: int,
                on_progress: Callable[[int, int], None] | None = None) -> RayExtractOptions:
    """The Ray job that does what ``options`` ask, on ``workers`` actors at ``address``."""
    from lamina.ray.runner import RayExtractOptions
    from lamina.ray.worker import ExtractSettings

    if options.input is None or options.text is not None:
        raise InputError("--ray needs --input FILE (a file, a folder, or a URI Ray Data reads), "
                         "not a TEXT argument.",
                         hint="For one text, drop --ray: lamina extract MODEL.gguf --schema ... TEXT")
    from lamina.ie.inputs import is_json_array

    if Path(options.input).is_file() and is_json_array(options.input):
        raise InputError("--ray reads its input line by line; this file is one JSON array.",
                         hint="Run without --ray, or write it as JSON Lines first.")
    if options.resume:
        raise InputError("--resume is not supported with --ray.",
                         hint="A Ray run writes its output only when complete; rerun it with --force.")
    return RayExtractOptions(
        model=Path(options.model), input=restore_uri(str(options.input)), output=options.output,
        address=address, workers=workers, threads=options.n_threads, n_ctx=options.n_ctx,
        template=options.template, force=options.force,
        batch_size=max(8, options.batch or 16),  # one actor call holds a full engine batch
        settings=ExtractSettings.from_options(options), on_progress=on_progress)


def restore_uri(path: str) -> str:
    """Undo what ``pathlib`` does to a URI given as ``--input`` (``s3://b/k`` -> ``s3:/b/k``).

    The option is parsed as a Path for the local reader; Ray Data reads URIs too,
    so the scheme's slashes are put back (``local:///abs`` keeps its third one).
    """
    import re

    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)(.*)$", path)
    if match is None:
        return path
    scheme, rest = match.groups()
    return f"{scheme}:///{rest}" if scheme == "local" else f"{scheme}://{rest}"
