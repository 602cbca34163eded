"""USDZ for AR Quick Look: a textured trimesh as one ARKit-compliant package (usd-core).

The stage is in metres (``metersPerUnit`` 1), +Y up, with one default prim holding the mesh and a
``UsdPreviewSurface`` material: the baked baseColor texture plus the roughness and metallic factors
of the PBR preset. ``usdz_compliance`` runs usd-core's ARKit checker over the bytes.
"""
from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import InvalidInput

ROOT = "/Model"
PROVENANCE_KEY = "studio_provenance"


def _usd():
    try:
        from pxr import Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt
    except ImportError:
        raise InvalidInput("USDZ export needs the usd-core package (pip install usd-core)") from None
    return Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt


def _material_values(mesh) -> tuple[object, float, float, tuple[float, float, float, float]]:
    """(baseColor PIL image or None, roughness, metallic, baseColor factor) of a trimesh's material."""
    material = getattr(mesh.visual, "material", None)
    image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
    roughness = getattr(material, "roughnessFactor", None)
    metallic = getattr(material, "metallicFactor", None)
    factor = getattr(material, "baseColorFactor", None)
    factor = (1.0, 1.0, 1.0, 1.0) if factor is None else tuple(float(c) / (255.0 if np.max(factor) > 1 else 1.0)
                                                                for c in factor)
    return (image, 0.5 if roughness is None else float(roughness), 0.0 if metallic is None else float(metallic),
            factor)


def export_usdz(mesh, name: str = "model", *, quads: int = 0, provenance: dict | None = None) -> bytes:
    """ARKit USDZ bytes of a textured (UV-mapped) trimesh in metres, +Y up.

    ``quads``: how many quads a quad-remeshed mesh holds (its first ``2 * quads`` triangles, see
    ``remesh.QuadMesh.triangulated``); USD keeps them as 4-sided faces. ``provenance``: a record (with
    its bill of materials) kept as JSON in the root layer's ``customLayerData["studio_provenance"]``.
    """
    Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt = _usd()
    faces = np.asarray(getattr(mesh, "faces", []))
    if len(faces) == 0:
        raise InvalidInput("cannot export an empty mesh to USDZ")
    uv = getattr(mesh.visual, "uv", None)
    image, roughness, metallic, factor = _material_values(mesh)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        layer = folder / f"{name}.usdc"
        stage = Usd.Stage.CreateNew(str(layer))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        root = UsdGeom.Xform.Define(stage, ROOT)
        stage.SetDefaultPrim(root.GetPrim())
        Usd.ModelAPI(root.GetPrim()).SetKind(Kind.Tokens.component)

        geom = UsdGeom.Mesh.Define(stage, f"{ROOT}/Geom")
        vertices = np.asarray(mesh.vertices, dtype=np.float64)
        geom.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(vertices.astype(np.float32)))
        if quads:
            from .remesh import quads_from_triangles

            quad_faces, tri_faces = quads_from_triangles(faces, quads)
            counts = np.concatenate([np.full(len(quad_faces), 4), np.full(len(tri_faces), 3)]).astype(np.int32)
            indices = np.concatenate([quad_faces.reshape(-1), tri_faces.reshape(-1)]).astype(np.int32)
        else:
            counts = np.full(len(faces), 3, dtype=np.int32)
            indices = faces.reshape(-1).astype(np.int32)
        geom.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(counts))
        geom.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(indices))
        geom.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)  # a polygon mesh, not a subdivision cage
        geom.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
        normals = np.asarray(mesh.vertex_normals, dtype=np.float32)
        geom.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(normals))
        geom.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
        lo, hi = vertices.min(0), vertices.max(0)
        geom.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))]))
        double_sided = bool(getattr(getattr(mesh.visual, "material", None), "doubleSided", False))
        geom.CreateDoubleSidedAttr(double_sided)

        material = UsdShade.Material.Define(stage, f"{ROOT}/Materials/Surface")
        shader = UsdShade.Shader.Define(stage, f"{ROOT}/Materials/Surface/PreviewSurface")
        shader.CreateIdAttr("UsdPreviewSurface")
        shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(roughness)
        shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(metallic)
        material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
        textured = image is not None and uv is not None and len(uv) == len(vertices)
        if textured:
            texture_name = f"{name}_baseColor.png"
            image.convert("RGB").save(folder / texture_name, format="PNG")
            primvar = UsdGeom.PrimvarsAPI(geom.GetPrim()).CreatePrimvar(
                "st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
            # trimesh keeps UVs with v up (OpenGL), which is USD's st convention too.
            primvar.Set(Vt.Vec2fArray.FromNumpy(np.asarray(uv, dtype=np.float32)))
            reader = UsdShade.Shader.Define(stage, f"{ROOT}/Materials/Surface/stReader")
            reader.CreateIdAttr("UsdPrimvarReader_float2")
            st_input = material.CreateInput("frame:stPrimvarName", Sdf.ValueTypeNames.String)
            st_input.Set("st")
            reader.CreateInput("varname", Sdf.ValueTypeNames.String).ConnectToSource(st_input)
            sampler = UsdShade.Shader.Define(stage, f"{ROOT}/Materials/Surface/baseColorTexture")
            sampler.CreateIdAttr("UsdUVTexture")
            sampler.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(f"./{texture_name}")
            sampler.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
            sampler.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
            sampler.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set("repeat")
            sampler.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set("repeat")
            sampler.CreateInput("scale", Sdf.ValueTypeNames.Float4).Set(Gf.Vec4f(*factor))
            sampler.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
            shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(
                sampler.ConnectableAPI(), "rgb")
        else:
            shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(Gf.Vec3f(*factor[:3]))
        UsdShade.MaterialBindingAPI.Apply(geom.GetPrim()).Bind(material)
        if provenance is not None:
            stage.GetRootLayer().customLayerData = {
                PROVENANCE_KEY: json.dumps(provenance, sort_keys=True, ensure_ascii=False, default=str)}
        stage.GetRootLayer().Save()
        del stage

        package = folder / f"{name}.usdz"
        if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(layer)), str(package)):
            raise InvalidInput(f"usd-core could not package {layer.name} as USDZ")
        return package.read_bytes()


