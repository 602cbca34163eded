"""The design store: projects and designs in SQL, their files content-addressed on disk."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import or_, select

from ..errors import NotFound
from .db import make_engine, make_session_factory, transaction
from .files import FileStore, atomic_write
from .migrations import migrate
from .models import Base, Design, Project

DEFAULT_PROJECT = "Inbox"


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
        with self.sessions() as s:
            q = select(Design).order_by(Design.created_at.desc(), Design.id.desc()).limit(limit)
            if project_id is not None:
                q = q.where(Design.project_id == project_id)
            if kind:
                q = q.where(Design.kind == kind)
            if text:
                q = q.where(or_(Design.prompt.contains(text), Design.negative_prompt.contains(text)))
            return list(s.scalars(q))

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


__all__ = ["Store", "Design", "Project", "Base", "FileStore", "atomic_write", "transaction"]
