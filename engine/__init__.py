"""dgp-studio's engine: BigGAN, degradations and the Deep Generative Prior loop.

Depends on torch, numpy and pillow only; never on Qt or the desktop app.
"""

__version__ = "0.1.0"
