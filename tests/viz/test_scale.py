"""Pure scaling functions: thresholds, sign filtering, normalisation, colour maps."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from perspicio.viz.scale import (
    ImageVisualizationMethod,
    VisualizeSign,
    cumulative_sum_threshold,
    default_cmap,
    filter_sign,
    normalize_attr,
    parse_choice,
    to_numpy,
)


@pytest.mark.parametrize(
    ("values", "percentile", "expected"),
    [
        ([1.0, 1.0, 1.0, 97.0], 50, 97.0),
        ([1.0, 1.0, 1.0, 97.0], 2, 1.0),
        ([97.0, 1.0, 1.0, 1.0], 100, 97.0),  # order does not matter
        ([3.0, 0.0, 2.0], 0, 0.0),  # percentile 0: the smallest value
        ([1.0] * 49 + [2.0], 98, 2.0),
        ([1.0] * 49 + [2.0], 95, 1.0),
        ([0.0, 0.0], 98, 0.0),
        ([], 98, 0.0),
    ],
)
def test_cumulative_sum_threshold_known_arrays(values, percentile, expected):
    assert cumulative_sum_threshold(np.array(values), percentile) == expected


def test_cumulative_sum_threshold_flattens():
    assert cumulative_sum_threshold(np.array([[1.0, 1.0], [1.0, 97.0]]), 50) == 97.0


@pytest.mark.parametrize("percentile", [-1, 100.5])
def test_cumulative_sum_threshold_rejects_percentile(percentile):
    with pytest.raises(ValueError, match=r"percentile must be in \[0, 100\]"):
        cumulative_sum_threshold(np.ones(3), percentile)


def test_cumulative_sum_threshold_rejects_negative_values():
    with pytest.raises(ValueError, match="non-negative"):
        cumulative_sum_threshold(np.array([1.0, -2.0]), 50)


@pytest.mark.parametrize(
    ("sign", "expected"),
    [
        ("positive", [0, 0, 0, 1, 3]),
        ("negative", [-2, -1, 0, 0, 0]),
        ("absolute_value", [2, 1, 0, 1, 3]),
        ("all", [-2, -1, 0, 1, 3]),
        (VisualizeSign.positive, [0, 0, 0, 1, 3]),
    ],
)
def test_filter_sign(sign, expected):
    attr = np.array([-2.0, -1.0, 0.0, 1.0, 3.0])
    np.testing.assert_array_equal(filter_sign(attr, sign), expected)
    np.testing.assert_array_equal(attr, [-2.0, -1.0, 0.0, 1.0, 3.0])  # input untouched


@pytest.mark.parametrize(
    ("sign", "expected"),
    [
        ("all", [0.0, 0.25, 0.5, -1.0]),
        ("absolute_value", [0.0, 0.25, 0.5, 1.0]),
        ("positive", [0.0, 0.5, 1.0, 0.0]),
        ("negative", [0.0, 0.0, 0.0, 1.0]),
    ],
)
def test_normalize_attr_without_outliers(sign, expected):
    out = normalize_attr(np.array([0.0, 1.0, 2.0, -4.0]), sign, outlier_perc=0)
    np.testing.assert_allclose(out, expected)
    assert not np.signbit(out[out == 0]).any()  # no -0.0 in the negative map


@pytest.mark.parametrize(
    ("outlier_perc", "expected_last", "expected_rest"), [(2, 1.0, 0.5), (5, 1.0, 1.0)]
)
def test_normalize_attr_clips_outliers(outlier_perc, expected_last, expected_rest):
    # 49 ones and one 2: the 2 holds 3.9% of the mass, an outlier at 5% but not at 2%.
    attr = np.array([1.0] * 49 + [2.0])
    out = normalize_attr(attr, "positive", outlier_perc)
    assert out[-1] == expected_last
    np.testing.assert_allclose(out[:-1], expected_rest)


def test_normalize_attr_all_outliers_saturate():
    out = normalize_attr(np.array([0.0, 0.5, 3.0]), "absolute_value", outlier_perc=100)
    np.testing.assert_array_equal(out, [0.0, 1.0, 1.0])


def test_normalize_attr_reduction_axis_sums_channels():
    attr = np.zeros((2, 2, 3))
    attr[0, 0] = [1.0, 1.0, 2.0]
    attr[1, 1] = [-1.0, 0.0, 0.0]
    out = normalize_attr(attr, "all", outlier_perc=0, reduction_axis=2)
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.0, -0.25]])


@pytest.mark.parametrize("sign", ["positive", "negative", "absolute_value", "all"])
def test_normalize_attr_all_zero_gives_zeros_without_warning(sign):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = normalize_attr(np.zeros((3, 3)), sign)
    np.testing.assert_array_equal(out, np.zeros((3, 3)))


def test_normalize_attr_nothing_of_requested_sign():
    np.testing.assert_array_equal(normalize_attr(np.array([-1.0, -2.0]), "positive"), [0, 0])


@pytest.mark.parametrize("outlier_perc", [-0.1, 101])
def test_normalize_attr_rejects_outlier_perc(outlier_perc):
    with pytest.raises(ValueError, match="outlier_perc must be in"):
        normalize_attr(np.ones(3), "all", outlier_perc)


def test_bad_sign_names_argument_and_choices():
    with pytest.raises(ValueError, match="sign must be one of 'positive', 'absolute_value'"):
        filter_sign(np.ones(2), "pos")


def test_parse_choice():
    assert parse_choice("masked_image", ImageVisualizationMethod, "method") is (
        ImageVisualizationMethod.masked_image
    )
    assert parse_choice(VisualizeSign.all, VisualizeSign, "sign") is VisualizeSign.all
    with pytest.raises(ValueError, match="method must be one of 'heat_map'.*got 'heatmap'"):
        parse_choice("heatmap", ImageVisualizationMethod, "method")
    with pytest.raises(ValueError, match="got 3"):
        parse_choice(3, VisualizeSign, "sign")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sign", "vmin", "dominant"),
    [("positive", 0.0, 1), ("negative", 0.0, 0), ("absolute_value", 0.0, 2), ("all", -1.0, 1)],
)
def test_default_cmap_colours(sign, vmin, dominant):
    cmap, low, high = default_cmap(sign)
    assert (low, high) == (vmin, 1.0)
    zero = cmap((0.0 - low) / (high - low))
    np.testing.assert_allclose(zero[:3], [1.0, 1.0, 1.0])  # no attribution is white
    strongest = np.asarray(cmap(1.0)[:3])
    assert strongest.argmax() == dominant  # green / red / blue


def test_default_cmap_all_is_red_for_negative():
    cmap, _, _ = default_cmap("all")
    assert np.asarray(cmap(0.0)[:3]).argmax() == 0


def test_default_cmap_user_choice():
    cmap, low, high = default_cmap("all", "viridis")
    assert cmap.name == "viridis" and (low, high) == (-1.0, 1.0)
    with pytest.raises(ValueError, match="cmap 'no-such-map'"):
        default_cmap("all", "no-such-map")


def test_to_numpy():
    tensor = torch.ones(2, 2, requires_grad=True)
    np.testing.assert_array_equal(to_numpy(tensor * 2, "attr"), np.full((2, 2), 2.0))
    with pytest.raises(TypeError, match="attr must hold numbers"):
        to_numpy(np.array(["a"]), "attr")


def test_importing_viz_does_not_import_matplotlib():
    code = (
        "import sys, perspicio.viz, perspicio.viz.text; "
        "assert 'matplotlib' not in sys.modules and 'IPython' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
