"""`nightshift prepare`: one-line errors with exit code 2 and nothing written; JSON and human output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nightshift.orchestrator.cli import main
from tests.pipelines.helpers import write_jsonl


@pytest.fixture()
def blank(tmp_path) -> Path:
    return write_jsonl(tmp_path / "blank" / "c.jsonl", [{"text": " \n "}, {"text": "\t"}])


BAD = {
    "unknown source": (["--source", "wikipedia"], "unknown source 'wikipedia'; accepted: pg19, fineweb"),
    "bad hf source": (["--source", "hf:fineweb"],
                      "bad HF source 'hf:fineweb'; expected hf:OWNER/REPO[:CONFIG][@REVISION]"),
    "hf config twice": (["--source", "hf:HuggingFaceFW/fineweb:sample-10BT", "--hf-config", "sample-100BT"],
                        "--hf-config 'sample-100BT' contradicts --source 'hf:HuggingFaceFW/fineweb:sample-10BT'"),
    "missing path": (["--source", "local:/no/such/dir"], "'/no/such/dir' does not exist"),
    "text field": (["--source", "local:{pg19}", "--text-field", "body"],
                   "--text-field 'body' is not a column of local:{pg19} (train split); columns: short_book_title"),
    "zero size": (["--source", "local:{pg19}", "--max-bytes", "0"], "--max-bytes must be > 0 bytes, got '0'"),
    "negative size": (["--source", "local:{pg19}", "--max-bytes=-3MB"], "--max-bytes '-3MB' is not a size"),
    "unparsable size": (["--source", "local:{pg19}", "--max-bytes", "ten"], "--max-bytes 'ten' is not a size"),
    "tokenizer": (["--source", "local:{pg19}", "--tokenizer", "llama"], "unknown tokenizer 'llama'; accepted: gpt2"),
    "whitespace corpus": (["--source", "local:{blank}"], "has no text: 2 documents, all empty or whitespace"),
    "split rule": (["--source", "local:{pg19}", "--split-rule", "random"], "unknown split rule 'random'"),
    "actors": (["--source", "local:{pg19}", "--actors", "-1"], "actors must be >= 0"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, pg19_dir, blank, tmp_path, capsys):
    argv, expected = BAD[case]
    fill = {"pg19": str(pg19_dir), "blank": str(blank)}
    store = tmp_path / "store"
    # --actors 0 first: a case's own --actors comes later and wins
    code = main(["prepare", "--actors", "0", *[a.format(**fill) for a in argv], "--store", str(store),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("nightshift: error: ") and expected.format(**fill) in err[0]
    assert not store.exists() or not any(store.rglob("*"))


def test_unwritable_store_is_one_line_exit_2(pg19_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["prepare", "--source", f"local:{pg19_dir}", "--store", str(tmp_path / "file" / "s"),
                 "--actors", "0", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not writable" in err[0]


def test_prepare_from_the_shell_json_then_noop(pg19_dir, tmp_path):
    exe = shutil.which("nightshift", path=str(Path(sys.executable).parent)) or "nightshift"
    cmd = [exe, "prepare", "--source", f"local:{pg19_dir}", "--max-bytes", "400KB", "--valid-bytes", "100KB",
           "--tokenizer", "bytes", "--store", str(tmp_path / "store"), "--actors", "0"]
    first = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["status"] == "prepared" and summary["tokenizer"] == "bytes"
    assert summary["splits"]["train"]["bytes"] == summary["splits"]["train"]["tokens"] == 400_000
    assert Path(summary["path"], "manifest.json").is_file()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"already prepared {summary['dataset_id']}")
    assert "train       " in second.stdout and "400KB" in second.stdout
