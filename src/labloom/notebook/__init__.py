"""The notebook layer: magics, settings, the launcher, waiting without blocking widgets.

Nothing here is imported by ``import labloom``; ``%load_ext labloom`` loads ``magics``.
"""
