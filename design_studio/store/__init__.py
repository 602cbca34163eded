"""The design store: projects and designs in SQL, their files content-addressed on disk."""
from __future__ import annotations

from pathlib import Path

from datetime import datetime

from sqlalchemy import delete, func, or_, select

from ..errors import InvalidRequest, NotFound
from .db import make_engine, make_session_factory, transaction
from .files import FileStore, atomic_write
from .migrations import migrate
from .models import STATUS_TRANSITIONS, Base, Decision, Design, Project, ShortlistEntry, User

DEFAULT_PROJECT = "Inbox"



def _check_transition(design_id: int, design: Design | None, new_status: str) -> None:
    if design is None:
        raise NotFound(f"design {design_id} does not exist")
    allowed = STATUS_TRANSITIONS.get(design.status, set())
    if new_status not in allowed:
        hint = f"it can become {', '.join(sorted(allowed))}" if allowed else "its review is closed"
        raise InvalidRequest(f"design {design_id} is {design.status}; it cannot become {new_status} ({hint})")

def _record_review(s, design_id, action, new_status, actor, role, comment, shortlist_note) -> Decision:
    design = s.get(Design, int(design_id))
    _check_transition(design_id, design, new_status)
    design.status = new_status
    if shortlist_note is not None:
        entry = s.scalar(select(ShortlistEntry).where(ShortlistEntry.design_id == design.id))
        if entry is None:
            s.add(ShortlistEntry(design_id=design.id, added_by=actor, note=shortlist_note))
        else:
            entry.added_by, entry.note = actor, shortlist_note
    decision = Decision(design_id=design.id, action=action, comment=comment, actor=actor, role=role)
    s.add(decision)
    s.flush()
    return decision


