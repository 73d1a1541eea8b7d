"""llama.cpp's own programs (llama-server, llama-bench), built once from the sdist.

The baselines of the serving and decode benchmarks are llama.cpp's tools, compiled
from the llama.cpp that the llama-cpp-python sdist vendors (the same release as the
libllama lamina links against), with the same default CMake options that
llama-cpp-python's wheel build uses (native CPU flags, no CURL). The build takes
about 8 minutes on 2 cores and is cached under ``benchmarks/.work/llama-tools``.

    python benchmarks/llama_tools.py        # build (or find) them, print their paths
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bigmodel import SDIST_VERSION, ensure_seed_converter  # noqa: E402
from common import WORK  # noqa: E402

TOOLS = ("llama-server", "llama-bench")


def _source(work: Path) -> Path:
    """The whole vendored llama.cpp tree (the converter step unpacks only part of it)."""
    ensure_seed_converter(work)  # downloads the sdist if needed
    sdist = work / "sdist"
    root = sdist / f"llama_cpp_python-{SDIST_VERSION}" / "vendor" / "llama.cpp"
    if (root / "CMakeLists.txt").is_file() and (root / "tools" / "server").is_dir():
        return root
    prefix = f"llama_cpp_python-{SDIST_VERSION}/vendor/llama.cpp/"
    with tarfile.open(sdist / f"llama_cpp_python-{SDIST_VERSION}.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
        tar.extractall(sdist, members=members, filter="data")
    return root


def ensure_llama_tools(work: Path = WORK) -> dict[str, Path]:
    """Paths of llama-server and llama-bench, building them if they are not there."""
    build = work / "llama-tools"
    found = {t: build / "bin" / t for t in TOOLS}
    if all(p.is_file() and os.access(p, os.X_OK) for p in found.values()):
        return found
    if shutil.which("cmake") is None:
        raise SystemExit("cmake is needed to build llama-server and llama-bench "
                         "(pip install cmake, or apt-get install cmake).")
    src = _source(work)
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                    "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=ON",
                    "-DCMAKE_RUNTIME_OUTPUT_DIRECTORY=" + str(build / "bin")],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build), "--config", "Release", "-j",
                    str(os.cpu_count() or 2), "--target", *TOOLS], check=True,
                   stdout=subprocess.DEVNULL)
    missing = [t for t, p in found.items() if not p.is_file()]
    if missing:
        raise SystemExit(f"the llama.cpp build did not produce {', '.join(missing)} in {build}")
    return found


if __name__ == "__main__":
    print(json.dumps({k: str(v) for k, v in ensure_llama_tools().items()}))
