"""Internal. Flows from files: notebook to module (``labloom export``), the one magic-line
grammar (``magic_grammar``), loading run targets (``file.py:flow``, ``notebook.ipynb[:flow]``),
and retrying a recorded run from its file or notebook (``retry``)."""
