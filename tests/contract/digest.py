"""The published API's endpoints and query parameters, parsed from the spec digest
(docs/procore-oas.md, a copy of the shared digest of Procore's OpenAPI spec).

Only what the digest states: each ``- **GET `path`**`` line, the aliases it names in prose
(``(v1.1 `...`: same parameters and schema)``), and the parameter groups on the lines below it
(``required:``, ``paging:``, ``filters:``, ``other:``, or ``parameters: same as `X` minus ...``).
Path templates compare with their variable names erased (``{project_id}`` = ``{id}`` = ``{}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DIGEST = Path(__file__).resolve().parents[2] / "docs" / "procore-oas.md"

_ENDPOINT = re.compile(r"^- \*\*GET `(?P<path>/rest/[^`]+)`\*\*(?P<rest>.*)$")
_ALIAS = re.compile(r"`(/rest/v\d+\.\d+/[^`]+)`")
_SAME_AS = re.compile(r"^parameters: same as `(?P<other>[^`]+)`(?: minus (?P<minus>.*))?$")
_VERSION = re.compile(r"^/rest/v\d+\.\d+")


@dataclass
class Endpoint:
    path: str
    required: set[str] = field(default_factory=set)
    params: set[str] = field(default_factory=set)  # every documented query parameter, required ones too
    paged: bool = False  # declares page/per_page (or page_size/page_start)
    headers: bool = False  # the 200 answer declares Total, Per-Page and Link


def normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.split("?", 1)[0])


def parse(text: str | None = None) -> dict[str, Endpoint]:
    """Normalised path -> its documented parameters."""
    lines = (text if text is not None else DIGEST.read_text()).splitlines()
    found: dict[str, Endpoint] = {}
    current: list[Endpoint] = []
    for line in lines:
        match = _ENDPOINT.match(line)
        if match:
            main = Endpoint(match["path"])
            current = [main, *[Endpoint(_expand(alias, main.path)) for alias in _ALIAS.findall(match["rest"])
                               if "same parameters" in match["rest"] or "same schema" in match["rest"]
                               or "identical parameters" in match["rest"]]]
            for endpoint in current:
                found.setdefault(normalise(endpoint.path), endpoint)
            continue
        if not line.startswith("  - ") or not current:
            if not line.startswith("    "):
                current = [] if line.startswith(("- ", "#")) else current
            continue
        body = line[4:].strip()
        same = _SAME_AS.match(body)
        if same:
            _copy(found[normalise(same["other"])], current, same["minus"])
        elif re.match(r"^(required|paging|filters|other):", body):
            for endpoint in current:
                _read_groups(endpoint, body)
    return found


def _expand(alias: str, main: str) -> str:
    if "..." not in alias:
        return alias
    version = _VERSION.match(alias)
    assert version is not None
    return version.group(0) + _VERSION.sub("", main)


def _copy(source: Endpoint, targets: list[Endpoint], minus: str | None) -> None:
    removed = {_name(token) for token in (minus or "").split(", ") if token}
    for endpoint in targets:
        endpoint.required |= source.required - removed
        endpoint.params |= source.params - removed
        endpoint.paged, endpoint.headers = source.paged, source.headers


def _read_groups(endpoint: Endpoint, body: str) -> None:
    for group in body.split("; "):
        label, _, content = group.partition(": ")
        if "(+headers)" in content:
            endpoint.headers = True
        names = [_name(token) for token in content.replace("(+headers)", "").split(", ")]
        names = [n for n in names if n and " " not in n]
        endpoint.params.update(names)
        if label == "required":
            endpoint.required.update(names)
        if label == "paging" and names:
            endpoint.paged = True


def _name(token: str) -> str:
    token = token.replace("**", "").strip()
    name, colon, _type = token.partition(":")
    return name.strip() if colon else ""