def usdz_compliance(data: bytes) -> dict:
    """usd-core's ARKit compliance checker over USDZ bytes: ``{"errors": [...], "failed_checks": [...],
    "warnings": [...]}`` (a file AR Quick Look accepts has no errors and no failed checks)."""
    *_, UsdUtils, _ = _usd()
    if not hasattr(UsdUtils, "ComplianceChecker"):
        raise InvalidInput("this usd-core has no ARKit ComplianceChecker (removed in 26.8); install usd-core<26.8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.usdz"
        path.write_bytes(data)
        with warnings.catch_warnings():
            # Deprecated in favour of UsdValidation, which has no ARKit rules yet (hence usd-core < 26.8).
            warnings.simplefilter("ignore", DeprecationWarning)
            checker = UsdUtils.ComplianceChecker(arkit=True)
        checker.CheckCompliance(str(path))
        return {"errors": list(checker.GetErrors()), "failed_checks": list(checker.GetFailedChecks()),
                "warnings": list(checker.GetWarnings())}


def load_usdz_summary(data: bytes) -> dict:
    """What a USDZ holds, read back with usd-core: up axis, metres per unit, default prim, and per mesh
    the point/face counts, extent and the bound material's inputs (for tests and checks)."""
    Gf, Kind, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt = _usd()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "read.usdz"
        path.write_bytes(data)
        stage = Usd.Stage.Open(str(path))
        meshes = []
        for prim in stage.Traverse():
            if not prim.IsA(UsdGeom.Mesh):
                continue
            geom = UsdGeom.Mesh(prim)
            points = np.asarray(geom.GetPointsAttr().Get())
            bound, _ = UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()
            inputs = {}
            for shader_prim in Usd.PrimRange(bound.GetPrim()) if bound else []:
                shader = UsdShade.Shader(shader_prim)
                if not shader:
                    continue
                for inp in shader.GetInputs():
                    inputs[f"{shader.GetIdAttr().Get()}.{inp.GetBaseName()}"] = inp.Get()
            primvar = UsdGeom.PrimvarsAPI(prim).GetPrimvar("st")
            counts = np.asarray(geom.GetFaceVertexCountsAttr().Get())
            meshes.append({
                "points": len(points), "faces": len(counts), "quads": int((counts == 4).sum()),
                "extent": (points.max(0) - points.min(0)).tolist() if len(points) else [0, 0, 0],
                "st": bool(primvar and primvar.HasValue()), "material": inputs,
            })
        names = []
        with io.BytesIO(data) as buffer:
            import zipfile

            with zipfile.ZipFile(buffer) as zf:
                names = zf.namelist()
        raw = stage.GetRootLayer().customLayerData.get(PROVENANCE_KEY)
        return {"provenance": json.loads(raw) if raw else None, "up_axis": UsdGeom.GetStageUpAxis(stage), "meters_per_unit": UsdGeom.GetStageMetersPerUnit(stage),
                "default_prim": str(stage.GetDefaultPrim().GetPath()), "meshes": meshes, "files": names}
