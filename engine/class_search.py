"""Find classes by what people call them: names, synonyms, numbers and categories.

A search text is matched against each class's name and its other names
(``resources/class_groups.json``: the lemmas of its WordNet synset and a few
everyday words), and against a small hand-made table of categories, so that
"dog" lists every dog breed, "cat" the domestic cats and then the wild ones,
and "wolf" the timber, white and red wolf and the coyote.

Qt-free: the app's class picker and any other front end use it alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.errors import BadInputError
from engine.resources import resource_path

CLASS_GROUPS_FILE = "class_groups.json"
CLASS_GROUPS_SCHEMA = 1

# How well a class matches, best first (the sort key's first part).
_EXACT, _GROUP, _PREFIX, _WORD_PREFIX, _CONTAINS = range(5)
_WORD_SPLIT = re.compile(r"[\s\-,'/()]+")


@dataclass(frozen=True)
class ClassGroups:
    """Search aids keyed by ImageNet index.

    ``groups`` maps a lower-case category word (and each of its aliases) to
    the ImageNet indices it stands for, in display order (its own classes,
    then those of the groups it includes). ``synonyms`` maps an ImageNet
    index to the class's other names.
    """

    groups: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    synonyms: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    def group(self, text: str) -> tuple[int, ...]:
        """The classes a category word stands for ("dogs" as "dog"); empty when it is none."""
        query = " ".join(text.strip().lower().split())
        found = self.groups.get(query)
        if found is None and query.endswith("s"):
            found = self.groups.get(query[:-1])
        return found or ()


def parse_class_groups(document: Mapping, *, source: str = CLASS_GROUPS_FILE) -> ClassGroups:
    """Build :class:`ClassGroups` from the JSON document (see ``resources/class_groups.json``).

    Raises
    ------
    BadInputError
        One sentence naming ``source`` and the problem (wrong schema, an unknown
        included group, an index that is not a number).
    """
    if document.get("schema") != CLASS_GROUPS_SCHEMA:
        raise BadInputError(f"{source}: expected schema {CLASS_GROUPS_SCHEMA}, found {document.get('schema')!r}.")
    raw_groups = document.get("groups", {})
    resolved: dict[str, tuple[int, ...]] = {}

    def members(name: str, visiting: tuple[str, ...]) -> tuple[int, ...]:
        if name in resolved:
            return resolved[name]
        if name not in raw_groups:
            raise BadInputError(f"{source}: group {visiting[-1]!r} includes the unknown group {name!r}.")
        if not isinstance(raw_groups[name], Mapping):
            raise BadInputError(f"{source}: group {name!r} is not a table of aliases, classes and includes.")
        if name in visiting:
            raise BadInputError(f"{source}: group {name!r} includes itself.")
        entry = raw_groups[name]
        ordered: list[int] = []
        for index in entry.get("classes", []):
            if not isinstance(index, int) or isinstance(index, bool):
                raise BadInputError(f"{source}: group {name!r} lists {index!r}, which is not a class index.")
            ordered.append(index)
        for included in entry.get("includes", []):
            ordered.extend(members(included, (*visiting, name)))
        unique = tuple(dict.fromkeys(ordered))
        resolved[name] = unique
        return unique

    groups: dict[str, tuple[int, ...]] = {}
    for name, entry in raw_groups.items():
        classes = members(name, ())
        for word in (name, *entry.get("aliases", [])):
            groups.setdefault(" ".join(word.lower().split()), classes)
    synonyms: dict[int, tuple[str, ...]] = {}
    for key, entry in document.get("synonyms", {}).items():
        if not str(key).isdigit():
            raise BadInputError(f"{source}: the synonyms key {key!r} is not a class index.")
        synonyms[int(key)] = tuple(str(name) for name in entry.get("also", []))
    return ClassGroups(groups=groups, synonyms=synonyms)


def load_class_groups(path: Path | None = None) -> ClassGroups:
    """Read the class-search table (the shipped ``resources/class_groups.json`` by default)."""
    if path is None:
        return _shipped_class_groups()
    return parse_class_groups(json.loads(Path(path).read_text(encoding="utf-8")), source=str(path))


@lru_cache(maxsize=1)
def _shipped_class_groups() -> ClassGroups:
    path = resource_path(CLASS_GROUPS_FILE)
    return parse_class_groups(json.loads(path.read_text(encoding="utf-8")), source=str(path))


def _words(text: str) -> list[str]:
    return [word for word in _WORD_SPLIT.split(text.lower()) if word]


_PREPARED: dict[tuple, tuple] = {}  # the last few class lists, lower-cased and split into words


def _prepared(
    class_names: tuple[str, ...], numbers: tuple[int, ...], table: ClassGroups
) -> list[tuple[list[str], list[list[str]]]]:
    """Per class: its names in lower case and each name's words (kept while the list is in use)."""
    key = (class_names, numbers, id(table))
    cached = _PREPARED.get(key)
    if cached is not None and cached[0] is table:
        return cached[1]
    prepared = []
    for index, name in enumerate(class_names):
        names = [name.lower(), *(other.lower() for other in table.synonyms.get(numbers[index], ()))]
        prepared.append((names, [_words(candidate) for candidate in names]))
    if len(_PREPARED) >= 4:
        _PREPARED.clear()
    _PREPARED[key] = (table, prepared)
    return prepared


