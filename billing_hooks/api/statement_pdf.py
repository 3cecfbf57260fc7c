"""A monthly statement as a PDF a family can save or print (reportlab's platypus): the
balances, then every deposit, call, refund and credit, then the totals; dollars from the
statement's integer cents (:func:`billing_hooks.api.statement.dollars`), so its totals are the
ledger's to the cent."""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import letter  # type: ignore[import-untyped]
from reportlab.lib.styles import getSampleStyleSheet  # type: ignore[import-untyped]
from reportlab.lib.units import inch  # type: ignore[import-untyped]
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle  # type: ignore[import-untyped]

from billing_hooks.api.statement import Statement, dollars

_GRID = TableStyle(
    [
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("FONTSIZE", (0, 0), (-1, -1), 8.5),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.HexColor("#7a8ca3")),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f8fa")]),
        ("ALIGN", (-1, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
)


def minutes(seconds: int) -> str:
    """``754`` -> ``12:34`` (minutes:seconds)."""
    return f"{seconds // 60}:{seconds % 60:02d}"


def when(local_iso: str) -> str:
    """A statement line's ISO local time as people read it: ``2026-12-06 21:04``."""
    return local_iso[:16].replace("T", " ")


def _table(header: list[str], rows: list[list[Any]], widths: list[float]) -> Table:
    table = Table([header, *rows], colWidths=widths, repeatRows=1)
    table.setStyle(_GRID)
    return table


def render(statement: Statement) -> bytes:
    styles = getSampleStyleSheet()
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=letter,
        title=f"Statement {statement.month}",
        author="AdvanceConnect",
        leftMargin=0.7 * inch,
        rightMargin=0.7 * inch,
        topMargin=0.7 * inch,
        bottomMargin=0.7 * inch,
    )
    totals = statement.totals
    story: list[Any] = [
        Paragraph(f"AdvanceConnect statement — {statement.month}", styles["Title"]),
        Paragraph(
            f"{statement.name} (account {statement.family_id}) · times in {statement.timezone} · "
            "amounts in US dollars",
            styles["Normal"],
        ),
        Spacer(1, 10),
        _table(
            ["Opening balance", "Deposits", "Charges", "Refunds", "Credits", "Closing balance"],
            [
                [
                    dollars(statement.opening_balance_cents),
                    dollars(totals["deposits_cents"]),
                    dollars(totals["charges_cents"]),
                    dollars(totals["refunds_cents"]),
                    dollars(totals["credits_cents"]),
                    dollars(statement.closing_balance_cents),
                ]
            ],
            [1.2 * inch, 1.0 * inch, 1.0 * inch, 1.0 * inch, 1.0 * inch, 1.2 * inch],
        ),
        Spacer(1, 14),
        Paragraph("Deposits", styles["Heading3"]),
    ]
    deposits = [
        [when(d["date"]), d["description"], dollars(d["amount_cents"])] for d in statement.deposits
    ]
    story.append(
        _table(
            ["Date", "Description", "Amount"],
            deposits or [["—", "No deposits", ""]],
            [2.2 * inch, 3.3 * inch, 1.4 * inch],
        )
    )
    story += [Spacer(1, 14), Paragraph("Calls", styles["Heading3"])]
    calls = [
        [
            when(c["date"]),
            c["resident"]["name"],
            c["facility"]["name"],
            minutes(c["duration_s"]),
            minutes(c["agency_seconds"]),
            dollars(c["charged_cents"]),
        ]
        for c in statement.calls
    ]
    story.append(
        _table(
            ["Date", "Resident", "Facility", "Duration", "Agency paid", "Charged"],
            calls or [["—", "No calls", "", "", "", ""]],
            [1.7 * inch, 1.4 * inch, 1.3 * inch, 0.8 * inch, 0.9 * inch, 0.8 * inch],
        )
    )
    others = [
        [when(r["date"]), r["description"], dollars(-r["amount_cents"])] for r in statement.refunds
    ] + [[when(c["date"]), c["description"], dollars(c["amount_cents"])] for c in statement.credits]
    story += [Spacer(1, 14), Paragraph("Refunds and credits", styles["Heading3"])]
    story.append(
        _table(
            ["Date", "Description", "Amount"],
            others or [["—", "None", ""]],
            [2.2 * inch, 3.3 * inch, 1.4 * inch],
        )
    )
    story += [
        Spacer(1, 14),
        Paragraph("Totals", styles["Heading3"]),
        _table(
            ["Calls", "Talk time", "Agency paid", "Charged to you", "Closing balance"],
            [
                [
                    str(totals["calls"]),
                    minutes(totals["duration_s"]),
                    minutes(totals["agency_seconds"]),
                    dollars(totals["charges_cents"]),
                    dollars(statement.closing_balance_cents),
                ]
            ],
            [0.8 * inch, 1.2 * inch, 1.2 * inch, 1.4 * inch, 1.4 * inch],
        ),
        Spacer(1, 10),
        Paragraph(
            "No fees are charged on deposits or calls. Minutes paid by the agency are not "
            "charged to you.",
            styles["Italic"],
        ),
    ]
    doc.build(story)
    return out.getvalue()
