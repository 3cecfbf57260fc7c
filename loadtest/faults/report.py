"""The fault suite's command line and its table: case | what happened | nothing lost? | result.

``python -m loadtest.faults`` runs every case (``--case`` picks some, in the order given),
one after the other, printing each case's row as it finishes and the whole table at the end;
``--json`` prints (or with a path, writes) every finding instead. Exit status 1 if any case
failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import uvloop

from loadtest.faults import CASES, LABELS
from loadtest.faults.case import CaseResult, Knobs, run_case
from loadtest.harness import setup_logging

WIDTHS = (18, 64, 40, 6)


def _cell(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def _lost_cell(result: CaseResult) -> str:
    if result.error is not None and not result.checked:
        return "not checked (error)"
    if result.lost:
        return f"NO: {'; '.join(result.lost[:3])}" + (" …" if len(result.lost) > 3 else "")
    return "yes: " + "; ".join(result.checked) if result.checked else "not checked"


def row(result: CaseResult) -> str:
    happened = "; ".join(result.happened)
    if result.failures:
        happened += " — FAILED: " + "; ".join(result.failures)
    if result.error:
        happened += f" — ERROR: {result.error}"
    verdict = "PASS" if result.passed else "FAIL"
    label = LABELS.get(result.name, result.name)
    cells = [
        _cell(f"{label}: {result.name} ({result.seconds:.0f}s)", WIDTHS[0]),
        _cell(happened, WIDTHS[1]),
        _cell(_lost_cell(result), WIDTHS[2]),
        _cell(verdict, WIDTHS[3]),
    ]
    height = max(len(c) for c in cells)
    lines = []
    for i in range(height):
        parts = [(c[i] if i < len(c) else "").ljust(w) for c, w in zip(cells, WIDTHS, strict=True)]
        lines.append(" | ".join(parts).rstrip())
    return "\n".join(lines)


def table(results: list[CaseResult]) -> str:
    header = " | ".join(
        h.ljust(w)
        for h, w in zip(("case", "what happened", "nothing lost?", "result"), WIDTHS, strict=True)
    )
    rule = "-+-".join("-" * w for w in WIDTHS)
    body = f"\n{rule}\n".join(row(r) for r in results)
    passed = sum(r.passed for r in results)
    return f"{header.rstrip()}\n{rule}\n{body}\n\n{passed}/{len(results)} cases passed"


def parse_cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.faults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--case", action="append", choices=list(CASES), default=[], help="repeatable; default all"
    )
    parser.add_argument(
        "--short", action="store_true", help="the test suite's shorter knobs (minutes, not tens)"
    )
    parser.add_argument(
        "--json", nargs="?", const="-", default=None, help="findings as JSON (to PATH, or stdout)"
    )
    parser.add_argument("--churn-calls", type=int, default=None)
    parser.add_argument("--starve-s", type=float, default=None)
    parser.add_argument("--webhook-down-s", type=float, default=None)
    parser.add_argument("--keep", action="store_true", help="keep each case's run directory")
    parser.add_argument("--log-level", default="ERROR", help="this process's logging")
    args = parser.parse_args(argv)
    if args.churn_calls is not None and args.churn_calls < 1:
        parser.error("--churn-calls must be at least 1")
    return args


def knobs_from(args: argparse.Namespace) -> Knobs:
    knobs = Knobs.short() if args.short else Knobs()
    changes: dict[str, Any] = {"keep_dir": args.keep}
    if args.churn_calls is not None:
        changes |= {"churn_calls": args.churn_calls}
        changes |= {"churn_warmup": min(knobs.churn_warmup, max(1, args.churn_calls // 5))}
    if args.starve_s is not None:
        changes["starve_s"] = args.starve_s
    if args.webhook_down_s is not None:
        changes["webhook_down_s"] = args.webhook_down_s
    return knobs.but(**changes)


async def run(names: list[str], knobs: Knobs, *, progress: bool) -> list[CaseResult]:
    results = []
    for name in names:
        if progress:
            print(f"… {name}", file=sys.stderr, flush=True)
        result = await run_case(name, CASES[name], knobs)
        results.append(result)
        if progress:
            print(result.describe(), file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(argv)
    setup_logging(args.log_level)
    names = args.case or list(CASES)
    started = time.monotonic()
    results = uvloop.run(run(names, knobs_from(args), progress=True))
    report = {
        "knobs": knobs_from(args).__dict__,
        "elapsed_s": round(time.monotonic() - started, 1),
        "cases": [r.to_json() for r in results],
    }
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        if args.json is not None:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(table(results))
        print(f"elapsed {report['elapsed_s']} s")
    return 0 if all(r.passed for r in results) else 1
