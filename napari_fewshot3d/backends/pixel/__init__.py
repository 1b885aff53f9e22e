"""The pixel-classifier backend (ilastik-style): filter bank, forests, structures. See :mod:`.backend`."""
