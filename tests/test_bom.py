"""Bill of materials: every output names the models and runtime parts that made it, inside the signed
record; a restricted part marks the asset; `studio verify` prints the bill."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from gov_helpers import as_user, cli_env

from brand_guard.bom import Component, bill_of_materials, bom_lines, bom_restrictions, ffmpeg_licence
from brand_guard.provenance import manifest_path
from design_studio import catalog
from design_studio.cli import main


def embedded_record(studio, design) -> dict:
    from design_studio.services.designs import embedded_record as read_record

    record = read_record(studio.store.file_path(design))
    return record.to_dict()


def by_name(bom: dict) -> dict:
    return {c["name"]: c for c in bom["components"]}


def test_concept_png_and_mesh_glb_carry_a_bom_naming_their_model(studio):
    image = studio.generate_concepts("a saddle bag", n=1, seed=5)[0]
    mesh = studio.make_mesh(image.id, previews=False)
    concept_entry = catalog.entry_for("tiny", "concept")
    depth_entry = catalog.entry_for("tiny", "depth")

    png_bom = embedded_record(studio, image)["params"]["bom"]  # the signed record inside the PNG
    parts = by_name(png_bom)
    assert parts[concept_entry.repo_id]["kind"] == "weights"
    assert parts[concept_entry.repo_id]["revision"] == image.revision
    assert parts[concept_entry.repo_id]["licence"] == concept_entry.licence
    assert {"diffusers", "studio-watermark"} <= set(parts)
    assert png_bom["restricted"] is False

    glb_bom = embedded_record(studio, mesh)["params"]["bom"]
    parts = by_name(glb_bom)
    assert parts[depth_entry.repo_id]["role"] == "3D backend depth-relief"
    assert {"xatlas", "fast-simplification", "trimesh"} <= set(parts)
    assert parts["xatlas"]["licence"] == "MIT" and parts["xatlas"]["version"]
    # The mesh was made from the concept: the concept model is in its bill too, via the parent.
    assert parts[concept_entry.repo_id]["via"] == image.uid
    assert "pyrender" not in parts  # previews=False: no renderer touched it
    assert mesh.params["bom"] == glb_bom  # the stored row and the signed file agree


def test_a_restricted_component_flags_the_asset_and_its_children(studio, monkeypatch):
    entry = catalog.entry_for("tiny", "concept")
    monkeypatch.setitem(catalog.CATALOGUE, entry.key, dataclasses.replace(
        entry, licence="Example Non-Commercial Licence", commercial=False, excluded_territories=("EU",)))
    image = studio.generate_concepts("a clutch", n=1, seed=2)[0]
    bom = image.params["bom"]
    assert bom["restricted"] is True
    assert any(entry.repo_id in part and "not for commercial use" in part and "EU" in part
               for part in bom["restricted_parts"])
    mesh = studio.make_mesh(image.id, previews=False)
    assert mesh.params["bom"]["restricted"] is True  # inherited through the lineage
    assert bom_restrictions(mesh.params["bom"]) == mesh.params["bom"]["restricted_parts"]

    # The review card shows the bill and the warning.
    from types import SimpleNamespace

    from design_studio.ui.review_tab import bom_md

    card = "\n".join(bom_md(SimpleNamespace(design=image, mesh=mesh)))
    assert f"RESTRICTED design #{image.id}" in card and f"RESTRICTED 3D #{mesh.id}" in card
    assert "Bill of materials" in card and "xatlas" in card


def test_verify_prints_the_bom_and_warns_on_restricted(studio, settings, monkeypatch, capsys, tmp_path):
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    image = studio.generate_concepts("a tote", n=1, seed=8, actor=as_user(studio, "ana"))[0]
    mesh = studio.make_mesh(image.id, previews=False, actor=as_user(studio, "ana"))
    glb = shutil.copyfile(studio.store.file_path(mesh), tmp_path / "bag.glb")
    shutil.copyfile(manifest_path(studio.store.file_path(mesh)), manifest_path(glb))
    assert main(["verify", str(glb)]) == 0
    report = json.loads(capsys.readouterr().out)
    lines = report["bill_of_materials"]
    assert lines == bom_lines(mesh.params["bom"])
    depth = catalog.entry_for("tiny", "depth")
    assert any(line.startswith("weights") and f"{depth.repo_id}@" in line for line in lines)
    assert any(line.startswith("runtime") and "xatlas" in line and "MIT" in line for line in lines)
    assert lines[-1] == "restricted: no" and report["restricted"] is False

    # The BOM is inside the signed record: claiming a different licence breaks verification.
    data = glb.read_bytes()
    assert data.count(b'"licence":"MIT","name":"xatlas"') == 1
    glb.write_bytes(data.replace(b'"licence":"MIT","name":"xatlas"', b'"licence":"XYZ","name":"xatlas"'))
    assert main(["verify", str(glb)]) == 1
    capsys.readouterr()

    entry = catalog.entry_for("tiny", "concept")
    monkeypatch.setitem(catalog.CATALOGUE, entry.key, dataclasses.replace(entry, commercial=False))
    restricted = studio.generate_concepts("a tote", n=1, seed=9, actor=as_user(studio, "ana"))[0]
    png = shutil.copyfile(studio.store.file_path(restricted), tmp_path / "restricted.png")
    shutil.copyfile(manifest_path(studio.store.file_path(restricted)), manifest_path(png))
    assert main(["verify", str(png)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["restricted"] is True and "RESTRICTED" in report["bill_of_materials"][0]
    assert "RESTRICTED asset" in captured.err and entry.repo_id in captured.err


def test_bom_records_and_flags():
    free = Component("xatlas", "UV unwrap", "MIT")
    territory = Component("tencent/Hunyuan3D-2", "3D backend", "Tencent Hunyuan 3D 2.0 Community License",
                          kind="weights", repo="tencent/Hunyuan3D-2", revision="abc", commercial=False,
                          excluded_territories=("EU", "UK", "South Korea"))
    bom = bill_of_materials([free, territory, free])
    assert [c["name"] for c in bom["components"]] == ["xatlas", "tencent/Hunyuan3D-2"]  # duplicates once
    assert bom["restricted"] is True and "excluded: EU, UK, South Korea" in bom["restricted_parts"][0]
    assert bill_of_materials([free])["restricted"] is False
    lines = bom_lines(bom)
    assert "tencent/Hunyuan3D-2@abc" in lines[1] and "RESTRICTED" in lines[1]
    assert Component.from_dict(territory.to_dict()) == territory
    with pytest.raises(Exception, match="kind"):
        Component("x", "y", "MIT", kind="plugin")


def test_ffmpeg_licence_follows_the_build_configuration():
    assert ffmpeg_licence("configuration: --enable-gpl --enable-version3 --enable-libx264") == "GPL-3.0-or-later"
    assert ffmpeg_licence("configuration: --enable-gpl") == "GPL-2.0-or-later"
    assert ffmpeg_licence("configuration: --disable-debug") == "LGPL-2.1-or-later"
    assert ffmpeg_licence("configuration: --enable-nonfree --enable-gpl").startswith("nonfree")


def test_weights_record_the_commit_the_lock_file_pinned(tmp_path):
    from design_studio.bom import weights
    from design_studio.models_lock import lock_path

    entry = catalog.CATALOGUE["triposr"]
    assert weights(entry.repo_id, "main", "3D backend lrm", tmp_path).revision == "main"  # nothing pulled yet
    lock_path(tmp_path).write_text(json.dumps({"version": 1, "models": {entry.repo_id: {
        "repo_id": entry.repo_id, "requested_revision": "main", "revision": "0123abcd" * 5}}}))
    part = weights(entry.repo_id, "main", "3D backend lrm", tmp_path)
    assert part.revision == "0123abcd" * 5 and part.licence == "MIT" and part.repo == entry.repo_id
    unknown = weights("someone/fine-tune", "main", "concept")
    assert unknown.restricted and "not in the catalogue" in unknown.licence
