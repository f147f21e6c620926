"""The shipped ImageNet class list and the resource locator."""

from __future__ import annotations

import json
import re

import pytest

from engine.resources import imagenet_class_names, resource_path


@pytest.fixture(scope="module")
def imagenet_entries() -> list[dict]:
    return json.loads(resource_path("imagenet_classes.json").read_text(encoding="utf-8"))


def test_class_list_has_every_index_once_in_order(imagenet_entries):
    assert len(imagenet_entries) == 1000
    assert [entry["index"] for entry in imagenet_entries] == list(range(1000))
    assert all(set(entry) == {"index", "wnid", "name"} for entry in imagenet_entries)


def test_class_wnids_are_sorted_synset_ids(imagenet_entries):
    wnids = [entry["wnid"] for entry in imagenet_entries]
    assert all(re.fullmatch(r"n\d{8}", wnid) for wnid in wnids)
    # ImageNet-1k's class index is the rank of the WordNet id, so the ids are
    # strictly increasing; a shifted or swapped entry breaks this.
    assert wnids == sorted(set(wnids))


def test_class_names_are_unique_and_clean(imagenet_entries):
    names = [entry["name"] for entry in imagenet_entries]
    assert len(set(names)) == 1000
    assert all(name and name == name.strip() and "_" not in name for name in names)


@pytest.mark.parametrize(
    ("index", "wnid", "name"),
    [
        (0, "n01440764", "tench"),
        (1, "n01443537", "goldfish"),
        (2, "n01484850", "great white shark"),
        (207, "n02099601", "golden retriever"),
        (517, "n03126707", "crane"),
        (999, "n15075141", "toilet tissue"),
    ],
)
def test_well_known_classes(imagenet_entries, index, wnid, name):
    assert (imagenet_entries[index]["wnid"], imagenet_entries[index]["name"]) == (wnid, name)


def test_class_list_agrees_with_tiny_imagenet_subset(imagenet_entries, shared_file):
    path = shared_file("data", "tiny-imagenet-200", "classes.json")
    subset = json.loads(path.read_text(encoding="utf-8"))
    assert len(subset) == 200
    disagreements = [
        (item["imagenet_index"], item["wnid"], item["name"], imagenet_entries[item["imagenet_index"]])
        for item in subset
        if (imagenet_entries[item["imagenet_index"]]["wnid"], imagenet_entries[item["imagenet_index"]]["name"])
        != (item["wnid"], item["name"])
    ]
    assert disagreements == []


def test_imagenet_class_names_returns_a_fresh_list(imagenet_entries):
    names = imagenet_class_names()
    assert names == [entry["name"] for entry in imagenet_entries]
    names[0] = "changed by a caller"
    assert imagenet_class_names()[0] == "tench"


def test_resource_path_finds_the_shipped_folders():
    assert resource_path().name == "resources"
    assert resource_path("presets").is_dir()
    assert resource_path("imagenet_classes.json").is_file()


@pytest.mark.parametrize("parts", [("..", "pyproject.toml"), ("presets", "..", "..", "engine"), ("/etc",)])
def test_resource_path_refuses_to_leave_the_folder(parts):
    with pytest.raises(ValueError, match="inside the resources folder"):
        resource_path(*parts)
