"""What a `--source` names: a hub alias, `hf:OWNER/REPO[:CONFIG][@REVISION]`, `local:PATH` or an fsspec URL.

Parsing lives apart from reading so that every command that takes `--source`
(prepare, train, sweep, demo) accepts the same forms, refuses the same bad ones
in the same words, and spells one source one way in dataset ids: a local path
is made absolute, an `hf:` source carries its config and revision in the
string (the `--hf-config` / `--revision` flags are folded into it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nightshift.pipelines.errors import DataError


@dataclass(frozen=True, slots=True)
class HubSpec:
    """A dataset repo on the HF hub and what is known of it before asking the hub."""

    repo: str
    default_config: str | None
    splits: tuple[str, ...] | None  # the source's own train/validation split names, if it has them
    mirror: str | None = None  # a parquet repo of the whole dataset, read when `repo` is a script repo (hub_exports)
    splits_from_hub: bool = False  # `hf:` sources: the split names are asked of the hub, not declared


HUB_SOURCES: dict[str, HubSpec] = {
    "pg19": HubSpec("deepmind/pg19", None, ("train", "validation"), mirror="emozilla/pg19"),
    "fineweb": HubSpec("HuggingFaceFW/fineweb", "sample-10BT", None),
    "fineweb-edu": HubSpec("HuggingFaceFW/fineweb-edu", "sample-10BT", None),
    "tinystories": HubSpec("roneneldan/TinyStories", None, ("train", "validation")),
}
HF_FORM = "hf:OWNER/REPO[:CONFIG][@REVISION]"
ACCEPTED = ", ".join([*HUB_SOURCES, HF_FORM, "local:PATH", "an fsspec URL (s3://, gs://, https://, file://...)"])
SOURCES_HELP = (f"{' | '.join(HUB_SOURCES)} | {HF_FORM} | local:PATH | an fsspec URL (s3://, gs://, https://...) "
                "of a parquet/jsonl/txt file (.gz/.bz2/.zst too) or a folder of them")

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_HF = re.compile(rf"hf:(?P<repo>{_NAME}/{_NAME})(?::(?P<config>[A-Za-z0-9][A-Za-z0-9._+-]*))?"
                 r"(?:@(?P<revision>[A-Za-z0-9][A-Za-z0-9._/-]*))?")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A parsed `--source`; `text` is its one canonical spelling (what dataset ids and manifests record)."""

    kind: str  # alias | hf | local | url
    text: str
    hub: HubSpec | None = None
    config: str | None = None  # hf: the HF config named in the spec
    revision: str | None = None  # hf: the revision named in the spec
    location: str | None = None  # local: an absolute path; url: the URL

    @property
    def slug(self) -> str:
        """The readable start of a dataset id: `pg19`, `hf-fineweb-sample-10bt`, `local-pg19`, `s3-text8`."""
        if self.kind == "local":
            return "local-" + (_stem(Path(self.location).name) or "data")
        if self.kind == "url":
            scheme, _, rest = self.location.partition("://")
            return f"{scheme}-{_stem(PurePosixPath(rest.rstrip('/')).name) or 'data'}"
        if self.kind == "hf":
            return "hf-" + "-".join(filter(None, (self.hub.repo.split("/")[1], self.config)))
        return self.text


def _stem(name: str) -> str:
    """`text8.txt.gz` -> `text8`, `pg19` -> `pg19` (Path.stem after the compression suffix)."""
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    return PurePosixPath(name).stem


def _parse_hf(spec: str) -> SourceSpec:
    match = _HF.fullmatch(spec)
    if match is None:
        raise DataError(f"bad HF source {spec!r}; expected {HF_FORM}, e.g. hf:HuggingFaceFW/fineweb:sample-10BT "
                        "or hf:roneneldan/TinyStories@main")
    repo, config, revision = match["repo"], match["config"], match["revision"]
    return SourceSpec("hf", spec, hub=HubSpec(repo, None, None, splits_from_hub=True), config=config,
                      revision=revision)


def _parse_local(spec: str) -> SourceSpec:
    path = spec[len("local:"):]
    if not path:
        raise DataError(f"bad local source {spec!r}; expected local:PATH (a file or a folder)")
    absolute = str(Path(path).expanduser().resolve())
    return SourceSpec("local", f"local:{absolute}", location=absolute)


def _parse_url(spec: str) -> SourceSpec:
    return SourceSpec("url", spec, location=spec)


_PREFIXES: dict[str, Callable[[str], SourceSpec]] = {"hf:": _parse_hf, "local:": _parse_local}


def parse_source(spec: str) -> SourceSpec:
    """A `--source` string -> what it names; anything else is a one-line `DataError` listing the accepted forms."""
    if spec in HUB_SOURCES:
        return SourceSpec("alias", spec, hub=HUB_SOURCES[spec])
    for prefix, parse in _PREFIXES.items():
        if spec.startswith(prefix):
            return parse(spec)
    if _URL.match(spec):
        return _parse_url(spec)
    raise DataError(f"unknown source {spec!r}; accepted: {ACCEPTED}")


def hf_text(repo: str, config: str | None, revision: str | None) -> str:
    return f"hf:{repo}" + (f":{config}" if config else "") + (f"@{revision}" if revision else "")


def canonical_source(spec: str, config: str | None, revision: str | None) -> tuple[str, str | None, str | None]:
    """(source, HF config, revision) spelled one way: the same data asked for two ways is one dataset id.

    An `hf:` source takes the flags into its string (and refuses a flag that
    contradicts it); an alias keeps its default config in the config field
    (how ids were made before `hf:` existed, so existing datasets keep theirs).
    """
    parsed = parse_source(spec)
    if parsed.kind == "alias":
        return parsed.text, config or parsed.hub.default_config, revision
    if parsed.kind != "hf":
        return parsed.text, config, revision
    for flag, given, in_spec in (("--hf-config", config, parsed.config), ("--revision", revision, parsed.revision)):
        if given is not None and in_spec is not None and given != in_spec:
            raise DataError(f"{flag} {given!r} contradicts --source {spec!r}, which names {in_spec!r}; "
                            f"give it once, in the source: {HF_FORM}")
    return hf_text(parsed.hub.repo, parsed.config or config, parsed.revision or revision), None, None
