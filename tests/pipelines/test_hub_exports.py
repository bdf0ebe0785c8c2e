"""pg19 resolves to a whole parquet copy: the hub's export when it is whole, else the named mirror.

The hub is unreachable from the tests, so its file listing is the one thing faked here (it is a
function argument of the resolution); everything that reads the listing is the real code.
"""

from __future__ import annotations

import logging

import pytest

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.hub_exports import PARQUET_BRANCH, HubLocation, export_problem, whole_parquet
from nightshift.pipelines.sources import open_source

WHOLE = ["default/train/0000.parquet", "default/train/0001.parquet", "default/validation/0000.parquet",
         "default/test/0000.parquet", ".gitattributes"]
PARTIAL = ["default/partial-train/0000.parquet", "default/partial-train/0001.parquet",
           "default/validation/0000.parquet", "default/partial-test/0000.parquet"]


def listing(files):
    calls = []

    def list_files(repo, revision):
        calls.append((repo, revision))
        return files

    list_files.calls = calls
    return list_files


@pytest.mark.parametrize(("files", "problem"), [
    (WHOLE, None),
    (PARTIAL, "is partial (partial-test/, partial-train/)"),
    (None, "does not exist"),
    (["default/validation/0000.parquet"], "has no train split under default/"),
    (["other/train/0000.parquet", "other/validation/0000.parquet"], "has no train, validation split under default/"),
])
def test_the_export_stands_for_the_dataset_only_when_every_split_is_whole(files, problem):
    assert export_problem(files, None, ("train", "validation")) == problem


def test_pg19_reads_a_whole_export_from_the_hub(caplog):
    source = open_source("pg19")
    source.list_hub_files = listing(WHOLE)
    with caplog.at_level(logging.INFO, logger="nightshift.pipelines.hub_exports"):
        assert source.fingerprint() == {"repo": "deepmind/pg19", "config": None, "revision": PARQUET_BRANCH}
    assert source.list_hub_files.calls == [("deepmind/pg19", PARQUET_BRANCH)]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(("files", "said"), [
    (PARTIAL, "deepmind/pg19: the hub's parquet export is partial (partial-test/, partial-train/); "
              "reading the parquet mirror emozilla/pg19 instead"),
    (None, "deepmind/pg19: the hub's parquet export does not exist; reading the parquet mirror emozilla/pg19 instead"),
])
def test_pg19_falls_back_to_the_mirror_and_says_so_in_one_line(files, said, caplog):
    source = open_source("pg19")
    source.list_hub_files = listing(files)
    with caplog.at_level(logging.WARNING, logger="nightshift.pipelines.hub_exports"):
        assert source.fingerprint() == {"repo": "emozilla/pg19", "config": None, "revision": None}
        source.fingerprint()  # resolved once per source
    assert [r.getMessage() for r in caplog.records] == [said]
    assert source.list_hub_files.calls == [("deepmind/pg19", PARQUET_BRANCH)]


def test_a_pinned_revision_or_an_alias_without_a_mirror_is_read_as_named():
    pinned = open_source("pg19", revision="refs/pr/3")
    pinned.list_hub_files = listing(PARTIAL)
    assert pinned.hub_location() == HubLocation("deepmind/pg19", "refs/pr/3") and not pinned.list_hub_files.calls
    fineweb = open_source("fineweb")
    assert fineweb.fingerprint() == {"repo": "HuggingFaceFW/fineweb", "config": "sample-10BT", "revision": None}
    assert whole_parquet("a/b", "c/d", "cfg", ("train",), listing(["cfg/train/0.parquet"])) == \
        HubLocation("a/b", PARQUET_BRANCH)


def test_the_real_listing_offline_is_one_clear_line():
    """HF_HUB_OFFLINE=1 (tests/conftest.py): the real listing is reached and fails in one line."""
    with pytest.raises(DataError) as err:
        open_source("pg19").fingerprint()
    message = str(err.value)
    assert message.startswith("cannot list 'deepmind/pg19' at 'refs/convert/parquet' on the HF hub: ")
    assert "--source local:PATH" in message and "\n" not in message
