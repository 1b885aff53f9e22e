"""The Slicer module's pure-Python layer: geometry, annotation state, background jobs, dependencies.

Nothing here imports ``slicer``, ``qt`` or ``ctk``, so that all of it runs (and is tested) outside 3D Slicer;
``FewShot3D.py`` is the thin layer that reads and writes MRML nodes and drives the GUI.
"""
