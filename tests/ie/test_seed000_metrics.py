"""Seed 000's scores: lamina eval against the seed's own computation on the same files.

The reference below is written from seed 000's description (its metrics.py and
test.py): jieba words for ROUGE-1/2/L F (rouge_chinese), characters for BLEU-4
(nltk, SmoothingFunction().method3), '*****' for an empty answer, a pair that
raises left out of what it had not reached, numpy means, and test.py's call
``compute_metrics(ori_list, gen_list)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

jieba = pytest.importorskip("jieba")
pytest.importorskip("rouge_chinese")
pytest.importorskip("nltk")

from lamina.ie.evaluate import evaluate_files  # noqa: E402


def reference_compute_metrics(decoded_preds, decoded_labels):
    import numpy as np
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    rouge = Rouge()
    score_dict = {"rouge-1": [], "rouge-2": [], "rouge-l": [], "bleu-4": []}
    for pred, label in zip(decoded_preds, decoded_labels, strict=False):  # as the seed
        try:
            hypothesis = list(jieba.cut(str(pred))) if pred else ["*****"]
            hypothesis = hypothesis or ["*****"]
            reference = list(jieba.cut(str(label))) if label else ["*****"]
            reference = reference or ["*****"]
            result = rouge.get_scores(" ".join(hypothesis), " ".join(reference))[0]
            for k, v in result.items():
                score_dict[k].append(round(v["f"] * 100, 4))
            bleu = sentence_bleu([list(label)], list(pred),
                                 smoothing_function=SmoothingFunction().method3)
            score_dict["bleu-4"].append(round(bleu * 100, 4))
        except Exception:
            pass
    return {k: float(np.mean(v)) for k, v in score_dict.items()}


#: Answers of the shapes a NER run gives: exact, partial, reordered, empty, null,
#: only whitespace (rouge_chinese raises), several sentences, an extra pair.
ANSWERS = [
    ("安装动作_安装&操作部件1_a柱左下部饰板", "安装动作_安装&操作部件1_a柱左下部饰板"),
    ("安装动作_安装&操作部件1_前备箱储物单元&操作部件1_加固夹", "安装动作_安装&操作部件1_前备箱储物单元"),
    ("拆卸动作_拆下&操作部件1_螺栓", "操作部件1_螺栓&拆卸动作_拆下"),
    ("拆卸动作_拆下", ""),
    ("一般工具_10毫米套筒", None),
    ("方位_左", "   "),
    ("目标部件1_座椅。操作部件1_螺栓。", "操作部件1_螺栓。目标部件1_座椅靠背框架。"),
    ("安装动作_安装", "安装动作_安装&方位_前&量词_2个"),
]


def answer_file(path: Path) -> Path:
    rows = [{"ori_answer": ori, "gen_answer": gen} for ori, gen in ANSWERS]
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=4), encoding="utf-8")
    return path


def seed_test_py(path: Path):
    """What seed 000's test.py prints for the file."""
    examples = json.loads(path.read_text(encoding="utf-8"))
    ori_list = [e["ori_answer"] for e in examples]
    gen_list = [e["gen_answer"] for e in examples]
    return reference_compute_metrics(ori_list, gen_list)


def test_seed000_answer_file_scores_exactly_as_the_seed(tmp_path: Path):
    path = answer_file(tmp_path / "ft_pt_answer.json")
    report = evaluate_files(path)  # layout, metrics and format found from the file
    assert report["layout"] == "seed000" and "f1" not in report
    expected = seed_test_py(path)
    got = {k: report["text"][k] for k in expected}
    assert got == expected  # exact floats, not approx
    assert report["text"]["records"] == len(ANSWERS)
    assert [s["index"] for s in report["text"]["skipped"]] == [4, 5]  # null BLEU; whitespace
    assert report["text"]["scored"] == {"rouge-1": 7, "rouge-2": 7, "rouge-l": 7, "bleu-4": 6}


def test_text_order_fix_scores_the_answer_as_hypothesis(tmp_path: Path):
    path = answer_file(tmp_path / "ft_pt_answer.json")
    fixed = evaluate_files(path, fixes=["text-order"])["text"]
    rows = json.loads(path.read_text(encoding="utf-8"))
    expected = reference_compute_metrics([r["gen_answer"] for r in rows],
                                         [r["ori_answer"] for r in rows])
    assert {k: fixed[k] for k in expected} == expected
    assert fixed["bleu-4"] != evaluate_files(path)["text"]["bleu-4"]


def test_extract_pair_records_score_with_their_own_gold(tmp_path: Path):
    """lamina extract on seed 000's pair file passes each record's output along as
    'label'; eval then reads the pairs format and scores the seed's way."""
    pred = tmp_path / "pred.jsonl"
    instruction = "请你帮我抽取出命名实体识别类别为'安装动作','操作部件1'的二元组。"
    rows = [{"id": str(i), "instruction": instruction, "input": "x", "output": gen,
             "label": ori} for i, (ori, gen) in enumerate(ANSWERS[:4], 1) if gen is not None]
    pred.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    report = evaluate_files(pred, metrics=["f1", "rouge", "bleu"])
    assert report["format"] == "pairs"
    expected = reference_compute_metrics([r["label"] for r in rows], [r["output"] for r in rows])
    assert {k: report["text"][k] for k in expected} == expected
    assert report["f1"]["levels"]["entity"]["gold"] == 2 + 3 + 2 + 1


def test_eval_cli_prints_the_seed_numbers(tmp_path: Path):
    path = answer_file(tmp_path / "ft_pt_answer.json")
    proc = subprocess.run([sys.executable, "-m", "lamina", "eval", "--pred", str(path), "--json"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["text"]["rouge-l"] == seed_test_py(path)["rouge-l"]
    table = subprocess.run([sys.executable, "-m", "lamina", "eval", "--pred", str(path)],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert f"{seed_test_py(path)['bleu-4']:.4f}" in table.stdout
    assert "left out" in table.stderr


def test_seed000_data_file_through_extract_and_eval(chat_gguf, tmp_path: Path):
    """Seed 000's dev file as it ships (a JSON array, one record broken): extract needs
    no --schema or --format, the bad record goes to the errors file, and eval gives
    the seed's numbers for the answers against the records' own outputs."""
    from tests.ie.test_inputs import SEED0_RECORDS

    text = json.dumps(SEED0_RECORDS + [{"instruction": "x", "output": "y"}], ensure_ascii=False,
                      indent=4)
    src = tmp_path / "enoch_fine_tune_dev.json"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "pred.jsonl"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "lamina", "extract", str(chat_gguf), "-i",
                           str(src), "-o", str(out), "--max-items", "2", "--max-chars", "3",
                           "--max-tokens", "100", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["label"] for r in recs] == [r["output"] for r in SEED0_RECORDS]
    assert all(r["instruction"] == SEED0_RECORDS[0]["instruction"] for r in recs)
    (err,) = [json.loads(x) for x in (tmp_path / "pred.errors.jsonl").read_text().splitlines()]
    assert err["record"] == 4 and "no 'input' document" in err["error"]
    res = subprocess.run([sys.executable, "-m", "lamina", "eval", "--pred", str(out),
                          "--metrics", "rouge,bleu", "--json"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    expected = reference_compute_metrics([r["label"] for r in recs], [r["output"] for r in recs])
    assert {k: json.loads(res.stdout)["text"][k] for k in expected} == expected
