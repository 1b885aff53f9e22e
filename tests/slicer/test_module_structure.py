"""The module folder follows Slicer's conventions: checked statically, since Slicer cannot run here.

Slicer finds a scripted module by its file name and expects the classes <Name>, <Name>Widget and <Name>Test in it
(the Logic, <Name>Logic, lives in FewShot3DNodes and is imported into it by name); the widget loads
Resources/UI/<Name>.ui and reaches its widgets by object name; the parameter node binds to widgets whose dynamic
property SlicerParameterName names one of its fields; CMake installs only what it lists.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import MODULE_DIR

NAME = "FewShot3D"
SOURCE = MODULE_DIR / f"{NAME}.py"
UI = MODULE_DIR / "Resources" / "UI" / f"{NAME}.ui"
LOGIC_MODULE = "FewShot3DNodes.logic"
LOGIC = MODULE_DIR / "FewShot3DNodes" / "logic.py"
SLICER_ONLY = {"slicer", "qt", "ctk", "vtk", "PyTorchUtils", "SampleData"}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(SOURCE.read_text(), filename=str(SOURCE))


def _classes(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _base_names(cls: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in cls.bases}


def test_module_file_defines_the_classes_slicer_expects(tree):
    classes = _classes(tree) | _classes(ast.parse(LOGIC.read_text(), filename=str(LOGIC)))
    imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == LOGIC_MODULE]
    imported = {a.name for n in imports for a in n.names}
    assert f"{NAME}Logic" in imported  # the module's namespace has its Logic, as Slicer's own modules do
    expected = {
        NAME: "ScriptedLoadableModule",
        f"{NAME}Widget": "ScriptedLoadableModuleWidget",
        f"{NAME}Logic": "ScriptedLoadableModuleLogic",
        f"{NAME}Test": "ScriptedLoadableModuleTest",
    }
    for name, base in expected.items():
        assert name in classes, f"{name} missing"
        assert base in _base_names(classes[name]), f"{name} must derive from {base}"
    methods = {n.name for n in classes[f"{NAME}Widget"].body if isinstance(n, ast.FunctionDef)}
    assert {"setup", "cleanup", "enter", "exit"} <= methods
    test_methods = {n.name for n in classes[f"{NAME}Test"].body if isinstance(n, ast.FunctionDef)}
    assert "runTest" in test_methods and any(m.startswith("test_") for m in test_methods)
    # The module's metadata, set in its constructor.
    init = next(n for n in classes[NAME].body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assigned = {ast.unparse(t) for n in ast.walk(init) if isinstance(n, ast.Assign) for t in n.targets}
    assert {f"self.parent.{a}" for a in ("title", "categories", "contributors", "helpText")} <= assigned
    assert "Segmentation" in ast.unparse(init)


def _top_level_imports(tree: ast.Module) -> set[str]:
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module in ("FewShot3DLib", LOGIC_MODULE):
            top |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    return top - set(sys.stdlib_module_names) - {"__future__"}


def test_module_loads_before_its_python_dependencies_are_installed(tree):
    """Slicer imports the file at start-up: only Slicer's own modules, the stdlib-only dependencies helper and the
    Logic, which itself imports only those at its top (the engine inside its methods)."""
    logic = {f"{LOGIC_MODULE}.{NAME}Logic", f"{LOGIC_MODULE}.{NAME}ParameterNode"}
    assert _top_level_imports(tree) <= SLICER_ONLY | {"FewShot3DLib.dependencies"} | logic, _top_level_imports(tree)
    logic_tree = ast.parse(LOGIC.read_text())
    assert _top_level_imports(logic_tree) <= SLICER_ONLY | {"FewShot3DLib.dependencies"}, _top_level_imports(logic_tree)


def test_the_pure_layer_never_imports_slicer():
    for path in (MODULE_DIR / "FewShot3DLib").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & (SLICER_ONLY - {"vtk"}), (path.name, names & SLICER_ONLY)


def _ui_widgets() -> dict[str, ET.Element]:
    root = ET.parse(UI).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def test_ui_file_is_a_qt_designer_form_with_the_module_name():
    root = ET.parse(UI).getroot()
    assert root.tag == "ui" and root.findtext("class") == NAME
    top = root.find("widget")
    assert (top.get("class"), top.get("name")) == ("qMRMLWidget", NAME)
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert {c for c in used if c.startswith(("qMRML", "ctk"))} <= declared
    # Every node selector gets the scene from the top-level widget.
    receivers = {c.findtext("receiver") for c in root.iter("connection") if "mrmlSceneChanged" in c.findtext("signal")}
    selectors = {name for name, w in _ui_widgets().items() if w.get("class") == "qMRMLNodeComboBox"}
    assert selectors and selectors <= receivers


def test_every_widget_the_code_uses_is_in_the_ui_file(tree):
    used = {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self.ui"
    }
    widgets = _ui_widgets()
    assert used, "the widget reaches no .ui widget?"
    assert used <= set(widgets), used - set(widgets)
    assert 'self.resourcePath("UI/FewShot3D.ui")' in SOURCE.read_text()


def test_parameter_node_fields_are_bound_to_widgets(tree):
    wrapper = _classes(ast.parse(LOGIC.read_text()))[f"{NAME}ParameterNode"]
    assert "parameterNodeWrapper" in {ast.unparse(d) for d in wrapper.decorator_list}
    fields = {n.target.id for n in wrapper.body if isinstance(n, ast.AnnAssign)}
    assert {"inputVolume", "paintedSegmentation", "outputSegmentation", "backend", "device", "axis"} == fields
    bound = {}
    for widget in _ui_widgets().values():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget.get("class")
    assert set(bound) == fields
    # Choice-annotated strings bind to plain QComboBoxes; nodes to node selectors.
    assert {bound[f] for f in ("backend", "device", "axis")} == {"QComboBox"}
    assert {bound[f] for f in ("inputVolume", "paintedSegmentation", "outputSegmentation")} == {"qMRMLNodeComboBox"}


def _cmake_words(path: Path) -> str:
    return re.sub(r"(?m)^\s*#.*$", "", path.read_text())


def test_cmake_lists_every_file_of_the_module():
    text = _cmake_words(MODULE_DIR / "CMakeLists.txt").replace("${MODULE_NAME}", NAME)
    listed = set(re.findall(r"[\w/.-]+\.(?:py|png|ui|txt|json)", text)) - {"CMakeLists.txt"}
    on_disk = {
        p.relative_to(MODULE_DIR).as_posix()
        for p in MODULE_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name != "CMakeLists.txt"
    }
    assert listed == on_disk
    assert "slicerMacroBuildScriptedModule" in text and "WITH_GENERIC_TESTS" in text


def test_extension_cmake_has_the_metadata_the_extension_index_needs():
    text = _cmake_words(MODULE_DIR.parent / "CMakeLists.txt")
    values = dict(re.findall(r'set\((EXTENSION_\w+)\s+"([^"]*)"\)', text))
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL"):
        assert values.get(key), key
    assert values["EXTENSION_CATEGORY"] == "Segmentation"
    assert values["EXTENSION_DEPENDS"] == "PyTorch"
    assert f"add_subdirectory({NAME})" in text
    assert "Slicer_EXTENSION_GENERATE_CONFIG" in text and "Slicer_EXTENSION_CPACK" in text


def test_icon_is_a_real_128_pixel_png():
    from PIL import Image

    with Image.open(MODULE_DIR / "Resources" / "Icons" / f"{NAME}.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)
        assert len(icon.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 8  # a picture, not a blank square