def search_classes(
    class_names: Sequence[str],
    text: str,
    numbers: Sequence[int] | None = None,
    *,
    groups: ClassGroups | None = None,
) -> list[int]:
    """Indices of the classes matching a search text, best matches first.

    Parameters
    ----------
    class_names : sequence of str
        One name per class index (the model's own indices).
    text : str
        Empty: every class in index order. All digits: the class with exactly
        that number, then those whose number starts with it. Otherwise, in this
        order: classes named exactly ``text`` (or with it as another name); the
        classes of the category it names ("dog", "cat", "wolf", "vehicle"),
        in the category's order; names that start with it; names with a word
        that starts with it; names that contain every word of it. Matching
        ignores case and also searches each class's other names.
    numbers : sequence of int, optional
        The number each class is known by (its ImageNet index); default: its
        index. Categories and other names are looked up by these numbers.
    groups : ClassGroups, optional
        The search table; default: the shipped one. ``ClassGroups()`` searches
        names only.

    Returns
    -------
    list of int
        Model class indices, each at most once.
    """
    query = " ".join(text.strip().lower().split())
    if not query:
        return list(range(len(class_names)))
    numbers = list(range(len(class_names))) if not numbers else list(numbers)
    if query.isdigit():
        exact = [index for index, number in enumerate(numbers) if str(number) == query]
        prefixed = [
            index for index, number in enumerate(numbers) if str(number).startswith(query) and index not in exact
        ]
        return exact + prefixed
    table = load_class_groups() if groups is None else groups
    index_of_number = {number: index for index, number in enumerate(numbers)}
    group_rank = {
        index_of_number[number]: rank
        for rank, number in enumerate(table.group(query))
        if number in index_of_number
    }
    query_words = query.split()
    ranked: list[tuple[int, int, int]] = []
    for index, (names, words) in enumerate(_prepared(tuple(class_names), tuple(numbers), table)):
        if query in names:
            score = _EXACT
        elif index in group_rank:
            score = _GROUP
        elif any(candidate.startswith(query) for candidate in names):
            score = _PREFIX
        elif any(
            all(any(word.startswith(part) for word in candidate_words) for part in query_words)
            for candidate_words in words
        ):
            score = _WORD_PREFIX
        elif any(all(part in candidate for part in query_words) for candidate in names):
            score = _CONTAINS
        else:
            continue
        ranked.append((score, group_rank.get(index, 0), index))
    return [index for _score, _rank, index in sorted(ranked)]
