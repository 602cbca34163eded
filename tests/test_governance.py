"""Every output carries provenance and a ledger entry; the guard is on when the app starts; near-copies are flagged."""
from __future__ import annotations

import json
import socket

import pytest
from gov_helpers import textured, as_user

from brand_guard import egress
from brand_guard.errors import EgressRefused
from brand_guard.provenance import manifest_path, watermark_payload


def test_generated_png_and_mesh_carry_verified_provenance_and_ledger_events(studio):
    images = studio.generate_concepts("a cognac leather tote", n=2, seed=7, actor=as_user(studio, "ana"))
    mesh = studio.make_mesh(images[0].id, actor=as_user(studio, "ana"))
    designs = images + [mesh]
    for d in designs:
        assert d.uid and len(d.uid) == 32 and d.params["uid"] == d.uid
        path = studio.store.file_path(d)
        assert manifest_path(path).is_file()
        result = studio.verify_file(path)
        assert result.ok, result.reason
        assert result.record["design_id"] == d.uid and result.record["actor"] == "ana"
    assert studio.verify_file(studio.store.file_path(images[1])).record["seed"] == 8
    assert studio.verify_file(studio.store.file_path(mesh)).record["parents"] == [images[0].uid]
    created = studio.ledger.events(event="design_created")
    assert [e.subject_id for e in created] == [str(d.id) for d in designs]
    assert {e.payload["style_id"] for e in created[:1] + created[2:]} == {str(images[0].id)}  # mesh joins its root's style
    assert all(e.payload["collection"] == "Inbox" for e in created)
    assert studio.ledger.verify().ok


def test_large_outputs_carry_a_readable_watermark(studio):
    from brand_guard.provenance import detect_watermark
    from PIL import Image

    design = studio.generate_concepts("a quilted clutch", n=1, seed=1, width=512, height=512, actor=as_user(studio, "ana"))[0]
    with Image.open(studio.store.file_path(design)) as im:
        assert detect_watermark(im.convert("RGB")) == watermark_payload(design.uid)


def test_uid_migration_backfills_existing_rows(tmp_path):
    from sqlalchemy import create_engine, text

    from design_studio.store import Store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # a database from before migration 6: no uid column
        conn.execute(text("CREATE TABLE schema_version (version INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO schema_version VALUES (1)"))
        conn.execute(text("CREATE TABLE projects (id INTEGER PRIMARY KEY, name VARCHAR(200) UNIQUE, brief TEXT, created_at DATETIME)"))
        conn.execute(text("CREATE TABLE designs (id INTEGER PRIMARY KEY, project_id INTEGER, kind VARCHAR(16), parent_id INTEGER, "
                          "prompt TEXT, negative_prompt TEXT, seed INTEGER, model VARCHAR(300), revision VARCHAR(100), params JSON, "
                          "file VARCHAR(500), sha256 VARCHAR(64), status VARCHAR(32), created_by VARCHAR(100), created_at DATETIME)"))
        conn.execute(text("INSERT INTO projects (id, name, brief) VALUES (1, 'Inbox', '')"))
        for i in (1, 2):
            conn.execute(text("INSERT INTO designs (id, project_id, kind, file, sha256, params) VALUES (:i, 1, 'image', 'x', 'y', '{}')"), {"i": i})
    store = Store(url, tmp_path / "files")
    uids = [store.design(i).uid for i in (1, 2)]
    assert all(u and len(u) == 32 for u in uids) and uids[0] != uids[1]
    assert {"samples", "ratio_baselines", "ledger_events"} <= set(__import__("sqlalchemy").inspect(store.engine).get_table_names())


def test_key_dir_inside_data_dir_is_refused(tmp_path):
    from pydantic import ValidationError

    from design_studio.settings import Settings

    with pytest.raises(ValidationError, match="keep keys outside the data dir"):
        Settings(data_dir=tmp_path / "data", key_dir=tmp_path / "data" / "keys")


def test_prepared_app_environment_refuses_non_loopback_connects(settings, monkeypatch):
    from design_studio.app import launch_options, prepare_environment

    attempts = []
    real_connect = egress._saved["connect"] if egress._saved else socket.socket.connect
    egress.uninstall_guard()
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: attempts.append(addr) or real_connect(self, addr))
    try:
        prepare_environment(settings)
        assert egress.guard_installed()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            with pytest.raises(EgressRefused, match="loopback"):
                s.connect(("203.0.113.7", 443))  # TEST-NET-3: refused before any packet
        with pytest.raises(EgressRefused):
            socket.create_connection(("huggingface.co", 443), timeout=1)
        assert attempts == []  # the real connect was never reached
        with socket.socket() as server, socket.socket() as client:  # loopback still works
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            address = server.getsockname()
            client.connect(address)
        assert attempts == [address]
        assert launch_options(settings)["share"] is False
        from design_studio.app import launch

        with pytest.raises(EgressRefused, match="share"):
            launch(settings, share=True)
    finally:
        egress.uninstall_guard()


