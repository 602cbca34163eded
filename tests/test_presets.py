"""Style presets per product category: shipped, applied to the prompt and size, editable."""
from __future__ import annotations

import json

import pytest

from design_studio.errors import InvalidRequest
from design_studio.presets import StylePreset

CATEGORIES = {"handbag", "shoe", "scarf", "small-leather-goods", "watch", "jewellery", "garment"}


def test_every_category_ships_a_product_shot_preset(studio):
    presets = studio.presets().all()
    assert set(presets) == CATEGORIES
    for p in presets.values():
        assert "{prompt}" in p.prompt_template and "background" in p.prompt_template and p.negative_prompt


def test_preset_is_applied_to_prompt_negative_and_size(studio):
    design = studio.generate_concepts("a wool coat", n=1, seed=1, preset="garment", negative_prompt="fur")[0]
    garment = studio.presets().get("garment")
    assert design.prompt == garment.prompt("a wool coat") and design.prompt.startswith("a wool coat, ")
    assert design.negative_prompt.startswith("fur, ") and garment.negative_prompt in design.negative_prompt
    assert (design.params["width"], design.params["height"]) == (64, 96)  # 2:3, short side kept at 64
    assert design.params["preset"] == "garment" and design.params["user_prompt"] == "a wool coat"
    assert garment.size(1024, 1024) == (840, 1256)  # about one megapixel at 2:3 for SDXL


def test_edited_preset_is_saved_in_the_data_dir_and_used(studio):
    library = studio.presets()
    library.save(StylePreset("watch", "Watch", "{prompt}, on black velvet", "scratches", "4:3"))
    saved = json.loads((studio.settings.presets_dir / "watch.json").read_text())
    assert saved["prompt_template"] == "{prompt}, on black velvet"
    design = studio.generate_concepts("a diver watch", n=1, seed=1, preset="watch")[0]
    assert design.prompt == "a diver watch, on black velvet" and design.negative_prompt == "scratches"
    assert (design.params["width"], design.params["height"]) == (88, 64)  # 4:3 with the short side at 64, rounded to 8
    shipped = json.loads((studio.settings.assets_dir / "presets" / "watch.json").read_text())
    assert "velvet" not in shipped["prompt_template"]  # the shipped file is untouched


@pytest.mark.parametrize("template, aspect, message", [
    ("no placeholder", "1:1", "exactly once"),
    ("{prompt} {other}", "1:1", "only {prompt}"),
    ("{prompt}", "10:1", "aspect"),
])
def test_bad_preset_edits_are_refused(studio, template, aspect, message):
    with pytest.raises(InvalidRequest, match=message):
        studio.presets().save(StylePreset("watch", "Watch", template, "", aspect))
    assert not (studio.settings.presets_dir / "watch.json").exists()
