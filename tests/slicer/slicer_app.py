"""The parts of the 3D Slicer application that the ``slicer-core`` wheel lacks, as thin as the module needs them.

``slicer-core`` (PyPI, by Kitware) is Slicer's own C++ core without Qt: the MRML scene and nodes, the storage nodes
(NIfTI, NRRD, ``.seg.nrrd``), the volumes / segmentations / transforms / colors logics, and ``slicer/util.py``. What a
running Slicer adds on top, and what the module and ``slicer.util`` reach through it, is provided here, following
Slicer's documented behaviour:

- ``slicer.mrmlScene`` and ``slicer.app``: one real ``vtkMRMLScene`` with a real ``vtkSlicerApplicationLogic``;
  ``slicer.app`` answers ``temporaryPath``, ``applicationLogic()``, ``coreIOManager()`` and says it runs in testing
  mode (so ``slicer.util``'s message boxes only log, as they do in Slicer's own test runs);
- ``slicer.modules.<name>.logic()`` for the module logics the code calls, each a real logic on that scene;
- an I/O manager that maps ``loadNodes`` / ``saveNodes`` (what ``slicer.util.loadVolume``, ``loadSegmentation``,
  ``loadLabelVolume`` and ``saveNode`` call) onto the real logics and storage nodes;
- ``slicer.ScriptedLoadableModule`` and ``slicer.parameterNodeWrapper``: the base classes and the typed parameter-node
  access that ``FewShot3D.py`` uses (its widget needs Qt and is refused);
- an empty ``qt`` module, only so that ``FewShot3D.py`` imports: nothing Qt can run here.

Everything a test asserts about (geometry, resampling, segment import/export, file formats) is Slicer's own code.
"""

from __future__ import annotations

import logging
import sys
import types
import unittest
from pathlib import Path
from typing import Annotated, get_args, get_origin, get_type_hints

import slicer  # the wheel's package: names are added to it only after it has imported itself
import slicer.util

# Bits of vtkSlicerVolumesLogic.AddArchetypeVolume's loadingOptions (documented in its docstring).
_LABELMAP, _CENTERED, _SINGLE_FILE, _AUTO_WINDOW_LEVEL, _DISCARD_ORIENTATION = 1, 2, 4, 8, 16
_VOLUME_OPTIONS = {
    "labelmap": _LABELMAP,
    "center": _CENTERED,
    "singleFile": _SINGLE_FILE,
    "autoWindowLevel": _AUTO_WINDOW_LEVEL,
    "discardOrientation": _DISCARD_ORIENTATION,
}
SEGMENTATION_FILE, VOLUME_FILE, LABEL_VOLUME_FILE = "SegmentationFile", "VolumeFile", "LabelVolumeFile"


class Module:
    """What ``slicer.modules.<name>`` gives the code: the module's logic."""

    def __init__(self, name: str, logic) -> None:
        self.name = name
        self._logic = logic

    def logic(self):
        return self._logic


class IOManager:
    """``loadNodes`` / ``saveNodes`` by file type, through the real logics and storage nodes."""

    def __init__(self, app: Application) -> None:
        self.app = app

    def fileType(self, filename) -> str:
        return SEGMENTATION_FILE if str(filename).lower().endswith(".seg.nrrd") else VOLUME_FILE

    def fileWriterFileType(self, node) -> str:
        return SEGMENTATION_FILE if node.IsA("vtkMRMLSegmentationNode") else VOLUME_FILE

    def loadNodes(self, fileType, properties, loadedNodes=None, userMessages=None) -> bool:
        fileName = str(properties["fileName"])
        name = properties.get("name") or _node_name(fileName)
        if fileType == SEGMENTATION_FILE:
            node = self.app.modules.segmentations.logic().LoadSegmentationFromFile(
                fileName, bool(properties.get("autoOpacities", True)), name, None, userMessages
            )
        elif fileType in (VOLUME_FILE, LABEL_VOLUME_FILE):
            options = sum(bit for key, bit in _VOLUME_OPTIONS.items() if properties.get(key))
            if fileType == LABEL_VOLUME_FILE:
                options |= _LABELMAP
            node = self.app.modules.volumes.logic().AddArchetypeVolume(fileName, name, options, None, userMessages)
        else:
            raise ValueError(f"this stand-in reads no {fileType!r}")
        if node is None:
            return False
        if loadedNodes is not None:
            loadedNodes.AddItem(node)
        return True

    def saveNodes(self, fileType, properties, userMessages=None) -> bool:
        """Write the node with its storage node (the default one for its class when it has none yet)."""
        node = self.app.mrmlScene().GetNodeByID(properties["nodeID"])
        if node is None:
            return False
        storage = node.GetStorageNode()
        if storage is None:
            if not node.AddDefaultStorageNode():
                return False
            storage = node.GetStorageNode()
        storage.SetFileName(str(properties["fileName"]))
        written = bool(storage.WriteData(node))
        if not written and userMessages is not None:
            userMessages.AddMessages(storage.GetUserMessages())
        return written


