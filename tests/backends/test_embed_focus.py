"""Background embedding does the slices nearest the one in view first, asking where the user is as it goes."""

from __future__ import annotations

import pytest

from napari_fewshot3d import engine
from napari_fewshot3d.backends import get_backend
from napari_fewshot3d.errors import Cancelled
from napari_fewshot3d.progress import CancelToken

from ..conftest import ct_slab


@pytest.mark.slow  # encodes 8 CT slices with LiteMedSAM
def test_slices_nearest_the_view_are_encoded_first_and_the_view_is_followed(tmp_path):
    image, _ = ct_slab(80, 88)
    backend = get_backend("selfprompt-sam", cache_dir=tmp_path / "cache")
    embedder = backend._own_embedder(image, 2, "cpu")
    order: list[int] = []
    put = embedder.cache.put
    embedder.cache.put = lambda key, index, embedding: (order.append(index), put(key, index, embedding))
    views = iter([5, 5, 1])  # the user scrolls to slice 1 after two batches

    def focus() -> int:
        return next(views, 1)

    seen: list[float] = []
    engine.embed(image, backend, "cpu", lambda fraction, _: seen.append(fraction), focus=focus)
    assert order[:2] == [5, 4] and order[2] == 1, order  # then nearest the new view: 1 first
    assert sorted(order) == list(range(8))  # every slice once
    assert seen == sorted(seen) and seen[-1] == 1.0

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        engine.embed(ct_slab(60, 64)[0], backend, "cpu", cancel=token, focus=lambda: 2)
