"""Help: the About box, the keyboard-shortcut sheet and the way to the guide.

The shortcut sheet is built from the window's own ``QAction`` objects, so it
lists exactly the shortcuts the app answers to.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from dgp_studio import APP_DISPLAY_NAME

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
SAMPLE_LICENSES = PACKAGE_DIR / "samples" / "LICENSES.md"
ONLINE_GUIDE_NAME = "README.md"  # the guide: the README's desktop-app section and the docs beside it
# Libraries whose licences the app is distributed under (their texts ship in their installed packages).
THIRD_PARTY = (
    ("PySide6 (Qt for Python)", "LGPL-3.0"),
    ("Qt 6", "LGPL-3.0"),
    ("PyTorch", "BSD-3-Clause"),
    ("NumPy", "BSD-3-Clause"),
    ("Pillow", "MIT-CMU (HPND)"),
    ("safetensors", "Apache-2.0"),
    ("platformdirs", "MIT"),
)


def guide_path() -> Path | None:
    """The user guide on this computer (the README beside the app's code), or None in a bundle without it."""
    path = REPO_ROOT / ONLINE_GUIDE_NAME
    return path if path.is_file() else None


def open_guide() -> bool:
    """Open the guide in the desktop's viewer; False when there is none or it could not be opened."""
    path = guide_path()
    return path is not None and QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """``(what, keys)`` for every action with a shortcut, in the order given; the text without ``&``
    and ``…``, the keys as the platform writes them (several joined by "or")."""
    rows: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for action in actions:
        keys = [sequence.toString(QKeySequence.SequenceFormat.NativeText) for sequence in action.shortcuts()]
        keys = [key for key in keys if key]
        if not keys:
            continue
        text = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("\u2026").strip()
        row = (text or action.toolTip(), " or ".join(dict.fromkeys(keys)))
        if row not in seen:
            seen.add(row)
            rows.append(row)
    return rows


class ShortcutsDialog(QDialog):
    """A table of every keyboard shortcut the window's actions have."""

    def __init__(self, actions: Iterable[QAction], *, extra: Iterable[tuple[str, str]] = (),
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Keyboard shortcuts \u2014 {APP_DISPLAY_NAME}")
        rows = shortcut_rows(actions) + list(extra)
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Command", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        for row, (text, keys) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(text))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(460, 560)

    def rows(self) -> list[tuple[str, str]]:
        return [
            (self.table.item(row, 0).text(), self.table.item(row, 1).text()) for row in range(self.table.rowCount())
        ]


def about_html(*, version: str, model_name: str, model_identity: str) -> str:
    """The About box's text (rich text)."""
    licences = "".join(
        f"<li>{html.escape(name)}: {html.escape(licence)}</li>" for name, licence in THIRD_PARTY
    )
    model = html.escape(model_name) if model_name else "not loaded yet"
    identity = f" <br>Identity: <code>{html.escape(model_identity)}</code>" if model_identity else ""
    return (
        f"<h3>{html.escape(APP_DISPLAY_NAME)} {html.escape(version)}</h3>"
        "<p>Restore photos with a Deep Generative Prior (Pan et al., <i>Exploiting Deep Generative Prior "
        "for Versatile Image Restoration and Manipulation</i>, TPAMI 2021).</p>"
        f"<p><b>Model:</b> {model}{identity}</p>"
        "<p><b>Licences.</b> The sample photos and their credits: "
        f'<a href="{QUrl.fromLocalFile(str(SAMPLE_LICENSES)).toString()}">samples/LICENSES.md</a>. '
        "The built-in model is trained on Tiny ImageNet (ImageNet terms: non-commercial research and "
        "education). Third-party libraries, each under its own licence (the texts ship with each "
        f"installed package):</p><ul>{licences}</ul>"
    )


class AboutDialog(QDialog):
    """Version, the model in use (name and identity) and the licences."""

    def __init__(self, *, version: str, model_name: str = "", model_identity: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"About {APP_DISPLAY_NAME}")
        self.text_label = QLabel(about_html(version=version, model_name=model_name, model_identity=model_identity))
        self.text_label.setTextFormat(Qt.TextFormat.RichText)
        self.text_label.setWordWrap(True)
        self.text_label.setOpenExternalLinks(True)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text_label)
        layout.addWidget(buttons)
        self.setMinimumWidth(480)
