"""Pick what the photo shows: a searchable list of the model's classes, or "Auto".

Searching matches a class by its name, its other names and the categories it
belongs to ("dog" lists every dog breed, "wolf" the wolves and the coyote), or
by its number when the text is one ("1" lists class 1 first, then 10, 11, …);
see :mod:`engine.class_search`. What the list highlights is what Restore runs:
a search that hides the chosen class puts the choice back to "Auto".
After an automatic run the picker shows the prior's top suggestions; clicking
one selects that class and asks for a re-run with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.class_search import search_classes as _search_classes

AUTO_LABEL = "Auto (let the prior choose)"
MAX_SUGGESTIONS = 5
_CLASS_INDEX_ROLE = Qt.ItemDataRole.UserRole
_AUTO = -1  # list data of the "Auto" row


def class_label(index: int, name: str) -> str:
    """``"1 · goldfish, Carassius auratus"`` — index first so numbers line up."""
    return f"{index} \u00b7 {name}"


def search_classes(class_names: Sequence[str], text: str, numbers: Sequence[int] | None = None) -> list[int]:
    """Indices of the classes matching a search text, best matches first.

    Names, other names (synonyms) and categories ("dog", "cat", "wolf") are
    searched: see :func:`engine.class_search.search_classes`.
    """
    return _search_classes(class_names, text, numbers)


class ClassPicker(QWidget):
    """Searchable class list with an "Auto" choice and post-run suggestions.

    Signals
    -------
    classChanged(object)
        The chosen class index, or None for Auto.
    rerunRequested(int)
        A suggestion was clicked: re-run with this class.
    """

    classChanged = Signal(object)
    rerunRequested = Signal(int)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        title: str = "What does the photo show?",
        auto_label: str = AUTO_LABEL,
        for_restore: bool = False,
    ) -> None:
        super().__init__(parent)
        self._class_names: list[str] = []
        self._class_numbers: list[int] = []
        self._selected: int | None = None
        self._auto_label = auto_label

        self.search_field = QLineEdit()
        self.search_field.setPlaceholderText("Search classes by name or number")
        self.search_field.setClearButtonEnabled(True)
        self.search_field.textChanged.connect(self._apply_filter)
        self.search_field.returnPressed.connect(self._select_first_match)
        self.search_field.installEventFilter(self)

        self.no_match_label = QLabel()
        self.no_match_label.setWordWrap(True)
        self.no_match_label.setStyleSheet("color: palette(mid);")
        self.no_match_label.setVisible(False)
        self.choice_label = QLabel()
        self.choice_label.setWordWrap(True)
        self.pin_check = QCheckBox("Keep this class for the next photo")
        self.pin_check.setToolTip("Without this, opening another photo puts the class back to Auto")
        # The restore panel's picker says what Restore runs with and can keep it for the next photo.
        self.choice_label.setVisible(for_restore)
        self.pin_check.setVisible(for_restore)

        self.class_list = QListWidget()
        self.class_list.setUniformItemSizes(True)
        self.class_list.currentItemChanged.connect(self._on_current_changed)
        self.classChanged.connect(lambda _index: self._show_choice())
        self._apply_filter("")
        self._show_choice()

        self.suggestions_label = QLabel("Suggestions from the last automatic run:")
        self.suggestions_label.setWordWrap(True)
        self._suggestion_row = QVBoxLayout()
        self._suggestion_row.setSpacing(2)
        self.suggestion_buttons: list[QPushButton] = []
        suggestions = QWidget()
        suggestions_layout = QVBoxLayout(suggestions)
        suggestions_layout.setContentsMargins(0, 0, 0, 0)
        suggestions_layout.addWidget(self.suggestions_label)
        suggestions_layout.addLayout(self._suggestion_row)
        self._suggestions_box = suggestions
        self._suggestions_box.setVisible(False)

        header = QHBoxLayout()
        header.addWidget(QLabel(title))
        header.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.search_field)
        layout.addWidget(self.no_match_label)
        layout.addWidget(self.class_list, 1)
        layout.addWidget(self.choice_label)
        layout.addWidget(self.pin_check)
        layout.addWidget(self._suggestions_box)

    # ------------------------------------------------------------- classes

    def set_class_names(self, class_names: Sequence[str], numbers: Sequence[int] | None = None) -> None:
        """Fill the list with one row per class; the selection goes back to Auto.

        ``numbers`` are shown and searched instead of the model's own indices
        (ImageNet indices, so "1 · goldfish" whatever the model).
        """
        self._class_names = list(class_names)
        self._class_numbers = list(numbers) if numbers else list(range(len(class_names)))
        self._selected = None
        self.clear_suggestions()
        self._apply_filter(self.search_field.text())
        self.classChanged.emit(None)

    def class_names(self) -> list[str]:
        return list(self._class_names)

    def class_numbers(self) -> list[int]:
        return list(self._class_numbers)

    def class_number(self, index: int) -> int:
        """The number shown for model class ``index``."""
        return self._class_numbers[index] if 0 <= index < len(self._class_numbers) else index

    def known_class_number(self, index: int | None) -> int | None:
        """The number shown for model class ``index``; None when it is not one of the listed classes."""
        if index is None or not 0 <= index < len(self._class_numbers):
            return None
        return self._class_numbers[index]

    def class_name(self, index: int | None) -> str:
        """The name of class ``index`` ("Auto" for None; ``"class N"`` for an index the model lacks)."""
        if index is None:
            return "Auto"
        if 0 <= index < len(self._class_names):
            return self._class_names[index]
        return f"class {index}"

    def class_text(self, index: int | None) -> str:
        """Class ``index`` as the list shows it (``"967 · espresso"``): the number users know, never
        the model's own index ("Auto" for None)."""
        if index is None or not 0 <= index < len(self._class_names):
            return self.class_name(index)
        return class_label(self.class_number(index), self._class_names[index])

    # ----------------------------------------------------------- selection

    def selected_class(self) -> int | None:
        """The chosen class index, or None for Auto (kept while a search hides it)."""
        return self._selected

    def set_selected_class(self, index: int | None) -> None:
        """Select a class (None = Auto); clears a search that would hide it."""
        if index is not None and not 0 <= index < len(self._class_names):
            raise ValueError(f"class index {index} is outside the model's {len(self._class_names)} classes")
        if index is not None and index not in self.visible_class_indices():
            self.search_field.clear()
        row = self._row_of(index)
        if row is not None:
            self.class_list.setCurrentRow(row)  # emits through _on_current_changed
            self.class_list.scrollToItem(self.class_list.item(row))
        if self._selected != index:
            self._selected = index
            self.classChanged.emit(index)

    def visible_class_indices(self) -> list[int]:
        """Class indices the list shows now, in display order (Auto excluded)."""
        return [
            int(self.class_list.item(row).data(_CLASS_INDEX_ROLE))
            for row in range(1, self.class_list.count())
        ]

    def _row_of(self, index: int | None) -> int | None:
        wanted = _AUTO if index is None else index
        for row in range(self.class_list.count()):
            if int(self.class_list.item(row).data(_CLASS_INDEX_ROLE)) == wanted:
                return row
        return None

    def _apply_filter(self, text: str) -> None:
        # Rebuilding the rows (a few thousand at most) is simpler and faster than
        # hiding and re-ordering them, and keeps the best match right under Auto.
        ranked = search_classes(self._class_names, text, self._class_numbers)
        self.class_list.blockSignals(True)
        self.class_list.setUpdatesEnabled(False)
        self.class_list.clear()
        auto_item = QListWidgetItem(self._auto_label)
        auto_item.setData(_CLASS_INDEX_ROLE, _AUTO)
        self.class_list.addItem(auto_item)
        for index in ranked:
            item = QListWidgetItem(class_label(self.class_number(index), self._class_names[index]))
            item.setData(_CLASS_INDEX_ROLE, index)
            self.class_list.addItem(item)
        row = self._row_of(self._selected)
        hidden = row is None
        self.class_list.setCurrentRow(0 if hidden else row)
        self.class_list.setUpdatesEnabled(True)
        self.class_list.blockSignals(False)
        query = text.strip()
        self.no_match_label.setText(f"No class matches \u201c{query}\u201d." if query and not ranked else "")
        self.no_match_label.setVisible(bool(query) and not ranked)
        if hidden and self._selected is not None:
            # What runs is what is shown: a hidden class is no longer the choice.
            self._selected = None
            self.classChanged.emit(None)

    def is_pinned(self) -> bool:
        """Whether the chosen class is kept when another photo is opened."""
        return self.pin_check.isChecked()

    def reset_for_new_photo(self) -> None:
        """Another photo was opened: back to Auto with no search, unless the class is pinned."""
        self.clear_suggestions()
        if self.is_pinned():
            return
        self.search_field.clear()
        self.set_selected_class(None)

    def _show_choice(self) -> None:
        self.choice_label.setText(f"Restore runs with: {self.class_text(self._selected)}")

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Down in the search field moves into the list, onto the first match.
        if (
            watched is self.search_field
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Down
        ):
            self.class_list.setFocus(Qt.FocusReason.OtherFocusReason)
            if self.class_list.currentRow() <= 0 and self.class_list.count() > 1:
                self.class_list.setCurrentRow(1)
            return True
        return super().eventFilter(watched, event)

    def _select_first_match(self) -> None:
        visible = self.visible_class_indices()
        if visible:
            self.set_selected_class(visible[0])

    def _on_current_changed(self, current: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        if current is None:
            return
        value = int(current.data(_CLASS_INDEX_ROLE))
        index = None if value == _AUTO else value
        if index != self._selected:
            self._selected = index
            self.classChanged.emit(index)

    # --------------------------------------------------------- suggestions

    def show_suggestions(self, top_classes: Sequence[tuple[int, float]]) -> None:
        """Offer up to five classes from an automatic run: ``(index, loss)`` pairs, best first."""
        self.clear_suggestions()
        for rank, (index, loss) in enumerate(top_classes[:MAX_SUGGESTIONS], start=1):
            button = QPushButton(f"{rank}. {self.class_name(index)}  (loss {loss:.3g})")
            button.setToolTip(f"Select class {self.class_number(index)} and restore again with it")
            button.setProperty("class_index", int(index))
            button.setStyleSheet("text-align: left; padding: 2px 6px;")
            button.clicked.connect(lambda _checked=False, chosen=index: self._on_suggestion(chosen))
            self._suggestion_row.addWidget(button)
            self.suggestion_buttons.append(button)
        self._suggestions_box.setVisible(bool(self.suggestion_buttons))

    def clear_suggestions(self) -> None:
        for button in self.suggestion_buttons:
            self._suggestion_row.removeWidget(button)
            button.deleteLater()
        self.suggestion_buttons = []
        self._suggestions_box.setVisible(False)

    def _on_suggestion(self, index: int) -> None:
        if 0 <= index < len(self._class_names):
            self.set_selected_class(index)
        self.rerunRequested.emit(index)
