"""dgp-studio's desktop app (PySide6): paint what is missing, pick a class, restore.

The app never runs torch on the GUI thread: every engine call happens on one
long-lived engine thread (:mod:`dgp_studio.worker`). Modules the window needs
before it is shown import neither torch nor ``engine.api``.
"""

from __future__ import annotations

APP_NAME = "dgp-studio"
APP_DISPLAY_NAME = "DGP Studio"
