"""The notebook layer: magics, settings, the launch form, waiting without blocking widgets.

Nothing here is imported by ``import labloom``; ``%load_ext labloom`` loads ``magics``.
"""
