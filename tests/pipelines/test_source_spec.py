"""`--source` forms: hub aliases, hf:OWNER/REPO[:CONFIG][@REVISION], local:PATH, fsspec URLs; one spelling each."""

from __future__ import annotations

import pytest

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.prepare import PrepareConfig
from nightshift.pipelines.source_spec import HF_FORM, canonical_source, parse_source
from nightshift.pipelines.sources import open_source


@pytest.mark.parametrize(("spec", "repo", "config", "revision"), [
    ("hf:roneneldan/TinyStories", "roneneldan/TinyStories", None, None),
    ("hf:HuggingFaceFW/fineweb:sample-10BT", "HuggingFaceFW/fineweb", "sample-10BT", None),
    ("hf:HuggingFaceFW/fineweb@v1.2.0", "HuggingFaceFW/fineweb", None, "v1.2.0"),
    ("hf:wikimedia/wikipedia:20231101.en@refs/convert/parquet", "wikimedia/wikipedia", "20231101.en",
     "refs/convert/parquet"),
    ("hf:emozilla/pg19@0123abcd", "emozilla/pg19", None, "0123abcd"),
])
def test_hf_sources_name_owner_repo_config_and_revision(spec, repo, config, revision):
    parsed = parse_source(spec)
    assert (parsed.kind, parsed.hub.repo, parsed.config, parsed.revision) == ("hf", repo, config, revision)
    assert parsed.hub.splits_from_hub and parsed.text == spec
    source = open_source(spec)  # no hub call yet: the repo is asked only when data is read
    assert (source.hub.repo, source.config, source.revision) == (repo, config, revision)


@pytest.mark.parametrize("spec", ["hf:", "hf:fineweb", "hf:/fineweb", "hf:owner/", "hf:a/b/c", "hf:a/b:",
                                  "hf:a/b@", "hf:a/b:c:d", "hf:a/b@main@dev", "hf:a b/c"])
def test_bad_hf_sources_are_one_line_naming_the_value_and_the_form(spec):
    with pytest.raises(DataError) as err:
        parse_source(spec)
    message = str(err.value)
    assert message.startswith(f"bad HF source {spec!r}; expected {HF_FORM}, e.g. hf:") and "\n" not in message


def test_urls_and_local_paths_are_sources_and_get_readable_slugs(tmp_path):
    s3 = parse_source("s3://corpora/text8.txt.gz")
    assert (s3.kind, s3.location, s3.slug) == ("url", "s3://corpora/text8.txt.gz", "s3-text8")
    assert parse_source("https://example.org/data/").slug == "https-data"
    local = parse_source(f"local:{tmp_path}/../{tmp_path.name}/x.txt")
    assert local.text == f"local:{tmp_path / 'x.txt'}" and local.slug == "local-x"
    assert parse_source("hf:HuggingFaceFW/fineweb:sample-10BT").slug == "hf-fineweb-sample-10BT"
    assert parse_source("pg19").slug == "pg19"
    with pytest.raises(DataError, match=r"unknown source 'bucket/x'; accepted: .*local:PATH, an fsspec URL"):
        parse_source("bucket/x")


def test_the_hf_flags_fold_into_the_spec_and_a_contradiction_is_refused():
    assert canonical_source("hf:a/b", "cfg", "main") == ("hf:a/b:cfg@main", None, None)
    assert canonical_source("hf:a/b:cfg", "cfg", None) == ("hf:a/b:cfg", None, None)
    assert canonical_source("fineweb", None, None) == ("fineweb", "sample-10BT", None)  # alias ids as before
    # the same data asked for two ways is one dataset (the config is the whole id payload)
    assert PrepareConfig(source="hf:a/b", config="cfg") == PrepareConfig(source="hf:a/b:cfg")
    with pytest.raises(DataError, match=r"^--hf-config 'other' contradicts --source 'hf:a/b:cfg', which names 'cfg'; "
                                        r"give it once, in the source: hf:OWNER/REPO\[:CONFIG\]\[@REVISION\]$"):
        PrepareConfig(source="hf:a/b:cfg", config="other")


def test_an_hf_source_offline_is_one_clear_line():
    """HF_HUB_OFFLINE=1 (tests/conftest.py): asking the hub which splits the repo has fails in one line."""
    source = open_source("hf:roneneldan/TinyStories:default")
    with pytest.raises(DataError) as err:
        source.check()
    assert "'roneneldan/TinyStories'" in str(err.value) and "local:PATH" in str(err.value)
    assert "\n" not in str(err.value)
