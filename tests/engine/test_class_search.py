"""Class search: names, other names, categories ("dog", "cat", "wolf") and numbers."""

from __future__ import annotations

import json

import pytest

from engine.class_search import ClassGroups, load_class_groups, parse_class_groups, search_classes
from engine.errors import BadInputError
from engine.resources import imagenet_class_names, resource_path


@pytest.fixture(scope="module")
def names() -> list[str]:
    return imagenet_class_names()


def test_dog_lists_every_dog_breed_first(names):
    found = search_classes(names, "dog")
    assert found[:118] == list(range(151, 269))  # Chihuahua … Mexican hairless, in index order
    assert search_classes(names, "Dogs")[:118] == list(range(151, 269))


def test_cat_lists_the_domestic_cats_then_the_wild_ones(names):
    found = search_classes(names, "cat")
    assert found[:5] == [281, 282, 283, 284, 285]  # tabby has no "cat" in its name
    assert found[5:13] == list(range(286, 294))  # cougar … cheetah
    assert search_classes(names, "big cat") == list(range(286, 294))


def test_wolf_finds_the_wolves_and_the_coyote_first(names):
    assert search_classes(names, "wolf")[:4] == [269, 270, 271, 272]
    assert names[272] == "coyote"


def test_synonyms_find_the_class(names):
    assert search_classes(names, "puma")[0] == 286  # cougar
    assert search_classes(names, "polar bear")[0] == 296  # ice bear
    assert search_classes(names, "yorkie") == [names.index("Yorkshire terrier")]


def test_a_word_inside_a_name_matches_after_whole_names(names):
    found = search_classes(names, "barn")
    assert found == [names.index("barn"), names.index("barn spider")]
    assert search_classes(names, "no class is called this") == []


def test_numbers_and_empty_text_keep_their_meaning(names):
    assert search_classes(names, "")[:3] == [0, 1, 2]
    assert search_classes(names, "1")[0] == 1


def test_a_subset_model_is_searched_by_imagenet_number():
    # Labels 0, 1, 2 of a small model are ImageNet classes 1, 281 and 207.
    subset = ["goldfish", "tabby", "golden retriever"]
    assert search_classes(subset, "cat", [1, 281, 207]) == [1]
    assert search_classes(subset, "dog", [1, 281, 207]) == [2]


def test_without_a_table_only_names_match(names):
    assert search_classes(names, "puma", groups=ClassGroups()) == []


def test_the_shipped_table_names_real_classes(names):
    document = json.loads(resource_path("class_groups.json").read_text(encoding="utf-8"))
    for key, entry in document["synonyms"].items():
        assert names[int(key)] == entry["name"], key  # the table follows resources/imagenet_classes.json
    table = load_class_groups()
    assert all(0 <= index < 1000 for members in table.groups.values() for index in members)
    assert table.group("vehicle") and table.group("animal")


def test_a_broken_table_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(BadInputError, match="unknown group 'pet'"):
        parse_class_groups({"schema": 1, "groups": {"dog": {"classes": [151], "includes": ["pet"]}}})
    with pytest.raises(BadInputError, match="includes itself"):
        parse_class_groups({"schema": 1, "groups": {"a": {"includes": ["b"]}, "b": {"includes": ["a"]}}})
    with pytest.raises(BadInputError, match="schema"):
        parse_class_groups({"schema": 7})
    broken = tmp_path / "groups.json"
    broken.write_text(json.dumps({"schema": 1, "groups": {"dog": {"classes": ["x"]}}}))
    with pytest.raises(BadInputError, match=str(broken)):
        load_class_groups(broken)
