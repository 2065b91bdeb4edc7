"""The suite's report: index.json (for machines), junit.xml (for CI), index.html (for people)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract_tests.runner import CaseResult, RunResult
from notify_contract.verdicts import Verdict
from notify_reports.render import render

PACKAGES = ("ws-notify-harness", "websockets", "httpx", "jsonschema", "pyjwt", "hypothesis")
SHOWN = (Verdict.FAIL, Verdict.NON_STRICT)


def _case(r: CaseResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.case.id,
        "clause": r.case.clause,
        "level": r.case.level.value,
        "title": r.case.title,
        "verdict": r.verdict.value,
        "reason": r.reason,
        "duration_s": r.duration,
        "close_codes": r.close_codes,
        "notes": r.notes,
    }
    if r.verdict in SHOWN:
        out["transcript"] = [asdict(e) for e in r.transcript]
    return out


def to_json(runs: list[RunResult], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "failed": any(run.failed for run in runs),
        "fix_first": [asdict(g) for g in fix_first(runs)],
        "runs": [
            {
                "label": run.target.label,
                "target": run.target.base,
                "driver": run.driver,
                "started": datetime.fromtimestamp(run.started_at, UTC).isoformat(),
                "duration_s": run.duration,
                "failed": run.failed,
                "counts": {v.value: run.count(v) for v in Verdict},
                "cases": [_case(r) for r in run.results],
            }
            for run in runs
        ],
    }


def to_junit(runs: list[RunResult]) -> ET.ElementTree[ET.Element]:
    root = ET.Element("testsuites", name="notification contract")
    for run in runs:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"contract {run.target.label}",
            tests=str(len(run.results)),
            failures=str(run.count(Verdict.FAIL)),
            skipped=str(run.count(Verdict.NOT_RUN) + run.count(Verdict.NOT_APPLICABLE)),
            time=f"{run.duration:.3f}",
        )
        for r in run.results:
            tc = ET.SubElement(
                suite,
                "testcase",
                classname=f"{run.target.label}.clause-{r.case.clause}",
                name=r.case.id,
                time=f"{r.duration:.3f}",
            )
            if r.verdict is Verdict.FAIL:
                failure = ET.SubElement(tc, "failure", message=r.reason[:1000], type="MUST")
                failure.text = transcript_text(r)
            elif r.verdict is Verdict.NOT_RUN:
                ET.SubElement(tc, "skipped", message=r.reason[:1000])
            elif r.verdict is Verdict.NOT_APPLICABLE:
                ET.SubElement(tc, "skipped", message=f"not applicable: {r.reason}"[:1000])
            elif r.verdict is Verdict.NON_STRICT:
                ET.SubElement(tc, "system-out").text = f"non-strict (SHOULD missed): {r.reason}"
    ET.indent(root)
    return ET.ElementTree(root)


def transcript_text(r: CaseResult) -> str:
    return "\n".join(f"{e.at:8.3f}s {e.stream:<10} {e.direction:<8} {e.text}" for e in r.transcript)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
_RUN_NAME = re.compile(r"ct-[0-9a-f]{6}-[\w-]+-\d+")


# Observations that name their cause whatever case saw them: the case's own wording around
# them ("no token: ...", "alg none: ...") is not part of the cause.
_CAUSES = (
    (
        re.compile(r"(?:handshake refused with|rejected WebSocket connection:) HTTP (\d{3})"),
        "the handshake was refused with HTTP {}",
    ),
    (re.compile(r"a stream closed unexpectedly: (\d{4})"), "a stream closed unexpectedly: {}"),
)


def check_of(reason: str) -> str:
    """A failure's cause: a known observation (a handshake refused with an HTTP status, a
    stream closed with a code) whatever case saw it, or else the reason with its particulars
    (names, ids, numbers) taken out, so that one broken check is one group."""
    for pattern, cause in _CAUSES:
        seen = pattern.search(reason)
        if seen:
            return cause.format(*seen.groups())
    shaped = _RUN_NAME.sub("<user>", reason)
    shaped = _QUOTED.sub("'…'", shaped)
    return _NUMBER.sub("N", shaped)


@dataclass(frozen=True)
class FixGroup:
    """Failures that share their first failing check, largest first: what to fix first."""

    check: str
    example: str
    cases: tuple[str, ...]  # "label:case-id"


def fix_first(runs: list[RunResult]) -> list[FixGroup]:
    groups: dict[str, list[CaseResult]] = {}
    labels: dict[int, str] = {}
    for run in runs:
        for r in run.results:
            if r.verdict is Verdict.FAIL:
                groups.setdefault(check_of(r.reason), []).append(r)
                labels[id(r)] = run.target.label
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    return [
        FixGroup(check, rs[0].reason, tuple(f"{labels[id(r)]}:{r.case.id}" for r in rs))
        for check, rs in ordered
    ]


def fix_first_text(runs: list[RunResult], shown: int = 5) -> str:
    """The terminal's "fix first" block."""
    groups = fix_first(runs)
    if not groups:
        return "fix first: nothing failed"
    lines = ["fix first (failures grouped by their first failing check, largest first):"]
    for n, g in enumerate(groups[:shown], 1):
        names = ", ".join(g.cases[:6]) + (
            f" and {len(g.cases) - 6} more" if len(g.cases) > 6 else ""
        )
        lines.append(f"  {n}. {len(g.cases)} case(s): {g.example[:240]}")
        lines.append(f"     {names}")
    if len(groups) > shown:
        lines.append(f"  ... and {len(groups) - shown} more group(s) in the report")
    return "\n".join(lines)


def to_html(runs: list[RunResult], meta: dict[str, Any]) -> str:
    return render(
        "contract_tests",
        "report.html",
        runs=runs,
        meta=meta,
        meta_json=json.dumps(meta, indent=2),
        failed=any(run.failed for run in runs),
        verdicts=list(Verdict),
        groups=fix_first(runs),
        shown=SHOWN,
    )


def write(directory: Path, runs: list[RunResult], meta: dict[str, Any]) -> Path:
    """Write the three files into `directory` (created); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.json").write_text(json.dumps(to_json(runs, meta), indent=2) + "\n")
    to_junit(runs).write(directory / "junit.xml", encoding="utf-8", xml_declaration=True)
    (directory / "index.html").write_text(to_html(runs, meta))
    return directory
