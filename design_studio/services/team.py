"""Use cases of the team: accounts, projects with a brief, history, lineage, shortlist and review.

Role checks live here, not in the page: whatever calls ``decide`` (browser, API client, CLI) is
refused unless the access policy says the actor's role may decide. Every review act goes through
``_record_event``: its ledger event and its status change commit in one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from .. import access as policy
from ..access import AccessPolicy, Actor
from ..errors import InvalidRequest, NotFound
from ..store import Decision, Design, Project, Store, User
from ..store.models import DESIGN_STATUSES
from .designs import DesignWriter
from .vault import NearCopyBlocked, VaultService

DECISIONS = ("approved", "rejected", "changes_requested")
KINDS = ("image", "mesh")


@dataclass
class LineageNode:
    design: Design
    children: list["LineageNode"] = field(default_factory=list)

    def lines(self, depth: int = 0, focus: int | None = None) -> list[str]:
        d = self.design
        mark = " ◀" if d.id == focus else ""
        label = f"{'    ' * depth}{'└─ ' if depth else ''}#{d.id} {d.kind} · {d.status}{mark}"
        out = [label]
        for child in self.children:
            out += child.lines(depth + 1, focus)
        return out


@dataclass
class Card:
    """One design on the review board, with what a creative director needs to judge it."""

    design: Design
    project: str
    lineage: list[int]
    mesh: Design | None
    flags: list[str]
    decisions: list[Decision]
    shortlisted_by: str
    note: str


def parse_day(value, name: str) -> datetime | None:
    """'YYYY-MM-DD' (or a date/datetime) as a naive UTC datetime at midnight; empty means no bound."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, (int, float)):  # a timestamp, as gr.DateTime gives it
        return datetime.utcfromtimestamp(float(value))
    try:
        return datetime.strptime(str(value).strip()[:10], "%Y-%m-%d")
    except ValueError:
        raise InvalidRequest(f"{name} {value!r} is not a date; write it as YYYY-MM-DD") from None


