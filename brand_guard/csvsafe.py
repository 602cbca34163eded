"""Spreadsheet-safe CSV cells: text that a spreadsheet would run as a formula is written inert.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a TAB or a CR is read as a formula (or a DDE call) by
Excel, LibreOffice and Google Sheets. Such cells get a leading single quote, the OWASP advice for CSV
injection; a cell that already begins with a quote gets one more so the change can be undone exactly
(``restore_cell``) when the studio reads its own export back. Plain numbers such as ``-3`` or ``1e-5``
are left as they are.
"""
from __future__ import annotations

import csv
import re
from typing import Any, Iterable, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` as it may go into a CSV cell; non-text values pass through unchanged."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] == "'" or (value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value)):
        return "'" + value
    return value


def restore_cell(value: str) -> str:
    """The original text of a cell written by ``safe_cell``."""
    return value[1:] if value.startswith("'") else value


def safe_row(row: dict) -> dict:
    return {key: safe_cell(value) for key, value in row.items()}


def write_rows(handle: TextIO, fieldnames: list[str], rows: Iterable[dict]) -> None:
    """A header and ``rows`` as CSV, every text cell made safe.

    Rows end in CRLF (RFC 4180), which also makes the writer quote any cell holding a bare CR, so a CR
    inside a name cannot start a new row in the reader.
    """
    writer = csv.DictWriter(handle, fieldnames=fieldnames, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(safe_row(row))
