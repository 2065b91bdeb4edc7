"""docs/contract.md, the AsyncAPI document and the notify_contract package say the same thing.

A code, path, default or rule changed in one of them and not in the others fails here. The
AsyncAPI document is validated twice: by the specification's models (pydantic-asyncapi, from
PyPI) and by the official AsyncAPI 3.0.0 JSON Schema (the `@asyncapi/specs` package, fetched with
npm into a cache outside the repository; no copy of it is committed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from pydantic import ValidationError
from pydantic_asyncapi import AsyncAPI

from notify_contract import codes, protocol, settings
from notify_contract.document import asyncapi
from notify_contract.rules import RULES, Level

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "contract.md"
SPECS_PACKAGE = "@asyncapi/specs@6.11.1"
SPECS_MEMBER = "package/schemas/3.0.0-without-$id.json"


def section(number: int) -> str:
    text = CONTRACT.read_text()
    match = re.search(rf"^## {number}\. .*?(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"docs/contract.md has no section {number}"
    return match.group(0)


def table(number: int) -> list[list[str]]:
    """The rows of the first table in section `number`, cells stripped of backticks."""
    rows = []
    for line in section(number).splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([c.strip().strip("`") for c in line.strip("|").split("|")])
    return rows[1:]  # without the header


def test_the_endpoint_table_is_the_package() -> None:
    assert [(m, p) for m, p, _ in table(1)] == list(protocol.ENDPOINTS)


def test_the_frame_table_is_the_package() -> None:
    assert [row[0] for row in table(3)] == [t.value for t in protocol.SERVER_FRAME_TYPES]


def test_the_close_code_table_is_the_package() -> None:
    documented = [(int(code), name, reconnect) for code, name, _, reconnect in table(6)]
    assert documented == [(r.code, r.name, r.reconnect.value) for r in codes.CLOSE_RULES]


def test_the_settings_table_is_the_package() -> None:
    documented = {}
    for variable, default, _ in table(10):
        for name in variable.replace("`", "").split(", "):
            documented[name] = None if default.startswith("(") else default
    assert documented == settings.SETTINGS
    for name, value in settings.DEFAULTS.by_env().items():
        assert float(documented[name] or "nan") == value, name


def test_the_numbered_rules_are_the_package() -> None:
    found = re.findall(r"^- \*\*(\d+\.\d+)\*\* (MUST|SHOULD)\b", CONTRACT.read_text(), flags=re.M)
    assert [(i, Level(level)) for i, level in found] == [(r.id, r.level) for r in RULES.values()]
    for rule in RULES.values():
        assert rule.id.startswith(f"{rule.section}."), rule


def test_asyncapi_channels_are_the_package_paths() -> None:
    doc = asyncapi()
    addresses = {name: channel["address"] for name, channel in doc["channels"].items()}
    assert addresses == {
        "notifications": protocol.WS_NOTIFICATIONS_PATH,
        "tasks": protocol.WS_TASKS_PATH,
        "sseNotifications": protocol.SSE_NOTIFICATIONS_PATH,
        "sseTasks": protocol.SSE_TASKS_PATH,
    }
    for name in ("notifications", "tasks"):
        params = doc["channels"][name]["bindings"]["ws"]["query"]["properties"]
        assert set(params) == {protocol.TOKEN_PARAM, protocol.LAST_ID_PARAM}


def test_asyncapi_has_one_message_per_frame_type() -> None:
    messages = asyncapi()["components"]["messages"]
    ws_messages = {m["name"] for key, m in messages.items() if not key.startswith("sse")}
    assert ws_messages == {t.value for t in protocol.FrameType}
    for frame_type in protocol.FrameType:
        payload = messages[frame_type.value]["payload"]["$ref"]
        assert payload == f"#/components/schemas/{frame_type.value}Frame"


def test_asyncapi_close_codes_and_limits_are_the_package() -> None:
    doc = asyncapi()
    assert [(c["code"], c["name"], c["reconnect"]) for c in doc["x-close-codes"]] == [
        (r.code, r.name, r.reconnect.value) for r in codes.CLOSE_RULES
    ]
    assert doc["x-limits"] == settings.DEFAULTS.by_env()


def test_the_document_is_an_asyncapi_3_document_by_the_specification_models() -> None:
    broken = json.loads(json.dumps(asyncapi()))
    del broken["info"]["title"]
    with pytest.raises(ValidationError):
        AsyncAPI.model_validate(broken)
    model = AsyncAPI.model_validate(asyncapi()).root
    assert model.asyncapi == "3.0.0"
    assert set(model.channels or {}) == {"notifications", "tasks", "sseNotifications", "sseTasks"}


def official_schema(cache: Path) -> dict[str, Any]:
    """The official AsyncAPI 3.0.0 JSON Schema from the npm package that publishes it."""
    cache.mkdir(parents=True, exist_ok=True)
    tarballs = sorted(cache.glob("asyncapi-specs-*.tgz"))
    if not tarballs:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm is needed to fetch the official AsyncAPI JSON Schema "
                f"({SPECS_PACKAGE}); install it (apt-get install npm) or put the tarball "
                f"in {cache}"
            )
        subprocess.run(
            [npm, "pack", SPECS_PACKAGE, "--pack-destination", str(cache)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        tarballs = sorted(cache.glob("asyncapi-specs-*.tgz"))
    with tarfile.open(tarballs[-1]) as tar:
        member = tar.extractfile(SPECS_MEMBER)
        assert member is not None, f"{tarballs[-1]} has no {SPECS_MEMBER}"
        schema: dict[str, Any] = json.load(member)
    return schema


@pytest.fixture(scope="module")
def specification() -> Draft7Validator:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    schema = official_schema(base / "ws-notify-harness" / "asyncapi-specs")
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_the_document_passes_the_official_json_schema(specification: Draft7Validator) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in specification.iter_errors(asyncapi())
    ]
    assert errors == []


def test_the_official_json_schema_catches_a_broken_document(
    specification: Draft7Validator,
) -> None:
    broken = json.loads(json.dumps(asyncapi()))
    broken["channels"]["notifications"]["bindings"]["ws"]["method"] = "PUT"
    del broken["info"]
    assert len(list(specification.iter_errors(broken))) >= 2


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_markdown_links_stay_inside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "docs/contract.md" in tracked
    broken = []
    for name in tracked:
        page = ROOT / name
        for target in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue  # a URL, not a file
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{name}: {target}")
    assert broken == []