class TeamService:
    """Given the store, the access policy, the design writer (ledger) and the vault (near-copy checks)."""

    def __init__(self, store: Store, access: AccessPolicy, designs: DesignWriter, vault: VaultService):
        self.store = store
        self.access = access
        self.designs = designs
        self.vault = vault

    # ------------------------------------------------------------------ accounts
    def accounts_enabled(self) -> bool:
        """Once any account exists, the studio requires sign-in (page and API) or login (CLI)."""
        return self.access.accounts_enabled()

    def role_of(self, username: str | None) -> str | None:
        """The role of a signed-in user name as it stands now (for display); None when unknown."""
        if not username:
            return None if self.accounts_enabled() else "designer"
        user = self.store.user(username)
        return user.role if user else None

    def authenticate(self, name: str, password: str) -> bool:
        return self.access.authenticate(name, password)

    def add_user(self, name: str, role: str, password: str, *, actor: Actor | None = None) -> User:
        """Create an account. ``actor=None``: the machine's owner at the command line (who holds the
        database); from the page, the signed-in admin."""
        if actor is not None:
            self.access.check(actor, "manage_users")
        name = policy.check_name(name)
        policy.check_role(role)
        return self.store.add_user(name, role, policy.hash_password(password))

    def users(self) -> list[User]:
        return self.store.users()

    def remove_user(self, name: str, *, actor: Actor | None = None) -> None:
        """Remove an account; its open sessions are refused from their next call (``AccessPolicy``)."""
        if actor is not None:
            actor = self.access.check(actor, "manage_users")
            if name == actor.name:
                raise InvalidRequest("you cannot remove your own account; ask another admin")
        target = self.store.user(name)
        if target is None:
            raise NotFound(f"user {name!r} does not exist")
        admins = [u for u in self.store.users() if u.role == "admin"]
        if target.role == "admin" and len(admins) == 1 and len(self.store.users()) > 1:
            raise InvalidRequest(f"{name!r} is the last admin; add another admin before removing this one")
        self.store.remove_user(name)

    # ------------------------------------------------------------------ projects
    def create_project(self, name: str, brief: str = "", *, actor: Actor | None = None) -> Project:
        self.access.check(actor, "create")
        name = (name or "").strip()
        if not name or len(name) > 200:
            raise InvalidRequest(f"project name {name!r} must have 1-200 characters")
        if len(brief or "") > 5000:
            raise InvalidRequest("the brief is longer than 5000 characters")
        return self.store.create_project(name, (brief or "").strip())

    def projects(self) -> list[Project]:
        return self.store.projects()

    def _project_id(self, project: str | None) -> int | None:
        if not project:
            return None
        return self.store.find_project(project).id

    # ------------------------------------------------------------------ history
    def history(self, *, project: str | None = None, text: str | None = None, kind: str | None = None,
                status: str | None = None, since=None, until=None, limit: int = 200) -> list[Design]:
        """Designs, newest first, filtered by project, prompt text, kind, status and day range (inclusive)."""
        if kind and kind not in KINDS:
            raise InvalidRequest(f"kind {kind!r} is unknown; choose one of {', '.join(KINDS)}")
        if status and status not in DESIGN_STATUSES:
            raise InvalidRequest(f"status {status!r} is unknown; choose one of {', '.join(DESIGN_STATUSES)}")
        start, end = parse_day(since, "from date"), parse_day(until, "to date")
        if end is not None:
            end = end + timedelta(days=1)  # 'until 2026-11-23' includes that whole day
        if start and end and start >= end:
            raise InvalidRequest(f"the from date {since} is after the to date {until}")
        return self.store.search_designs(project_id=self._project_id(project), kind=kind or None,
                                         status=status or None, text=(text or "").strip() or None,
                                         since=start, until=end, limit=limit)

    def design_settings(self, design_id: int) -> dict:
        """What is needed to make the design again (prompt, seed, steps, guidance, size, model)."""
        d = self.store.design(design_id)
        params = dict(d.params or {})
        return {
            "id": d.id, "kind": d.kind, "status": d.status, "project": self.store.project_of(d).name,
            "prompt": d.prompt, "negative_prompt": d.negative_prompt, "seed": d.seed, "model": d.model,
            "revision": d.revision, "steps": params.get("steps"), "guidance": params.get("guidance"),
            "width": params.get("width"), "height": params.get("height"), "parent_id": d.parent_id,
            "created_by": d.created_by, "created_at": d.created_at.isoformat(timespec="seconds"),
        }

    def lineage_tree(self, design_id: int) -> LineageNode:
        """The whole family of a design: its root ancestor and every descendant."""
        root = self.store.lineage(design_id)[0]

        def grow(design: Design, seen: set[int]) -> LineageNode:
            seen.add(design.id)
            node = LineageNode(design)
            for child in self.store.children(design.id):
                if child.id not in seen:
                    node.children.append(grow(child, seen))
            return node

        return grow(root, set())

    def lineage_text(self, design_id: int) -> str:
        return "\n".join(self.lineage_tree(design_id).lines(focus=int(design_id)))

    # ------------------------------------------------------------------ shortlist and review
    def shortlist(self, design_id: int, *, actor: Actor | None, note: str = "",
                  override_reason: str | None = None) -> Design:
        """Put a draft (or a design sent back with changes requested) forward for review.

        The design is first compared with the vault; a near-copy is refused unless a creative director
        or an admin overrides the flag with a reason (recorded in the ledger).
        """
        actor = self.access.check(actor, "shortlist")
        design = self.store.design(design_id)
        if design.status == "shortlisted":
            return design  # already on the board: shortlisting twice changes nothing
        if len(note or "") > 2000:
            raise InvalidRequest("the shortlist note is longer than 2000 characters")
        self.designs.require_recorded(design)
        self.shortlist_guard(design.id, actor, override_reason)
        self._record_event(design.id, "shortlisted", "shortlisted", actor, "shortlist",
                           comment=note or "", shortlist_note=note or "")
        return self.store.design(design.id)

    def shortlist_guard(self, design_id: int, actor: Actor | None, override_reason: str | None = None, *,
                        passphrase: str | None = None):
        """Call before shortlisting: refuses a near-copy unless a creative director or admin overrides it."""
        actor = self.access.check(actor, "shortlist")
        result = self.vault.check_near_copy(design_id, passphrase=passphrase)
        if result is None or not result.flagged:
            return result
        reason = (override_reason or "").strip()
        if not reason:
            raise NearCopyBlocked(
                f"design {design_id} is flagged: {result.reason()}; a creative director must override it with a reason"
            )
        self.designs.record("flag_overridden", design_id, actor, "override_flag", reason=reason, flag="near_copy",
                            vault_item=result.best_item_id, distance=result.distance)
        return result

    def decide(self, design_id: int, decision: str, comment: str = "", *, actor: Actor | None) -> Decision:
        """A creative director approves, rejects or requests changes on a shortlisted design."""
        if decision not in DECISIONS:
            raise InvalidRequest(f"decision {decision!r} is unknown; choose one of {', '.join(DECISIONS)}")
        actor = self.access.check(actor, "decide")
        comment = (comment or "").strip()
        if decision != "approved" and not comment:
            raise InvalidRequest(f"say why: a comment is required to mark a design {decision.replace('_', ' ')}")
        if len(comment) > 5000:
            raise InvalidRequest("the comment is longer than 5000 characters")
        self.store.design(design_id)  # NotFound before anything else
        return self._record_event(int(design_id), decision, decision, actor, "decide", comment=comment)

    def _record_event(self, design_id: int, event: str, new_status: str, actor: Actor, action: str, *,
                      comment: str = "", shortlist_note: str | None = None) -> Decision:
        """The one place a review act is written: the hash-chained ledger entry and the status and
        decision row, in one transaction."""
        actor = self.access.check(actor, action)
        self.store.check_review(design_id, new_status)  # an illegal move must not reach the ledger
        design = self.store.design(design_id)
        ctx = self.designs.style_context(design)

        def move(conn):
            return self.store.record_review_on(conn, design_id, event, new_status, actor=actor.name,
                                               role=actor.role, comment=comment, shortlist_note=shortlist_note)

        decision, _ = self.designs.append(event, actor, "design", str(design.id),
                                          ctx.payload(uid=design.uid, comment=comment), work=move)
        return decision

    def decisions(self, design_id: int | None = None) -> list[Decision]:
        return self.store.decisions(design_id)

    def board(self, *, project: str | None = None, status: str | None = None) -> list[Card]:
        """The shortlist as cards (newest first), optionally only those in one status."""
        cards = []
        for entry, design in self.store.shortlist_entries(project_id=self._project_id(project)):
            if status and design.status != status:
                continue
            meshes = [c for c in self.store.children(design.id) if c.kind == "mesh"]
            flags = (design.params or {}).get("flags") or []
            cards.append(Card(
                design=design, project=self.store.project_of(design).name,
                lineage=[d.id for d in self.store.lineage(design.id)], mesh=meshes[-1] if meshes else None,
                flags=[str(f) for f in (flags if isinstance(flags, list) else [flags])],
                decisions=self.store.decisions(design.id), shortlisted_by=entry.added_by, note=entry.note,
            ))
        return cards

