"""Internal. Notebook to module (``labloom export``) and loading run targets
(``file.py:flow``, ``notebook.ipynb[:flow]``)."""
