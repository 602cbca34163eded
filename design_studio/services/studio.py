"""The ``Studio``: builds the services once, each given its collaborators, and wires them together.

No use case lives here. Each service is a plain object (``services/*.py``); ``Studio`` holds them as
attributes and forwards the public methods the UI, the CLI, the batch runner and the tests call
(``studio.generate_concepts`` is ``studio.concepts.generate_concepts``), declared in one table,
``FORWARDED``, so a name's home is always visible.
"""
from __future__ import annotations

import functools

from ..access import AccessPolicy
from ..private_paths import prepare_data_dir
from ..settings import Settings
from ..store import Store
from .batch import BatchService
from .concepts import ConceptService
from .designs import DesignWriter
from .jobs import JobBoard
from .meshes import MeshService
from .models import ModelCache
from .production import ProductionService
from .team import TeamService
from .trace import TraceService
from .vault import VaultService


class Studio:
    """One per process. Thread-safe for model loading; the UI queue serialises GPU work."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        prepare_data_dir(self.settings.data_dir)
        self.store = Store(self.settings.resolved_database_url, self.settings.files_dir)
        self.access = AccessPolicy(self.store)
        self.models = ModelCache(self.settings)
        self.designs = DesignWriter(self.settings, self.store, self.access)
        self.designs.sweep()  # files of designs whose writer died before committing
        self.vault = VaultService(self.settings, self.store, self.models, self.access)
        self.concepts = ConceptService(self.settings, self.store, self.models, self.designs, self.vault, self.access)
        self.meshes = MeshService(self.settings, self.store, self.models, self.designs, self.access)
        self.team = TeamService(self.store, self.access, self.designs, self.vault)
        self.production = ProductionService(self.store, self.designs, self.access)
        self.batch = BatchService(self.settings, self.store, self.models, self.concepts, self.meshes, self.access)
        self.jobs = JobBoard()
        self.tracer = TraceService(self.store, self.production.verify_file)


#: Public methods of the services, reachable on ``Studio`` under the same name.
FORWARDED: dict[str, tuple[str, ...]] = {
    "models": ("model_status:status", "concept_limits"),
    "concepts": ("adapter_source", "use_adapter_source", "adapter_names", "presets", "scheduler_names",
                 "speed_steps", "generate_concepts", "vary_design", "refine_design", "reuse_settings", "import_image"),
    "meshes": ("mesh_backends", "render_previews", "preview_path", "load_mesh", "provenance", "export_mesh",
               "colour_cards", "make_colourways", "make_mesh", "make_mesh_from_prompt", "file_path",
               "download_copy"),
    "team": ("accounts_enabled", "role_of", "authenticate", "add_user", "users", "remove_user", "create_project",
             "projects", "history", "design_settings", "lineage_tree", "lineage_text", "shortlist",
             "shortlist_guard", "decide", "decisions", "board"),
    "production": ("order_sample", "samples", "receive_sample", "reject_sample", "release_to_production",
                   "drop_style", "baselines", "set_baseline", "import_baselines", "ratio_rows", "ratio_report",
                   "verify_ledger", "verify_file", "c2pa_status"),
    "vault": ("open_vault:open", "vault_exists:exists", "check_near_copy", "near_copy_index", "train_lora"),
    "batch": ("batch_limits", "load_batch", "run_batch", "batch_designs", "discard_batch_designs"),
    "designs": ("style_context",),
}
#: Read-only values of the services, reachable on ``Studio`` under the same name.
FORWARDED_PROPERTIES: dict[str, tuple[str, ...]] = {"models": ("device", "defaults", "mesh_defaults"),
                                                    "designs": ("keys", "ledger")}


def _forward(service: str, name: str, target: str):
    owner = {"models": ModelCache, "concepts": ConceptService, "meshes": MeshService, "team": TeamService,
             "production": ProductionService, "vault": VaultService, "batch": BatchService,
             "designs": DesignWriter}[service]

    @functools.wraps(getattr(owner, target))
    def call(self, *args, **kwargs):
        return getattr(getattr(self, service), target)(*args, **kwargs)

    call.__name__ = name
    return call


for _service, _names in FORWARDED.items():
    for _spec in _names:
        _name, _, _target = _spec.partition(":")
        setattr(Studio, _name, _forward(_service, _name, _target or _name))
for _service, _names in FORWARDED_PROPERTIES.items():
    for _name in _names:
        setattr(Studio, _name, property(lambda self, s=_service, n=_name: getattr(getattr(self, s), n),
                                        doc=f"``{_service}.{_name}``"))