def _node_name(fileName: str) -> str:
    name = Path(fileName).name
    for suffix in (".seg.nrrd", ".nii.gz", ".nrrd", ".nii", ".mha", ".nhdr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


class Application:
    """The few answers of ``slicer.app`` that the module and ``slicer.util`` ask for."""

    applicationName = "3D Slicer (slicer-core)"

    def __init__(self, temporaryPath) -> None:
        self.temporaryPath = str(temporaryPath)
        self._scene = slicer.vtkMRMLScene()
        self._appLogic = slicer.vtkSlicerApplicationLogic()
        self._appLogic.SetMRMLScene(self._scene)
        self._io = IOManager(self)
        # The Colors logic first: it adds the default colour nodes that label maps refer to. The application
        # logic's own (MRML) colour logic, since the wheel has no colour files for Slicer's file-based one.
        logics = {
            "Colors": self._appLogic.GetColorLogic(),
            "Volumes": slicer.vtkSlicerVolumesLogic(),
            "Segmentations": slicer.vtkSlicerSegmentationsModuleLogic(),
            "Transforms": slicer.vtkSlicerTransformLogic(),
        }
        for name, logic in logics.items():
            logic.SetMRMLApplicationLogic(self._appLogic)
            logic.SetMRMLScene(self._scene)
            self._appLogic.SetModuleLogic(name, logic)
        self.modules = types.SimpleNamespace(**{n.lower(): Module(n, logic) for n, logic in logics.items()})

    def mrmlScene(self):
        return self._scene

    def applicationLogic(self):
        return self._appLogic

    def coreIOManager(self) -> IOManager:
        return self._io

    ioManager = coreIOManager

    def testingEnabled(self) -> bool:
        return True

    def processEvents(self) -> None:
        """Nothing to do: no event loop without Qt."""

    def layoutManager(self):
        return None  # no views: slicer.util.setSliceViewerLayers(fit=...) skips fitting, as in a headless Slicer


# ----------------------------------------------------------------------------- slicer.ScriptedLoadableModule


class ScriptedLoadableModule:
    """Keeps the module's description on its ``parent`` (in Slicer, the C++ module object)."""

    def __init__(self, parent) -> None:
        self.parent = parent
        self.moduleName = type(self).__name__
        parent.title = self.moduleName
        parent.categories, parent.dependencies, parent.contributors = [], [], []
        parent.helpText = parent.acknowledgementText = ""


class ScriptedLoadableModuleLogic:
    """A module's logic: one parameter node per module and scene, found by its singleton tag."""

    def __init__(self, parent=None) -> None:
        self.parent = parent
        name = type(self).__name__
        self.moduleName = name[: -len("Logic")] if name.endswith("Logic") else name

    def getParameterNode(self):
        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", scene.GenerateUniqueName(self.moduleName))
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
        return node


class ScriptedLoadableModuleWidget:
    """The module panel is Qt: not available on slicer-core."""

    def __init__(self, parent=None) -> None:
        raise NotImplementedError("module widgets need Slicer's Qt layer, which slicer-core does not have")


class ScriptedLoadableModuleTest(unittest.TestCase):
    """A module's self-test, run as Slicer's test runner does (``runTest``); messages go to the log."""

    def delayDisplay(self, message, msec=None) -> None:
        slicer.util.delayDisplay(message, autoCloseMsec=0)  # below 400 ms Slicer only logs it and processes events


# ----------------------------------------------------------------------------- slicer.parameterNodeWrapper


class Choice:
    """Restricts a parameter to listed values (``Annotated[str, Choice([...])]``)."""

    def __init__(self, choices) -> None:
        self.choices = tuple(choices)


def parameterNodeWrapper(cls):
    """Typed attributes over a ``vtkMRMLScriptedModuleNode``: nodes as node references, strings as parameters.

    A default is written into the node when the wrapper is made and the node does not have that parameter yet;
    assigning a value outside a ``Choice`` raises ``ValueError``.
    """
    fields = {}
    for name, hint in get_type_hints(cls, include_extras=True).items():
        base, choices = hint, None
        if get_origin(hint) is Annotated:
            base, *extras = get_args(hint)
            choices = next((e.choices for e in extras if isinstance(e, Choice)), None)
        if isinstance(base, type) and issubclass(base, slicer.vtkMRMLNode):
            fields[name] = _NodeField(name, base)
        elif base is str:
            fields[name] = _StringField(name, getattr(cls, name, ""), choices)
        else:
            raise TypeError(f"this stand-in wraps node and str parameters only, not {name}: {hint}")

    def __init__(self, parameterNode) -> None:
        self.parameterNode = parameterNode
        for field in fields.values():
            field.initialize(parameterNode)

    def refused(self, *args, **kwargs):
        raise NotImplementedError("GUI binding needs Slicer's Qt layer, which slicer-core does not have")

    namespace = dict(fields, __init__=__init__, connectGui=refused, disconnectGui=refused, __doc__=cls.__doc__)
    return type(cls.__name__, (), namespace)


class _NodeField:
    def __init__(self, name: str, nodeClass: type) -> None:
        self.name, self.nodeClass = name, nodeClass

    def initialize(self, parameterNode) -> None:
        pass

    def __get__(self, wrapper, owner=None):
        return self if wrapper is None else wrapper.parameterNode.GetNodeReference(self.name)

    def __set__(self, wrapper, node) -> None:
        if node is not None and not isinstance(node, self.nodeClass):
            raise TypeError(f"{self.name} takes a {self.nodeClass.__name__}, not a {type(node).__name__}")
        wrapper.parameterNode.SetNodeReferenceID(self.name, node.GetID() if node is not None else None)


class _StringField:
    def __init__(self, name: str, default: str, choices) -> None:
        self.name, self.default, self.choices = name, default, choices
        self._check(default)

    def _check(self, value: str) -> None:
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {self.choices}, not {value!r}")

    def initialize(self, parameterNode) -> None:
        if not parameterNode.GetParameter(self.name):
            parameterNode.SetParameter(self.name, self.default)

    def __get__(self, wrapper, owner=None):
        return self if wrapper is None else wrapper.parameterNode.GetParameter(self.name)

    def __set__(self, wrapper, value: str) -> None:
        self._check(value)
        wrapper.parameterNode.SetParameter(self.name, value)


# ----------------------------------------------------------------------------- installing it


def _submodule(name: str, **members) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(members)
    return module


def install(temporaryPath) -> Application:
    """Publish a fresh application on the ``slicer`` module (and the modules Slicer adds), return it."""
    app = Application(temporaryPath)
    slicer.app, slicer.mrmlScene, slicer.modules = app, app.mrmlScene(), app.modules
    sys.modules["slicer.ScriptedLoadableModule"] = slicer.ScriptedLoadableModule = _submodule(
        "slicer.ScriptedLoadableModule",
        ScriptedLoadableModule=ScriptedLoadableModule,
        ScriptedLoadableModuleLogic=ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleWidget=ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleTest=ScriptedLoadableModuleTest,
    )
    sys.modules["slicer.parameterNodeWrapper"] = slicer.parameterNodeWrapper = _submodule(
        "slicer.parameterNodeWrapper", parameterNodeWrapper=parameterNodeWrapper, Choice=Choice
    )
    sys.modules.setdefault("qt", _submodule("qt", __doc__="empty: Qt is not part of slicer-core"))
    logging.getLogger(__name__).info("slicer-core stand-in application installed")
    return app
