"""The module's Logic: reads MRML nodes into engine data, calls the engine through ``FewShot3DLib.session``, and
writes the results back into nodes; plus the parameter node that keeps the panel's state in the scene.

Only Slicer's own modules and the standard library are imported at the top, so that Slicer can load the module before
its Python dependencies are installed; the engine is imported inside the methods that need it.
"""

import contextlib
import os
from pathlib import Path
from typing import Annotated

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from FewShot3DLib import dependencies


@parameterNodeWrapper
class FewShot3DParameterNode:
    """The module's state, saved with the scene: selected nodes and the engine settings."""

    inputVolume: vtkMRMLScalarVolumeNode
    paintedSegmentation: vtkMRMLSegmentationNode
    outputSegmentation: vtkMRMLSegmentationNode
    backend: Annotated[str, Choice(list(dependencies.BACKEND_CHOICES))] = dependencies.DEFAULT_BACKEND
    device: Annotated[str, Choice(list(dependencies.DEVICE_CHOICES))] = "auto"
    axis: Annotated[str, Choice(list(dependencies.AXIS_CHOICES))] = "axial"


class FewShot3DLogic(ScriptedLoadableModuleLogic):
    """Reads the nodes into engine data, calls the engine (through ``FewShot3DLib.session``), writes the result.

    Usable without the GUI: ``process()`` runs a whole adaptation synchronously, e.g. from the Python console.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._session = None

    def getParameterNode(self) -> FewShot3DParameterNode:
        return FewShot3DParameterNode(super().getParameterNode())

    @property
    def session(self):
        """The annotation state; created on first use, once the engine can be imported."""
        if self._session is None:
            from FewShot3DLib.session import FewShotSession

            self._session = FewShotSession()
        return self._session

    def canReadapt(self) -> bool:
        return self._session is not None and self._session.shown is not None

    def hasModel(self) -> bool:
        return self._session is not None and self._session.model is not None

    # ------------------------------------------------------------------ nodes <-> engine data

    def volumeOf(self, volumeNode):
        """The engine Volume of a scalar volume node (voxels copied, geometry from its IJK-to-RAS matrix)."""
        from FewShot3DLib.geometry import volume_from_image_data
        from napari_fewshot3d.errors import InputError

        if volumeNode is None:
            raise InputError("choose an input volume")
        ijkToRas = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRas)
        return volume_from_image_data(volumeNode.GetImageData(), ijkToRas, volumeNode.GetName())

    def segmentsOf(self, segmentationNode, volumeNode, segmentIds=None) -> list:
        """Segments as masks on the input volume's grid (Slicer resamples them onto it if needed)."""
        import numpy as np

        from FewShot3DLib.geometry import Segment

        segmentation = segmentationNode.GetSegmentation()
        if segmentIds is None:
            segmentIds = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
        segments = []
        for segmentId in segmentIds:
            segment = segmentation.GetSegment(segmentId)
            if segment is None:
                continue
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode)
            segments.append(Segment(segmentId, segment.GetName(), tuple(segment.GetColor()), np.array(mask)))
        return segments

    def showSegments(self, outputNode, volumeNode, segments) -> None:
        """Replace the output segmentation's segments, on the input's grid and transform, shown in 2D and 3D."""
        _placeOnVolume(outputNode, volumeNode)
        segmentation = outputNode.GetSegmentation()
        segmentation.RemoveAllSegments()
        for segment in segments:
            segmentation.AddEmptySegment(segment.segment_id, segment.name, list(segment.color))
            slicer.util.updateSegmentBinaryLabelmapFromArray(segment.mask, outputNode, segment.segment_id, volumeNode)
        outputNode.CreateDefaultDisplayNodes()
        outputNode.CreateClosedSurfaceRepresentation()
        slicer.util.setSliceViewerLayers(background=volumeNode, fit=False)

    def newPaintedSegmentation(self, volumeNode):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{volumeNode.GetName()} painted")
        node.CreateDefaultDisplayNodes()
        _placeOnVolume(node, volumeNode)
        node.GetSegmentation().AddEmptySegment("", "structure 1")
        return node

    def backgroundSegment(self, paintedNode) -> str:
        """The id of the painted segmentation's segment named Background (added, grey, if there is none): its
        strokes mark where no structure is, and a slice holding them counts only where it is painted (scribbles)."""
        from napari_fewshot3d.support import background_in

        segmentation = paintedNode.GetSegmentation()
        ids = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
        found = background_in({n: segmentation.GetSegment(i).GetName() for n, i in enumerate(ids, start=1)})
        if found is not None:
            return ids[found - 1]
        return segmentation.AddEmptySegment("", "Background", [0.6, 0.6, 0.6])

    def newOutputSegmentation(self, volumeNode):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{volumeNode.GetName()} prediction")
        node.CreateDefaultDisplayNodes()
        return node

    def _checkNodes(self, volumeNode, paintedNode, outputNode) -> None:
        from napari_fewshot3d.errors import InputError

        if volumeNode is None:
            raise InputError("choose an input volume")
        if paintedNode is None:
            raise InputError("choose the painted segmentation (or press 'Paint in Segment Editor')")
        if outputNode is None:
            raise InputError("choose an output segmentation")
        if outputNode.GetID() == paintedNode.GetID():
            raise InputError("the output segmentation must differ from the painted one (which is never modified)")
        if paintedNode.GetTransformNodeID() != volumeNode.GetTransformNodeID():
            raise InputError("the painted segmentation and the input volume are under different transforms")

    # ------------------------------------------------------------------ jobs

    def prepareAdapt(self, volumeNode, paintedNode, outputNode, backend, device, axis, readapt=False):
        """Read the nodes now (GUI thread) and return ``(work, finish)``: the engine call and what shows its result."""
        self._checkNodes(volumeNode, paintedNode, outputNode)
        session = self.session
        session.select(volumeNode.GetID(), axis)
        image = self.volumeOf(volumeNode)
        painted = self.segmentsOf(paintedNode, volumeNode)
        corrected = None
        if readapt:
            corrected = self.segmentsOf(outputNode, volumeNode, [c.segment_id for c in session.classes])
        plan = session.plan(image, axis, painted, corrected)

        def work(task):
            return session.adapt_and_segment(plan, backend, device, task)

        def finish(prediction) -> str:
            self.showSegments(outputNode, volumeNode, prediction.segments())
            session.record(prediction)
            return f"Prediction ready ({prediction.summary()}). Correct it with Segment Editor, then Re-adapt."

        return work, finish

    def modelRefusal(self, path, volumeNode):
        """Why the saved model at ``path`` would give an unreliable result on this volume (another modality), for
        the widget to ask before applying it; None when it applies. A file that is no model fails here."""
        from napari_fewshot3d import engine

        return engine.load_model(path, self.session.backend).check_volume(self.volumeOf(volumeNode))

    def prepareApplyModel(self, path, volumeNode, outputNode, device, force: bool = False):
        """``(work, finish)`` that segment the input volume with a saved model into the output segmentation. A model
        of another modality fails the job with its one-line reason unless ``force``; the status message names the
        classes it did not find."""
        from FewShot3DLib.session import apply_model

        session = self.session
        session.select(volumeNode.GetID(), "")
        image = self.volumeOf(volumeNode)

        def work(task):
            return apply_model(path, image, device, task, session.backend, force)

        def finish(prediction) -> str:
            self.showSegments(outputNode, volumeNode, prediction.segments())
            session.record(prediction)
            return f"Applied {os.path.basename(path)} ({prediction.summary()})."

        return work, finish

    def process(
        self,
        volumeNode,
        paintedNode,
        outputNode,
        backend=dependencies.DEFAULT_BACKEND,
        device="auto",
        axis="axial",
        readapt=False,
        progress=None,
    ) -> str:
        """Adapt and segment (or re-adapt) synchronously, without the GUI; returns the status message."""
        from napari_fewshot3d.progress import Task

        work, finish = self.prepareAdapt(volumeNode, paintedNode, outputNode, backend, device, axis, readapt)
        return finish(work(Task(progress)))

    def saveModel(self, path) -> Path:
        return self.session.save_model(path)

    def exportSegmentation(self, segmentationNode, volumeNode, path) -> str:
        """Write with Slicer's own savers: .seg.nrrd as is, NIfTI as a label map on the input volume's grid; a DICOM
        SEG (.dcm) with the engine's writer, for a volume loaded by the DICOM module (others are refused)."""
        path = str(path)
        if path.lower().endswith(".dcm"):
            return self._exportDicomSeg(segmentationNode, volumeNode, path)
        if path.lower().endswith((".nii", ".nii.gz")):
            with _labelmapOnVolume(segmentationNode, volumeNode) as labelmap:
                saved = slicer.util.saveNode(labelmap, path)
        else:
            saved = slicer.util.saveNode(segmentationNode, path)
        if not saved:
            raise OSError(f"Slicer could not write {path}")
        return path

    def _exportDicomSeg(self, segmentationNode, volumeNode, path) -> str:
        from FewShot3DLib.dicom_export import INSTANCE_UIDS_ATTRIBUTE, source_files, write_seg_for_series
        from FewShot3DLib.geometry import volume_from_image_data

        database = getattr(slicer, "dicomDatabase", None)
        files = source_files(
            volumeNode.GetName(),
            volumeNode.GetAttribute(INSTANCE_UIDS_ATTRIBUTE),
            database.fileForInstance if database is not None else None,
        )
        with _labelmapOnVolume(segmentationNode, volumeNode) as labelmap:
            matrix = vtk.vtkMatrix4x4()
            labelmap.GetIJKToRASMatrix(matrix)
            labels = volume_from_image_data(labelmap.GetImageData(), matrix, volumeNode.GetName())
        names, colors = {}, {}
        segmentation = segmentationNode.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):  # label values follow the segments' order
            segment = segmentation.GetNthSegment(index)
            names[index + 1], colors[index + 1] = segment.GetName(), list(segment.GetColor())
        return write_seg_for_series(labels, files, path, names, colors)


@contextlib.contextmanager
def _labelmapOnVolume(segmentationNode, volumeNode):
    """The visible segments as a temporary label map on the volume's grid (removed from the scene afterwards)."""
    labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        slicer.modules.segmentations.logic().ExportVisibleSegmentsToLabelmapNode(segmentationNode, labelmap, volumeNode)
        yield labelmap
    finally:
        slicer.mrmlScene.RemoveNode(labelmap)


def _placeOnVolume(segmentationNode, volumeNode) -> None:
    """Put a segmentation under the volume's parent transform, then take the volume's grid as its geometry.

    In this order: Slicer takes the geometry in the segmentation's current frame, so a segmentation still outside
    the transform would get the grid moved by it, and its files (written on that grid) would not match the volume.
    """
    segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
