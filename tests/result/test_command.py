"""``perspicio explain``: the command line gives the Python API's numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from perspicio.__main__ import main
from perspicio.attr import IntegratedGradients, LayerGradCam, Saliency
from perspicio.result import Explanation

pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")


class SmallCNN(nn.Module):
    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 8 * 8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv(x)))


def _setup(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = torch.randn(3, 1, 8, 8)
    save_file({"inputs": x}, str(tmp_path / "x.safetensors"))
    return model, x


def test_torchscript_model_gives_the_api_numbers(tmp_path) -> None:
    model, x = _setup(tmp_path)
    torch.jit.save(torch.jit.script(model), str(tmp_path / "m.pt"))
    out = tmp_path / "r.safetensors"
    code = main(
        [
            "explain",
            "--model",
            str(tmp_path / "m.pt"),
            "--input",
            str(tmp_path / "x.safetensors"),
            "--method",
            "IntegratedGradients",
            "--target",
            "2",
            "--args",
            '{"n_steps": 16}',
            "--out",
            str(out),
        ]
    )
    assert code == 0 and (tmp_path / "r.png").stat().st_size > 0
    result = Explanation.load(out)
    expected = IntegratedGradients(model).attribute(x, target=2, n_steps=16)
    torch.testing.assert_close(result.values[0], expected)
    assert (
        result.arguments == {"n_steps": 16, "target": 2} and result.method == "IntegratedGradients"
    )


def test_exported_program(tmp_path) -> None:
    model, x = _setup(tmp_path)
    torch.export.save(torch.export.export(model, (x,)), str(tmp_path / "m.pt2"))
    out = tmp_path / "r.safetensors"
    main(
        [
            "explain",
            "--model",
            str(tmp_path / "m.pt2"),
            "--input",
            str(tmp_path / "x.safetensors"),
            "--method",
            "Saliency",
            "--target",
            "predicted",
            "--out",
            str(out),
        ]
    )
    pred = model(x).argmax(-1)
    torch.testing.assert_close(
        Explanation.load(out).values[0], Saliency(model).attribute(x, target=pred)
    )


def test_state_dict_with_class_and_a_layer_method(tmp_path) -> None:
    from safetensors.torch import save_file

    model, x = _setup(tmp_path)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    out = tmp_path / "r.safetensors"
    main(
        [
            "explain",
            "--model",
            str(tmp_path / "w.safetensors"),
            "--model-class",
            f"{__name__}:SmallCNN",
            "--model-kwargs",
            '{"channels": 4}',
            "--input",
            str(tmp_path / "x.safetensors"),
            "--method",
            "LayerGradCam",
            "--layer",
            "conv",
            "--target",
            "1",
            "--out",
            str(out),
            "--picture",
            str(tmp_path / "p.png"),
        ]
    )
    expected = LayerGradCam(model, model.conv).attribute(x, target=1)
    torch.testing.assert_close(Explanation.load(out).values[0], expected)
    assert (tmp_path / "p.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "Nope"], "is not an attribution class"),
        (["--method", "LayerGradCam"], "needs --layer"),
        (["--method", "Saliency", "--target", "x"], "--target must be an int"),
        (["--method", "Saliency", "--args", "[1]"], "--args must be a JSON object"),
    ],
)
def test_bad_arguments_exit_with_one_line(tmp_path, capsys, extra, message) -> None:
    model, _ = _setup(tmp_path)
    torch.jit.save(torch.jit.script(model), str(tmp_path / "m.pt"))
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "explain",
                "--model",
                str(tmp_path / "m.pt"),
                "--input",
                str(tmp_path / "x.safetensors"),
                "--out",
                str(tmp_path / "r.safetensors"),
                *extra,
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
