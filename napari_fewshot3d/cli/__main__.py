"""`python -m napari_fewshot3d.cli` runs the `fewshot3d` command."""

import sys

from .main import main

sys.exit(main())
