"""lamina build (== convert then quantize) and lamina info."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lamina.build import BuildOptions, run_build
from lamina.quantize.info import model_info
from lamina.quantize.quantizer import quantize
from tests.quantize.helpers import run_lamina


def test_build_equals_convert_then_quantize(qfix, tmp_path):
    from lamina.convert.pipeline import ConvertOptions, convert

    built = tmp_path / "built.gguf"
    report = run_build(BuildOptions(base=qfix.hf, output=built, qtype="Q4_K_M", verify=False))
    manual_f16 = tmp_path / "manual" / "f16.gguf"
    manual_f16.parent.mkdir()
    convert(ConvertOptions(base=qfix.hf, output=manual_f16, outtype="f16"))
    manual = tmp_path / "manual" / "q.gguf"
    quantize(manual_f16, manual, "Q4_K_M")
    assert built.read_bytes() == manual.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built.gguf", "manual"]
    assert report.intermediate_bytes == manual_f16.stat().st_size
    assert set(report.stage_seconds) == {"convert", "quantize"}


def test_build_cli_prints_sizes_and_quality(qfix, tmp_path):
    out = tmp_path / "m.gguf"
    proc = run_lamina(["build", str(qfix.hf), "--type",
                           "Q8_0", "-o", str(out), "--json"], timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["output_bytes"] == out.stat().st_size
    assert data["intermediate_bytes"] > data["output_bytes"]
    assert set(data["seconds"]) == {"convert", "quantize", "verify"}
    assert data["quality"]["top1_agreement"] >= 0.98
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]


def test_build_removes_its_temporary_folder_on_failure(qfix, tmp_path, monkeypatch):
    import lamina.build as build_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "quantize", interrupted)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        run_build(BuildOptions(base=qfix.hf, output=out / "m.gguf", verify=False, tmp_dir=scratch))
    assert list(scratch.iterdir()) == [] and list(out.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):  # default location (RAM or next to the output)
        run_build(BuildOptions(base=qfix.hf, output=out / "m.gguf", verify=False))
    assert list(out.iterdir()) == []
    assert not list(build_mod.SHM.glob(f".m.gguf.{os.getpid()}-*.build"))


def test_intermediate_goes_to_ram_only_when_it_clearly_fits(qfix, tmp_path, monkeypatch):
    import lamina.build as build_mod

    opts = BuildOptions(base=qfix.hf, output=tmp_path / "m.gguf")
    monkeypatch.setattr(build_mod, "mem_available", lambda: 1 << 40)
    expected_ram = build_mod.SHM if build_mod.SHM.is_dir() else tmp_path
    assert build_mod.temp_parent(opts, opts.output) == expected_ram
    monkeypatch.setattr(build_mod, "mem_available", lambda: 1000)
    assert build_mod.temp_parent(opts, opts.output) == tmp_path
    opts.tmp_dir = tmp_path / "elsewhere"
    assert build_mod.temp_parent(opts, opts.output) == tmp_path / "elsewhere"


def test_build_with_missing_base_fails_cleanly(tmp_path):
    proc = run_lamina(["build", str(tmp_path / "nope"),
                           "-o", str(tmp_path / "m.gguf")], timeout=120)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_info_reads_the_header(qfix, quantized):
    import gguf

    path = quantized("Q4_K_M")
    info = model_info(path)
    reader = gguf.GGUFReader(str(qfix.f16))
    assert info.architecture == "llama"
    assert info.n_params == sum(int(t.n_elements) for t in reader.tensors)
    assert info.file_bytes == path.stat().st_size
    assert info.file_type == "Q4_K_M"
    assert info.tensor_types["F32"] == 5 and "Q4_K" in info.tensor_types
    assert sum(info.tensor_types.values()) == info.n_tensors == len(reader.tensors)
    assert info.vocab_size == len(reader.fields["tokenizer.ggml.tokens"].data)
    assert info.special_tokens["bos"] == {"id": 1, "text": "<s>"}
    assert info.special_tokens["eos"] == {"id": 2, "text": "</s>"}
    assert info.context_length == 1024 and info.embedding_length == 256
    assert info.provenance["base"] == str(qfix.hf)


def test_info_cli_json_and_table(qfix):
    proc = run_lamina(["info", str(qfix.f16), "--json"], timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["file_type"] == "F16" and data["tensor_types"] == {"F16": 16, "F32": 5}
    table = run_lamina(["info", str(qfix.f16)], timeout=120,
                           )
    assert table.returncode == 0
    for label in ("Architecture", "Parameters", "Tensor types", "Special tokens", "Context"):
        assert label in table.stdout


def test_info_table_shows_a_llama2_template_as_written(qfix, monkeypatch):
    """An embedded template's '[/INST]' is text: Rich used to fail on it as a closing tag."""
    import dataclasses

    from click.testing import CliRunner

    import lamina.quantize.info as info_mod
    from lamina.cli import cli
    from lamina.ui.console import console

    jinja = "{{ bos_token }}[INST] {{ messages[0]['content'] }} [/INST]"
    data = dataclasses.replace(model_info(qfix.f16), chat_template_name=None, chat_template=jinja,
                               provenance={"base": "/models/llama[/x]"})
    monkeypatch.setattr(info_mod, "model_info", lambda path: data)
    monkeypatch.setattr(console, "width", 300)  # one line per value
    res = CliRunner().invoke(cli, ["info", str(qfix.f16)])
    assert res.exit_code == 0, res.output
    assert "[INST] {{ messages[0]['content'] }} [/INST]" in res.output
    assert "/models/llama[/x]" in res.output


