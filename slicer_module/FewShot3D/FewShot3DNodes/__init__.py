"""The module's MRML layer: the Logic that reads and writes Slicer nodes (it imports ``slicer``; ``FewShot3DLib``
never does)."""