class Store:
    """Repositories over one database plus the file store; every method is one transaction."""

    def __init__(self, url: str, files_root: Path):
        self.engine = make_engine(url)
        self.schema_version = migrate(self.engine)
        self.sessions = make_session_factory(self.engine)
        self.files = FileStore(files_root)

    # Projects
    def project(self, name: str | None = None, brief: str = "") -> Project:
        """The project called ``name`` (created if new); the default inbox when no name is given."""
        name = (name or DEFAULT_PROJECT).strip() or DEFAULT_PROJECT
        with transaction(self.sessions) as s:
            found = s.scalar(select(Project).where(Project.name == name))
            if found is None:
                found = Project(name=name, brief=brief)
                s.add(found)
                s.flush()
            return found

    def projects(self) -> list[Project]:
        with self.sessions() as s:
            return list(s.scalars(select(Project).order_by(Project.name)))

    # Designs
    def add_design(self, **fields) -> Design:
        """Insert one design; its file must already be complete in the file store."""
        with transaction(self.sessions) as s:
            design = Design(**fields)
            s.add(design)
            s.flush()
            return design

    def add_designs(self, rows: list[dict]) -> list[Design]:
        with transaction(self.sessions) as s:
            designs = [Design(**row) for row in rows]
            s.add_all(designs)
            s.flush()
            return designs

    def design(self, design_id: int) -> Design:
        with self.sessions() as s:
            found = s.get(Design, int(design_id))
            if found is None:
                raise NotFound(f"design {design_id} does not exist")
            return found

    def designs(self, *, project_id: int | None = None, kind: str | None = None, text: str | None = None,
                limit: int = 200) -> list[Design]:
        """Newest first (the common filters of ``search_designs``)."""
        return self.search_designs(project_id=project_id, kind=kind, text=text, limit=limit)

    def children(self, design_id: int) -> list[Design]:
        with self.sessions() as s:
            return list(s.scalars(select(Design).where(Design.parent_id == design_id).order_by(Design.id)))

    def lineage(self, design_id: int) -> list[Design]:
        """The chain of designs from the root ancestor down to ``design_id``."""
        chain, seen = [], set()
        current: int | None = int(design_id)
        with self.sessions() as s:
            while current is not None and current not in seen:
                seen.add(current)
                found = s.get(Design, current)
                if found is None:
                    raise NotFound(f"design {current} does not exist")
                chain.append(found)
                current = found.parent_id
        return chain[::-1]

    def file_path(self, design: Design) -> Path:
        return self.files.path(design.file)

    # ------------------------------------------------------------------ team: users
    def add_user(self, name: str, role: str, password_hash: str) -> User:
        with transaction(self.sessions) as s:
            if s.scalar(select(User).where(User.name == name)) is not None:
                raise InvalidRequest(f"user {name!r} already exists; remove it first or choose another name")
            user = User(name=name, role=role, password_hash=password_hash)
            s.add(user)
            s.flush()
            return user

    def user(self, name: str) -> User | None:
        with self.sessions() as s:
            return s.scalar(select(User).where(User.name == name))

    def users(self) -> list[User]:
        with self.sessions() as s:
            return list(s.scalars(select(User).order_by(User.name)))

    def user_count(self) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count(User.id))) or 0)

    def remove_user(self, name: str) -> None:
        with transaction(self.sessions) as s:
            if s.execute(delete(User).where(User.name == name)).rowcount == 0:
                raise NotFound(f"user {name!r} does not exist")

    # ------------------------------------------------------------------ team: projects and history
    def create_project(self, name: str, brief: str = "") -> Project:
        """A new project; an existing name is refused (use ``update_brief`` to change a brief)."""
        with transaction(self.sessions) as s:
            if s.scalar(select(Project).where(Project.name == name)) is not None:
                raise InvalidRequest(f"project {name!r} already exists")
            project = Project(name=name, brief=brief)
            s.add(project)
            s.flush()
            return project

    def find_project(self, name: str) -> Project:
        with self.sessions() as s:
            found = s.scalar(select(Project).where(Project.name == name))
            if found is None:
                raise NotFound(f"project {name!r} does not exist")
            return found

    def update_brief(self, name: str, brief: str) -> Project:
        with transaction(self.sessions) as s:
            found = s.scalar(select(Project).where(Project.name == name))
            if found is None:
                raise NotFound(f"project {name!r} does not exist")
            found.brief = brief
            return found

    def search_designs(self, *, project_id: int | None = None, kind: str | None = None, status: str | None = None,
                       text: str | None = None, since: datetime | None = None, until: datetime | None = None,
                       limit: int = 200) -> list[Design]:
        """Newest first; ``text`` matches the prompt case-insensitively; ``since``/``until`` bound ``created_at``."""
        with self.sessions() as s:
            q = select(Design).order_by(Design.created_at.desc(), Design.id.desc()).limit(limit)
            if project_id is not None:
                q = q.where(Design.project_id == project_id)
            if kind:
                q = q.where(Design.kind == kind)
            if status:
                q = q.where(Design.status == status)
            if text:
                pattern = f"%{text.lower()}%"
                q = q.where(or_(func.lower(Design.prompt).like(pattern), func.lower(Design.negative_prompt).like(pattern)))
            if since is not None:
                q = q.where(Design.created_at >= since)
            if until is not None:
                q = q.where(Design.created_at < until)
            return list(s.scalars(q))

    # ------------------------------------------------------------------ team: shortlist and decisions
    def record_review(self, design_id: int, action: str, new_status: str, *, actor: str, role: str,
                      comment: str = "", shortlist_note: str | None = None) -> Decision:
        """Move a design to ``new_status`` and store the act, in one transaction; illegal moves are refused."""
        with transaction(self.sessions) as s:
            return _record_review(s, design_id, action, new_status, actor, role, comment, shortlist_note)

    def record_review_on(self, conn, design_id: int, action: str, new_status: str, *, actor: str, role: str,
                         comment: str = "", shortlist_note: str | None = None) -> Decision:
        """``record_review`` inside the caller's transaction on ``conn`` (the ledger's, so both commit together)."""
        from sqlalchemy.orm import Session

        with Session(bind=conn, expire_on_commit=False) as s:
            decision = _record_review(s, design_id, action, new_status, actor, role, comment, shortlist_note)
            s.expunge_all()
            return decision

    def check_review(self, design_id: int, new_status: str) -> None:
        """Raise the error ``record_review`` would raise for this move, without writing anything."""
        with self.sessions() as s:
            _check_transition(design_id, s.get(Design, int(design_id)), new_status)

    def shortlist_entries(self, *, project_id: int | None = None) -> list[tuple[ShortlistEntry, Design]]:
        with self.sessions() as s:
            q = (select(ShortlistEntry, Design).join(Design, ShortlistEntry.design_id == Design.id)
                 .order_by(ShortlistEntry.created_at.desc(), ShortlistEntry.id.desc()))
            if project_id is not None:
                q = q.where(Design.project_id == project_id)
            return [(e, d) for e, d in s.execute(q).all()]

    def decisions(self, design_id: int | None = None, *, limit: int = 200) -> list[Decision]:
        with self.sessions() as s:
            q = select(Decision).order_by(Decision.created_at.desc(), Decision.id.desc()).limit(limit)
            if design_id is not None:
                q = q.where(Decision.design_id == int(design_id))
            return list(s.scalars(q))

    def project_of(self, design: Design) -> Project:
        with self.sessions() as s:
            return s.get(Project, design.project_id)


__all__ = ["Store", "Design", "Project", "User", "ShortlistEntry", "Decision", "Base", "FileStore", "atomic_write", "transaction"]
