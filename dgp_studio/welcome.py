"""The welcome panel shown where the photo goes while none is open, and the bundled sample photos.

The samples live in ``dgp_studio/samples/`` (package data) and are described by
``samples.toml`` there: file, title, suggested task, optional class, author,
licence and source. One click on a sample card asks the window to open that
photo and start its suggested restoration in quick mode.

This module imports neither torch nor ``engine.imageio`` at import time: the
panel is built before the window is shown. :func:`read_sample` (which decodes
the files) runs on a background thread.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from dgp_studio import APP_DISPLAY_NAME
from engine.errors import BadInputError

LOG = logging.getLogger(__name__)

SAMPLES_FOLDER = Path(__file__).resolve().parent / "samples"
SAMPLES_FILE_NAME = "samples.toml"
SAMPLE_TASKS = ("colorize", "inpaint", "sr")
SAMPLE_SR_FACTORS = (2, 4, 8)
TASK_NAMES = {"colorize": "Colorize", "inpaint": "Inpaint", "sr": "Super-resolve"}
REQUIRED_KEYS = ("file", "title", "task", "author", "licence", "source")
OPTIONAL_KEYS = ("class_name", "sr_factor", "mask", "url")
THUMBNAIL_SIZE = QSize(156, 110)
CONTENT_MAX_WIDTH = 860
CONTENT_MARGIN = 28
CARD_SPACING = 12
BACKGROUND = "#26262a"  # the canvas's background: the panel sits where the photo will be

INTRODUCTION = (
    "DGP Studio repairs photos with a generative prior: a BigGAN model is fine-tuned on your photo "
    "until it reproduces what is there, and so fills in what is not. Colour a black-and-white photo, "
    "fill an area you paint over, or add detail to a small one \u2014 everything runs on this computer."
)


@dataclass(frozen=True)
class Sample:
    """One bundled sample photo and the restoration it demonstrates.

    ``task`` is ``colorize``, ``inpaint`` or ``sr``; ``sr_factor`` is set for
    ``sr``, ``mask_path`` (white = fill) for ``inpaint``. ``class_name`` names a
    class of the built-in model (None, or a name the loaded model lacks, = Auto).
    """

    path: Path
    title: str
    task: str
    author: str
    licence: str
    source: str
    class_name: str | None = None
    sr_factor: int | None = None
    mask_path: Path | None = None
    url: str | None = None

    def task_text(self) -> str:
        """``"Super-resolve \u00d74"``, ``"Colorize \u00b7 tabby"``: what one click runs."""
        text = TASK_NAMES[self.task]
        if self.sr_factor:
            text += f" \u00d7{self.sr_factor}"
        if self.class_name:
            text += f" \u00b7 {self.class_name}"
        return text

    def credit_text(self) -> str:
        """``"CC0 1.0 \u00b7 Stefan van der Walt"``: the licence line under the card."""
        return f"{self.licence} \u00b7 {self.author}"


def load_samples(folder: Path = SAMPLES_FOLDER) -> list[Sample]:
    """The samples listed in ``folder/samples.toml``, in file order.

    Raises
    ------
    BadInputError
        When the file is missing or not valid TOML, an entry lacks a key or has
        a bad value, or a photo or mask it names is missing (the sentence names
        the file and the entry).
    """
    listing = Path(folder) / SAMPLES_FILE_NAME
    try:
        data = tomllib.loads(listing.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"The sample list {listing} could not be read: {error}.") from error
    except tomllib.TOMLDecodeError as error:
        raise BadInputError(f"The sample list {listing} is not valid TOML ({error}).") from error
    entries = data.get("sample", [])
    if not isinstance(entries, list):
        raise BadInputError(f"In {listing}, sample must be an array of tables ([[sample]]).")
    return [_sample_from(entry, number, listing) for number, entry in enumerate(entries, start=1)]


def _sample_from(entry: object, number: int, listing: Path) -> Sample:
    where = f"In {listing}, sample {number}"
    if not isinstance(entry, dict):
        raise BadInputError(f"{where} is not a table.")
    missing = [key for key in REQUIRED_KEYS if not isinstance(entry.get(key), str) or not entry[key].strip()]
    if missing:
        raise BadInputError(f"{where} has no {missing[0]} (a non-empty string).")
    unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise BadInputError(f"{where} has an unknown key {unknown[0]!r}.")
    task = entry["task"]
    if task not in SAMPLE_TASKS:
        raise BadInputError(f"{where}: task = {task!r} is not one of {', '.join(SAMPLE_TASKS)}.")
    sr_factor = entry.get("sr_factor")
    if task == "sr" and sr_factor not in SAMPLE_SR_FACTORS:
        raise BadInputError(f"{where}: sr_factor = {sr_factor!r} is not one of 2, 4 or 8.")
    if task != "sr" and sr_factor is not None:
        raise BadInputError(f'{where}: sr_factor is only for the task "sr".')
    path = listing.parent / entry["file"]
    if not path.is_file():
        raise BadInputError(f"{where} names the photo {path.name}, which is not in {listing.parent}.")
    mask_path = None
    if task == "inpaint":
        if not isinstance(entry.get("mask"), str):
            raise BadInputError(f"{where} is an inpainting sample without a mask.")
        mask_path = listing.parent / entry["mask"]
        if not mask_path.is_file():
            raise BadInputError(f"{where} names the mask {mask_path.name}, which is not in {listing.parent}.")
    elif "mask" in entry:
        raise BadInputError(f'{where}: mask is only for the task "inpaint".')
    class_name = entry.get("class_name")
    if class_name is not None and (not isinstance(class_name, str) or not class_name.strip()):
        raise BadInputError(f"{where}: class_name must be a non-empty string.")
    return Sample(
        path=path,
        title=entry["title"],
        task=task,
        author=entry["author"],
        licence=entry["licence"],
        source=entry["source"],
        class_name=class_name,
        sr_factor=sr_factor,
        mask_path=mask_path,
        url=entry.get("url"),
    )


def read_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode a sample's photo ``(H, W, 3)`` ``uint8`` and its mask ``(H, W)`` ``uint8`` (1 = fill).

    Slow (it imports the engine's image reader): call it on a background thread.
    """
    from engine.imageio import load_image, load_mask

    rgb = load_image(sample.path).rgb
    if sample.mask_path is None:
        return rgb, None
    mask = load_mask(sample.mask_path, size=(rgb.shape[1], rgb.shape[0]))
    return rgb, (mask >= 0.5).astype(np.uint8)


