"""The bench's apply section end to end with an instant saveable backend (intensity ranges): rows per target and
structure, the other grid, a refusal for another modality, a class not found, and the table. Synthetic, fast."""

from __future__ import annotations

import numpy as np

from napari_fewshot3d.bench.apply import OTHER_CASE, OTHER_GRID, SAME, apply_section, apply_summary, apply_table
from napari_fewshot3d.preprocess import looks_like_ct
from napari_fewshot3d.volume import Volume

from ..plugin._fake_backends import IntensityRange, RangeBackend


class _CheckedRange(IntensityRange):
    """Refuses another modality and says which classes it found nowhere, as the real backend does."""

    def check_volume(self, volume: Volume) -> str | None:
        return None if looks_like_ct(volume.array) else "the model was adapted on CT and this volume looks like MR"

    def segment_with_notes(self, volume, device, task):
        labels = self.segment(volume, device, task)
        return labels, [
            f"{n} (label {v}) not found: nothing in range"
            for v, n in self.class_names.items()
            if not (labels == v).any()
        ]


class _CheckedBackend(RangeBackend):
    def adapt(self, volume, support, device, task):
        model = super().adapt(volume, support, device, task)
        return _CheckedRange(model.ranges, model.class_names)

    def from_state(self, meta, arrays):
        return _CheckedRange({int(k): tuple(v) for k, v in meta["ranges"].items()}, {})


def _ct() -> tuple[Volume, Volume, dict[str, int]]:
    array = np.full((40, 36, 24), -1000, np.int16)
    labels = np.zeros(array.shape, np.uint8)
    array[4:36, 4:32, :] = 0  # the body
    array[8:20, 8:20, 4:20], labels[8:20, 8:20, 4:20] = 60, 5  # "liver"
    array[24:32, 22:30, 8:16], labels[24:32, 22:30, 8:16] = 120, 1  # "spleen"
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    return Volume(array, affine, "ct"), Volume(labels, affine, "ref"), {"liver": 5, "spleen": 1}


def test_the_apply_section_scores_each_target_and_says_refusals_and_classes_not_found(monkeypatch):
    from napari_fewshot3d import backends

    monkeypatch.setitem(backends._REGISTRY, "range-test", "tests.bench.test_bench_apply:_CheckedBackend")
    image, reference, values = _ct()
    mr = Volume(np.where(reference.array > 0, 300.0, 50.0).astype(np.float32), image.affine, "mr")
    no_spleen = Volume(np.where(reference.array == 1, 0, image.array).astype(np.int16), image.affine, "ct2")
    scans = {
        "ct": (image, reference, values),
        "mr": (mr, reference, values),
        "ct2": (no_spleen, reference.with_array(np.where(reference.array == 1, 0, reference.array)), values),
    }
    rows = apply_section("ct", [("liver", 5), ("spleen", 1)], [2], _CheckedBackend, "cpu", scans, 2)
    by = {(r["kind"], r["target"].split(" ")[0], r["structure"]): r for r in rows}
    assert {r["kind"] for r in rows} == {SAME, OTHER_GRID, OTHER_CASE} and len(rows) == 8
    for kind in (SAME, OTHER_GRID):
        for name in ("liver", "spleen"):
            assert by[(kind, "ct", name)]["status"] == "ok" and by[(kind, "ct", name)]["dice"] > 0.85, (kind, name)
    assert all(by[(OTHER_CASE, "mr", n)]["status"] == "refused" for n in ("liver", "spleen"))
    assert by[(OTHER_CASE, "ct2", "spleen")]["status"] == "not found"
    assert (
        "not found" in by[(OTHER_CASE, "ct2", "spleen")]["note"] and by[(OTHER_CASE, "ct2", "spleen")]["dice"] is None
    )
    table, summary = apply_table(rows), apply_summary(rows)
    assert table.count("\n| ct |") == 8 and "refused" in table and "apply ct -> mr: refused" in summary
