"""TCAV gives Captum's scores when both use the same CAVs (Captum is a test oracle only).

Both libraries get a classifier that returns fixed, seeded weights for each set of classes,
so the CAVs are identical and the scores must match to float tolerance. Captum stores its
CAVs with pickle in its own temporary folder; perspicio never reads them.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from perspicio import concept as ours
from perspicio.attr import LayerIntegratedGradients
from tests.concept.textures import TextureNet, images

captum_concept = pytest.importorskip("captum.concept")
captum_attr = pytest.importorskip("captum.attr")

LAYERS = ["features.1", "features.3"]


def _weights(classes: list[int], n_features: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(sum(classes) * 31 + n_features)
    return torch.randn(len(classes), n_features, generator=g)


def _fixed(base: type) -> Any:
    class Fixed(base):  # type: ignore[misc, valid-type]
        """Fixed seeded weights per set of classes, in place of training."""

        def __init__(self) -> None:
            self._classes: list[int] = []
            self._n = 0

        def train_and_eval(self, dataloader: Any, **kwargs: Any) -> dict[str, Any]:
            labels, n = set(), 0
            for x, y in dataloader:
                labels.update(int(v) for v in y.reshape(-1))
                n = x.reshape(x.shape[0], -1).shape[1]
            self._classes, self._n = sorted(labels), n
            return {"accs": torch.tensor(1.0)}

        def weights(self) -> torch.Tensor:
            return _weights(self._classes, self._n)

        def classes(self) -> list[int]:
            return self._classes

    return Fixed()


def _concepts(library: Any) -> list[Any]:
    out = []
    for i, texture in enumerate(["stripes", "dots", None, None, None]):
        x = images(10, texture, torch.Generator().manual_seed(50 + i))[0]
        out.append(library.Concept(i, f"c{i}", [x[:6], x[6:]]))
    return out


def _sets(c: list[Any]) -> list[list[Any]]:
    return [[c[0], c[2]], [c[1], c[3]], [c[0], c[1], c[4]], [c[3], c[0]]]


@pytest.mark.parametrize("method", ["default", "integrated_gradients"])
def test_tcav_scores_match_captum(method: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = TextureNet().eval()
    x = images(6, "stripes", torch.Generator().manual_seed(9))[0]
    results = []
    for library, attr, where in ((ours, None, "ours"), (captum_concept, captum_attr, "captum")):
        attr_method = None
        if method == "integrated_gradients":
            cls = LayerIntegratedGradients if attr is None else attr.LayerIntegratedGradients
            attr_method = cls(model, None, multiply_by_inputs=False)
        tcav = library.TCAV(
            model,
            LAYERS,
            classifier=_fixed(library.Classifier),
            layer_attr_method=attr_method,
            save_path=str(tmp_path / where),
        )
        kwargs = {"n_steps": 8} if method == "integrated_gradients" else {}
        results.append(tcav.interpret(x, _sets(_concepts(library)), target=1, **kwargs))
    mine, theirs = results
    assert list(mine) == list(theirs) == ["0-2", "1-3", "3-0", "0-1-4"]
    for key in theirs:
        assert list(mine[key]) == list(theirs[key]) == LAYERS
        for layer in LAYERS:
            for score in ("sign_count", "magnitude"):
                torch.testing.assert_close(
                    mine[key][layer][score], theirs[key][layer][score], rtol=1e-4, atol=1e-6
                )


def test_concept_key_and_identifier_match_captum() -> None:
    from captum.concept._utils.common import concepts_to_str

    from perspicio.concept._utils.common import concepts_to_str as ours_to_str

    a, b = captum_concept.Concept(3, "striped", None), captum_concept.Concept(11, "random", None)
    c, d = ours.Concept(3, "striped", None), ours.Concept(11, "random", None)
    assert concepts_to_str([a, b]) == ours_to_str([c, d])
    assert a.identifier == c.identifier and repr(a) == repr(c)