def test_guarded_mode_refuses_a_model_folder_with_pickles(studio, settings, tmp_path):
    import shutil

    from design_studio.errors import InvalidRequest

    models = tmp_path / "models"
    shutil.copytree(settings.models_dir, models)
    (models / "tiny" / "tiny-concept" / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    studio.settings.models_dir = models
    with pytest.raises(InvalidRequest, match="pickle"):
        studio.generate_concepts("a bag", n=1, actor=as_user(studio, "ana"))
    assert studio.store.designs() == []


def _vault_with(studio, tmp_path, monkeypatch, seeds):
    monkeypatch.setenv("STUDIO_VAULT_PASSPHRASE", "house archive 1867")
    folder = tmp_path / "archive"
    folder.mkdir()
    for seed in seeds:
        textured(seed).save(folder / f"piece-{seed}.png")
    vault = studio.open_vault(create=True)
    vault.add_images(folder, "heritage", "archivist")
    return folder


def test_vault_image_is_flagged_and_shortlisting_needs_an_override(studio, tmp_path, monkeypatch):
    from design_studio.access import Forbidden as RoleRefused
    from design_studio.services.vault import NearCopyBlocked

    folder = _vault_with(studio, tmp_path, monkeypatch, [11, 12])
    copy = studio.import_image(folder / "piece-11.png", actor=as_user(studio, "ana"))
    other = tmp_path / "other.png"
    textured(99).save(other)
    fresh = studio.import_image(other, actor=as_user(studio, "ana"))

    result = studio.check_near_copy(copy.id)
    assert result.flagged and result.distance <= studio.settings.near_copy_threshold
    flags = studio.store.design(copy.id).params["flags"]
    assert flags[0]["kind"] == "near_copy" and flags[0]["vault_item"] == result.best_item_id
    assert not studio.check_near_copy(fresh.id).flagged
    assert studio.store.design(fresh.id).params["flags"] == []

    with pytest.raises(NearCopyBlocked, match="flagged"):
        studio.shortlist_guard(copy.id, as_user(studio, "ana"))
    with pytest.raises(RoleRefused):
        studio.shortlist_guard(copy.id, as_user(studio, "ana"), override_reason="looks fine to me")
    studio.shortlist_guard(copy.id, as_user(studio, "chloe"), override_reason="our own 1967 archive motif, reissue")
    overrides = studio.ledger.events(event="flag_overridden")
    assert len(overrides) == 1 and overrides[0].actor == "chloe" and "reissue" in overrides[0].payload["reason"]
    assert studio.shortlist_guard(fresh.id, as_user(studio, "ana")).flagged is False

    # the cached index is rebuilt when the vault changes
    studio.open_vault().add_images(other, "heritage", "archivist")
    assert studio.check_near_copy(fresh.id).flagged
    reads = [e for e in studio.open_vault().access_log() if e["action"] == "read"]
    assert len(reads) == 2 and all(e["purpose"] == "near-copy index" for e in reads)


def test_vault_adapter_source_lists_and_loads_adapters(studio, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save

    _vault_with(studio, tmp_path, monkeypatch, [1])
    studio.open_vault().add_blob("heritage-v1", save({"unet.x.lora_A.weight": torch.ones(2, 2)}), kind="adapter", actor="a")
    source = studio.adapter_source()
    assert source.names() == ["heritage-v1"]
    assert torch.equal(source.load("heritage-v1").state_dict["unet.x.lora_A.weight"], torch.ones(2, 2))
    assert json.dumps(studio.open_vault().access_log()[-1]).count("generation") == 1


def test_shortlisting_a_near_copy_through_the_team_workflow(studio, tmp_path, monkeypatch):
    from team_server import add_team

    from design_studio.access import Forbidden as RoleRefused
    from design_studio.services.vault import NearCopyBlocked

    folder = _vault_with(studio, tmp_path, monkeypatch, [11])
    add_team(studio)
    copy = studio.import_image(folder / "piece-11.png", actor=as_user(studio, "ann"))
    with pytest.raises(NearCopyBlocked, match="flagged"):
        studio.shortlist(copy.id, actor=as_user(studio, "ann"))
    with pytest.raises(RoleRefused):
        studio.shortlist(copy.id, actor=as_user(studio, "ann"), override_reason="fine")
    assert studio.store.design(copy.id).status == "draft"
    studio.shortlist(copy.id, actor=as_user(studio, "cleo"), override_reason="house reissue of our 1967 motif")
    design = studio.store.design(copy.id)
    assert design.status == "shortlisted" and design.params["flags"][0]["kind"] == "near_copy"
    assert [e.event for e in studio.ledger.events(subject_id=str(copy.id))][-2:] == ["flag_overridden", "shortlisted"]
