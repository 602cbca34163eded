"""Tracing a leaked picture back to its design: read the mark, find the design in this studio, and
check that the studio's signed record of that design still verifies."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy import select

from ..errors import InvalidRequest
from ..store import Design, Store


@dataclass
class Trace:
    """One file's answer. ``status``: traced | no mark found | not from this studio."""

    file: str
    status: str
    source: str = ""
    design_id: int | None = None
    uid: str = ""
    created_by: str = ""
    created_at: str = ""
    model: str = ""
    kind: str = ""
    prompt: str = ""
    signature: str = ""
    signature_reason: str = ""
    sync_z: float = 0.0

    @property
    def traced(self) -> bool:
        return self.status == "traced"

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        if not self.traced:
            return f"{self.file}: {self.status}"
        return (f"{self.file}: design {self.design_id} uid {self.uid} by {self.created_by or '?'} at {self.created_at} "
                f"model {self.model or '?'} signature {self.signature}")


class TraceService:
    """Given the store and the studio's file verifier; holds no state of its own."""

    def __init__(self, store: Store, verify_file: Callable[[Path], object]):
        self.store = store
        self.verify_file = verify_file

    def _design_for(self, payload: str) -> Design | None:
        from brand_guard.watermark import payload_for

        with self.store.sessions() as s:
            for design_id, uid in s.execute(select(Design.id, Design.uid).where(Design.uid.is_not(None))):
                if payload_for(uid) == payload:
                    return s.get(Design, design_id)
        return None

    def trace(self, path: str | Path) -> Trace:
        from brand_guard.trace import TraceInputError, find_marks, first_payload

        path = Path(path)
        try:
            findings = find_marks(path)
        except TraceInputError as exc:
            raise InvalidRequest(str(exc)) from None
        hit = first_payload(findings)
        if hit is None:
            best = max((f.sync_z for f in findings), default=0.0)
            return Trace(file=str(path), status="no mark found", sync_z=round(best, 2))
        design = self._design_for(hit.payload)
        if design is None:
            return Trace(file=str(path), status="not from this studio", source=hit.source, sync_z=round(hit.sync_z, 2))
        checked = self.verify_file(self.store.file_path(design))
        return Trace(
            file=str(path), status="traced", source=hit.source, design_id=design.id, uid=design.uid or "",
            created_by=design.created_by, created_at=design.created_at.isoformat(timespec="seconds"),
            model=design.model, kind=design.kind, prompt=design.prompt,
            signature=getattr(checked, "status", "unknown"), signature_reason=getattr(checked, "reason", ""),
            sync_z=round(hit.sync_z, 2),
        )