def class_index_for(class_names: Sequence[str], wanted: str | None) -> int | None:
    """The index of ``wanted`` among the model's class names (case-insensitive), or None (Auto)."""
    if not wanted:
        return None
    folded = wanted.casefold()
    for index, name in enumerate(class_names):
        if name.casefold() == folded:
            return index
    return None


def sample_thumbnail(path: Path, size: QSize = THUMBNAIL_SIZE) -> QPixmap:
    """The photo cropped to fill ``size`` (centred), decoded at a reduced size; empty if unreadable."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    full = reader.size()
    if full.isValid() and full.width() > 0 and full.height() > 0:
        scale = max(size.width() / full.width(), size.height() / full.height())
        reader.setScaledSize(QSize(max(round(full.width() * scale), 1), max(round(full.height() * scale), 1)))
    image = reader.read()
    if image.isNull():
        LOG.warning("the sample thumbnail %s could not be read: %s", path, reader.errorString())
        return QPixmap()
    image = image.scaled(
        size, Qt.AspectRatioMode.KeepAspectRatioByExpanding, Qt.TransformationMode.SmoothTransformation
    )
    left = (image.width() - size.width()) // 2
    top = (image.height() - size.height()) // 2
    return QPixmap.fromImage(
        image.copy(QRect(left, top, size.width(), size.height())).convertToFormat(QImage.Format.Format_RGB32)
    )


class SampleCard(QPushButton):
    """A clickable card: thumbnail, title, what one click runs, licence and author."""

    def __init__(self, sample: Sample, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sample = sample
        self.setObjectName("sampleCard")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setAccessibleName(f"Sample: {sample.title}, {sample.task_text()}")
        tooltip = (
            f"Open {sample.title} and start a quick {TASK_NAMES[sample.task].lower()} run.\n"
            f"Photo: {sample.author}, {sample.licence}.\nSource: {sample.source}"
        )
        self.setToolTip(tooltip + (f"\n{sample.url}" if sample.url else ""))

        self.thumbnail = QLabel()
        self.thumbnail.setFixedSize(THUMBNAIL_SIZE)
        self.thumbnail.setPixmap(sample_thumbnail(sample.path))
        self.title_label = QLabel(sample.title)
        self.title_label.setObjectName("sampleTitle")
        self.task_label = QLabel(sample.task_text())
        self.task_label.setObjectName("sampleTask")
        self.credit_label = QLabel(sample.credit_text())
        self.credit_label.setObjectName("sampleCredit")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(3)
        layout.addWidget(self.thumbnail)
        layout.addSpacing(3)
        for label in (self.title_label, self.task_label, self.credit_label):
            label.setFixedWidth(THUMBNAIL_SIZE.width())
            label.setWordWrap(True)
            layout.addWidget(label)
        layout.addStretch(1)
        for child in (self.thumbnail, self.title_label, self.task_label, self.credit_label):
            child.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        # QPushButton sizes itself for its own text; the card is as large as its layout,
        # with the height the word-wrapped labels need at the card's width.
        layout = self.layout()
        width = layout.sizeHint().width()
        height = layout.heightForWidth(width) if layout.hasHeightForWidth() else layout.sizeHint().height()
        return QSize(width, height)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()


class WelcomePanel(QWidget):
    """What the app does, an Open button and one card per sample photo.

    Parameters
    ----------
    samples : sequence of Sample, optional
        The cards to show (default: :func:`load_samples`; a broken sample list
        is logged and shown as one sentence instead of the cards).

    Signals
    -------
    openRequested()
        The user clicked "Open photo…".
    sampleChosen(object)
        The user clicked a sample card (its :class:`Sample`).
    """

    openRequested = Signal()
    sampleChosen = Signal(object)

    def __init__(self, samples: Sequence[Sample] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomePanel")
        problem = None
        if samples is None:
            try:
                samples = load_samples()
            except BadInputError as error:
                LOG.warning("%s", error)
                problem = str(error)
                samples = []
        self._samples = list(samples)

        title = QLabel(f"Welcome to {APP_DISPLAY_NAME}")
        title.setObjectName("welcomeTitle")
        introduction = QLabel(INTRODUCTION)
        introduction.setObjectName("welcomeText")
        introduction.setWordWrap(True)
        self.open_button = QPushButton("Open photo\u2026")
        self.open_button.setObjectName("welcomeOpen")
        self.open_button.setToolTip("Open a photo from your computer (Ctrl+O)")
        self.open_button.clicked.connect(self.openRequested)
        open_hint = QLabel("or drop a photo here, or paste one (Ctrl+V)")
        open_hint.setObjectName("welcomeHint")
        open_hint.setWordWrap(True)
        open_row = QHBoxLayout()
        open_row.setSpacing(12)
        open_row.addWidget(self.open_button)
        open_row.addWidget(open_hint, 1)

        samples_heading = QLabel("Or try a sample: one click opens it and starts a quick restoration.")
        samples_heading.setObjectName("welcomeText")
        samples_heading.setWordWrap(True)
        self.sample_cards: list[SampleCard] = []
        # The cards wrap onto more rows when the panel is narrow (see _reflow_cards).
        self._cards_grid = QGridLayout()
        self._cards_grid.setSpacing(CARD_SPACING)
        self._card_columns = 0
        for sample in self._samples:
            card = SampleCard(sample)
            card.clicked.connect(lambda _checked=False, chosen=sample: self.sampleChosen.emit(chosen))
            self.sample_cards.append(card)
        cards_row = QHBoxLayout()
        cards_row.addLayout(self._cards_grid)
        cards_row.addStretch(1)
        self.problem_label = QLabel(problem or "")
        self.problem_label.setObjectName("welcomeHint")
        self.problem_label.setWordWrap(True)
        self.problem_label.setVisible(bool(problem))

        content = QWidget()
        content.setObjectName("welcomeContent")
        content.setMaximumWidth(CONTENT_MAX_WIDTH)
        column = QVBoxLayout(content)
        column.setContentsMargins(CONTENT_MARGIN, 28, CONTENT_MARGIN, 28)
        column.setSpacing(10)
        column.addWidget(title)
        column.addWidget(introduction)
        column.addSpacing(8)
        column.addLayout(open_row)
        column.addSpacing(18)
        column.addWidget(samples_heading)
        column.addLayout(cards_row)
        column.addWidget(self.problem_label)
        column.addStretch(1)

        centring = QWidget()
        centring.setObjectName("welcomeContent")
        centring_layout = QHBoxLayout(centring)
        centring_layout.setContentsMargins(0, 0, 0, 0)
        # The column takes the width up to its maximum; the stretches centre it beyond that.
        centring_layout.addStretch(1)
        centring_layout.addWidget(content, 1000)
        centring_layout.addStretch(1)
        self._scroll = QScrollArea()
        self._scroll.setObjectName("welcomeScroll")
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setWidgetResizable(True)
        self._scroll.setWidget(centring)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._scroll)
        self._reflow_cards()

        self.setStyleSheet(
            f"""
            #welcomePanel, #welcomeScroll, #welcomeContent {{ background: {BACKGROUND}; }}
            #welcomeTitle {{ color: #f0f0f2; font-size: 20pt; font-weight: 600; }}
            #welcomeText {{ color: #d4d4d8; font-size: 11pt; }}
            #welcomeHint {{ color: #9a9aa2; }}
            #welcomeOpen {{
                padding: 7px 18px; font-weight: bold; color: #ffffff;
                background: #2f6fd0; border: 1px solid #2a62b8; border-radius: 5px;
            }}
            #welcomeOpen:hover {{ background: #3a7ce0; }}
            #sampleCard {{
                background: #303036; border: 1px solid #45454e; border-radius: 8px; text-align: left;
            }}
            #sampleCard:hover, #sampleCard:focus {{ background: #36363d; border-color: #5b8fe0; }}
            #sampleCard:pressed {{ background: #2b2b31; }}
            #sampleTitle {{ color: #f0f0f2; font-weight: bold; }}
            #sampleTask {{ color: #8fb8f0; }}
            #sampleCredit {{ color: #9a9aa2; font-size: 8pt; }}
            """
        )

    def samples(self) -> list[Sample]:
        return list(self._samples)

    def card_columns(self) -> int:
        """How many sample cards share a row at the panel's current width."""
        return self._card_columns

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._reflow_cards()

    def _reflow_cards(self) -> None:
        if not self.sample_cards:
            return
        # The panel's own width is current here (the scroll area's viewport is resized later); the
        # scroll bar's width is always set aside, so its coming and going cannot change the count.
        viewport_width = self.width() - self._scroll.verticalScrollBar().sizeHint().width()
        available = min(viewport_width, CONTENT_MAX_WIDTH) - 2 * CONTENT_MARGIN
        card_width = max(card.sizeHint().width() for card in self.sample_cards)
        fitting = (available + CARD_SPACING) // (card_width + CARD_SPACING)
        columns = max(1, min(len(self.sample_cards), fitting))
        if columns == self._card_columns:
            return
        self._card_columns = columns
        for card in self.sample_cards:
            self._cards_grid.removeWidget(card)
        for position, card in enumerate(self.sample_cards):
            self._cards_grid.addWidget(card, position // columns, position % columns)