def test_quantize_list_shows_every_type():
    from lamina.quantize.types import QUANT_TYPES

    proc = run_lamina(["quantize", "--list", "--json"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    names = [row["name"] for row in json.loads(proc.stdout)]
    assert names == [t.name for t in QUANT_TYPES]
    assert {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M",
            "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"} <= set(names)


def test_every_libllama_ftype_is_listed_or_explained():
    """Guards the table against llama.h: each LLAMA_FTYPE_* is offered, except NVFP4."""
    import llama_cpp.llama_cpp as lc

    from lamina.quantize.types import QUANT_TYPES

    ftypes = {getattr(lc, n) for n in dir(lc)
              if n.startswith("LLAMA_FTYPE_") and n != "LLAMA_FTYPE_GUESSED"}
    offered = {t.ftype for t in QUANT_TYPES}
    assert ftypes - offered == {lc.LLAMA_FTYPE_MOSTLY_NVFP4}


def test_each_type_name_has_llama_cpps_ftype_id():
    """Name -> id against llama.h's own constants: the set check above passes with two
    ids swapped (Q4_K_S as 15 and Q4_K_M as 14 would quantize the wrong mix)."""
    import llama_cpp.llama_cpp as lc

    from lamina.quantize.types import QUANT_TYPES

    for t in QUANT_TYPES:
        if t.only_copy:
            assert t.ftype == lc.LLAMA_FTYPE_ALL_F32  # llama-quantize's COPY keeps types
            continue
        const = "LLAMA_FTYPE_ALL_F32" if t.name == "F32" else f"LLAMA_FTYPE_MOSTLY_{t.name}"
        assert getattr(lc, const) == t.ftype, t.name


# ------------------------------------------------------------- general.name


def test_build_and_convert_then_quantize_name_the_model_alike(family, tmp_path):
    """One naming rule: build used to call it 'base', convert 'base+lora+lora'."""
    from lamina.convert.pipeline import ConvertOptions, convert

    loras = [family.lora_plus, family.lora_alpaca]
    built = tmp_path / "built.gguf"
    run_build(BuildOptions(base=family.base_hf, output=built, qtype="Q8_0", loras=loras,
                       verify=False))
    f16 = tmp_path / "f16.gguf"
    convert(ConvertOptions(base=family.base_hf, output=f16, loras=loras))
    manual = tmp_path / "manual.gguf"
    quantize(f16, manual, "Q8_0")
    expected = "+".join(p.name for p in [family.base_hf, *loras])
    assert model_info(built).name == model_info(manual).name == model_info(f16).name == expected
    assert built.read_bytes() == manual.read_bytes()  # nothing else differs either


def test_an_explicit_name_wins_in_every_command(family, tmp_path, capsys):
    from lamina.convert.pipeline import ConvertOptions, convert
    from tests.convert.test_errors import run_cli

    inputs = [family.base_hf, "--lora", family.lora_plus, "--name", "Chinese Alpaca 7B"]
    for args in (["build", *inputs, "-q", "Q8_0", "--no-verify", "-o", tmp_path / "b.gguf"],
                 ["convert", *inputs, "-o", tmp_path / "c.gguf"],
                 ["merge", *inputs, "-o", tmp_path / "merged"]):
        code, text = run_cli(args, capsys)
        assert code == 0, text
    assert model_info(tmp_path / "b.gguf").name == "Chinese Alpaca 7B"
    assert model_info(tmp_path / "c.gguf").name == "Chinese Alpaca 7B"
    prov = json.loads((tmp_path / "merged" / "lamina_provenance.json").read_text())
    assert prov["name"] == "Chinese Alpaca 7B"
    convert(ConvertOptions(base=tmp_path / "merged", output=tmp_path / "mc.gguf"))
    assert model_info(tmp_path / "mc.gguf").name == "Chinese Alpaca 7B"  # the recorded name


def test_an_empty_name_is_a_clear_error(family, tmp_path, capsys):
    from tests.convert.test_errors import assert_fails

    out = tmp_path / "m.gguf"
    assert_fails(["build", family.base_hf, "-q", "Q8_0", "--name", " ", "-o", out], capsys, out,
                 "--name is empty")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------ leftovers of killed builds


def test_build_removes_what_killed_builds_left(family, tmp_path, capsys):
    """Work folders (here in --tmp-dir) and the output's .part of dead processes go first."""
    from lamina import files
    from tests.convert.test_errors import run_cli
    from tests.test_files import dead_pid, leftover_name

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / f"m{os.getpid()}.gguf"  # no other session's leftovers in /dev/shm match
    pid = dead_pid()
    part = leftover_name(out, pid)
    part.write_bytes(b"p" * 1000)
    work = scratch / leftover_name(out, pid, ".build").name
    work.mkdir()
    (work / "model-f16.gguf").write_bytes(b"f" * 3000)
    (work / f".model-f16.gguf.{pid}-{files._HOST}-89abcdef.part").write_bytes(b"x" * 24)
    code, text = run_cli(["build", family.base_hf, "-q", "Q8_0", "--no-verify", "--tmp-dir",
                          scratch, "-o", out], capsys)
    assert code == 0, text
    assert "Removed 2 leftover temporary files (3.93 KB) of earlier interrupted runs." in text
    assert list(scratch.iterdir()) == [] and sorted(tmp_path.iterdir()) == [out, scratch]


_ORPHAN = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import os, sys, time; from lamina.quantize.worker import _die_with_parent; "
    "_die_with_parent(int(sys.argv[1])); print('ready', flush=True); time.sleep(600)",
    str(__import__("os").getpid())], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "ready"
print(child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:  # a zombie nobody reaps is gone too
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_quantize_worker_dies_with_a_killed_lamina():
    """Else an orphaned worker writes a temporary output for minutes after lamina is gone."""
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _gone(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")
