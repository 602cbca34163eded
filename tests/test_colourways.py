"""Colourways: recolour the atlas from a colour card, keep the shading; each variant a child design."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import color

from pipelines.mesh.colourways import Colour, load_palettes, parse_colour, recolour_texture


def leather_texture() -> Image.Image:
    rng = np.random.default_rng(1)
    base = np.full((64, 64, 3), (154, 78, 28), dtype=np.float64)
    base *= 0.75 + 0.25 * rng.random((64, 64, 1))  # grain
    base[30:32] *= 0.4  # a stitch line
    return Image.fromarray(base.clip(0, 255).astype(np.uint8))


def test_house_colour_cards_load():
    cards = load_palettes()
    assert {"leather-core", "summer-canvas"} <= set(cards)
    assert all(c.rgb and c.name for card in cards.values() for c in card)


def test_recolour_keeps_lightness_detail_and_takes_the_target_chroma():
    source = leather_texture()
    target = Colour("Marine", "#1D2B4F")
    out = recolour_texture(source, target)
    lab_in = color.rgb2lab(np.asarray(source) / 255.0)
    lab_out = color.rgb2lab(np.asarray(out) / 255.0)
    corr = np.corrcoef(lab_in[..., 0].ravel(), lab_out[..., 0].ravel())[0, 1]
    assert corr > 0.95  # grain and the stitch line survive
    assert lab_out[31, :, 0].mean() < lab_out[10, :, 0].mean() - 10  # stitch still darker
    want = color.rgb2lab(np.array(target.rgb).reshape(1, 1, 3) / 255.0)[0, 0]
    assert abs(np.median(lab_out[..., 2]) - want[2]) < 6  # blue now, not cognac
    assert np.median(lab_in[..., 2]) > 20 and np.median(lab_out[..., 2]) < 0


def test_bad_colours_are_refused():
    from pipelines.errors import InvalidInput

    with pytest.raises(InvalidInput, match="hex"):
        parse_colour("Rouge=#12")
    with pytest.raises(InvalidInput, match="material"):
        parse_colour("Rouge=#aa0000:velvet")


def test_colourways_are_children_of_the_mesh(studio):
    from design_studio.errors import InvalidRequest

    image = studio.generate_concepts("a quilted shoulder bag", n=1, seed=5)[0]
    mesh = studio.make_mesh(image.id, size_cm=25, previews=False)
    variants = studio.make_colourways(mesh.id, palette="leather-core", n=3, previews=False)
    assert [v.parent_id for v in variants] == [mesh.id] * 3
    assert [v.params["colourway"] for v in variants] == ["Noir", "Cognac", "Bordeaux"]
    textures = [studio.load_mesh(v.id)[1].visual.material.baseColorTexture for v in variants]
    means = [np.asarray(t).reshape(-1, 3).mean(0) for t in textures]
    assert np.abs(means[0] - means[1]).max() > 20 and np.abs(means[1] - means[2]).max() > 10
    assert all(len(studio.load_mesh(v.id)[1].faces) == mesh.params["faces"] for v in variants)
    with pytest.raises(InvalidRequest, match="not one of"):
        studio.make_colourways(mesh.id, palette="no-such-card")
    with pytest.raises(InvalidRequest, match="mesh design"):
        studio.make_colourways(image.id)
    assert len(studio.store.children(mesh.id)) == 3
