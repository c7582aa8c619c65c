"""Noise first: mean ± std over seeds and the seed-spread verdict, on constructed tables whose
answers are computed by hand here; the collapse and recipe sections of report.md."""

from __future__ import annotations

import math
import statistics

import pytest

from pmsplat.reproduce.report import (
    SPREAD_RULE,
    ReportInputs,
    RunRecord,
    collapse_table,
    compare,
    regions_table,
    spread,
    summary_table,
    verdict,
    write_report,
)


def test_spread_is_mean_and_sample_std() -> None:
    mean, std, n = spread([20.0, 20.2, float("nan")])
    assert (n, mean) == (2, pytest.approx(20.1))
    assert std == pytest.approx(math.sqrt(((20.0 - 20.1) ** 2 + (20.2 - 20.1) ** 2) / 1))  # n - 1
    assert spread([3.0]) == (3.0, 0.0, 1)
    mean, std, n = spread([])
    assert n == 0 and math.isnan(mean) and math.isnan(std)


@pytest.mark.parametrize(
    "a, b, higher, beyond, better",
    [
        ([20.0, 20.2], [21.0, 21.4], True, True, "b"),  # Δ 1.1 > 0.141 + 0.283
        ([20.0, 21.0], [20.5, 21.6], True, False, "b"),  # Δ 0.55 < 0.707 + 0.778
        ([0.9, 1.1], [0.5, 0.52], False, True, "b"),  # lower is better: b better, Δ -0.49 beyond 0.155
        ([0.5, 0.52], [0.9, 1.1], False, True, "a"),
        ([20.0], [25.0], True, None, "b"),  # one seed: no verdict
    ],
)
def test_compare_by_the_documented_rule(a, b, higher, beyond, better) -> None:
    result = compare(a, b, higher)
    assert result.delta == pytest.approx(statistics.fmean(b) - statistics.fmean(a))
    if len(a) > 1:
        assert result.spread == pytest.approx(statistics.stdev(a) + statistics.stdev(b))
    assert result.beyond is beyond and result.better == better
    expected = {True: "beyond seed spread", False: "within seed spread", None: "n/a: one seed"}[beyond]
    assert verdict(result) == expected


def test_overlapping_intervals_are_within_and_zero_spread_is_beyond() -> None:
    # Δ = 1 < std_a + std_b = 0.707 + 0.707: the mean ± std intervals overlap
    result = compare([0.5, 1.5], [1.5, 2.5])
    assert result.delta == pytest.approx(1.0) and result.spread == pytest.approx(math.sqrt(0.5) * 2)
    assert result.beyond is False
    assert compare([1.0, 1.0], [1.5, 1.5]).beyond is True  # no spread at all: any difference is beyond


def _records() -> list[RunRecord]:
    values = {  # variant -> seed -> (psnr, p2s, scale ratio)
        "baseline": {0: (22.0, 1.00, 0.98), 1: (22.2, 0.96, 0.99)},
        "pmloss": {0: (19.0, 0.80, 0.61), 1: (19.6, 1.08, 0.70)},
    }
    return [
        RunRecord(variant, seed, "extrapolation", {
            "psnr": psnr, "p2s_mean": p2s, "scale_ratio": ratio, "pred_scale": 2 * ratio, "gt_scale": 2.0,
            "psnr_interior": psnr + 1, "psnr_boundary": psnr - 2, "psnr_covered": psnr + 0.5, "psnr_uncovered": psnr - 5,
            "uncovered_fraction": 0.3,
        })
        for variant, seeds in values.items() for seed, (psnr, p2s, ratio) in seeds.items()
    ]


def test_summary_table_rows_and_delta_verdicts() -> None:
    header, rows = summary_table(_records(), "extrapolation")
    psnr, p2s, scale = header.index("PSNR"), header.index("point-to-surface"), header.index("scale pred/GT")
    base, pm, delta = rows
    assert base[:2] == ["baseline", "2"] and base[psnr] == f"22.100 ± {statistics.stdev([22.0, 22.2]):.3f}"
    assert pm[psnr] == f"19.300 ± {statistics.stdev([19.0, 19.6]):.3f}"
    # PSNR: Δ = -2.8, spread 0.141 + 0.424 -> beyond; p2s: Δ = -0.04, spread 0.028 + 0.198 -> within
    assert delta[psnr] == "-2.800 (base better; beyond seed spread)"
    assert delta[p2s] == "-0.040 (PM better; within seed spread)"
    assert delta[scale] == "-0.330 (beyond seed spread)"  # no "better": the right ratio is 1
    assert delta[header.index("SSIM")] == "n/a"  # no values: no claim


def test_collapse_and_regions_tables() -> None:
    header, rows = collapse_table(_records())
    assert header[-1] == "scale pred/GT" and len(rows) == 4
    assert ["pmloss", "0", "extrapolation", "1.220", "2.000", "0.610"] in rows
    header, rows = regions_table(_records(), "extrapolation")
    assert header[0] == "variant" and rows[0][0] == "baseline"
    assert rows[1][header.index("outside every context view")] == f"14.300 ± {statistics.stdev([14.0, 14.6]):.3f}"


def test_report_states_the_rule_the_collapse_diagnostic_and_the_recipe(tmp_path) -> None:
    inputs = ReportInputs(
        title="t", settings={"baseline": "mvsplat"}, records=_records(), commands=["pmsplat train x"], timings={"a": 1.0},
        recipe=[("loss.pm.weight", "—", "0.005"), ("model.encoder.offset_mode", "ori", "unconstrained")],
        recipe_source="Derived from the two resolved configs (a vs b)",
    )
    text = write_report(inputs, tmp_path).read_text()
    assert SPREAD_RULE in text
    assert "## Collapse diagnostic" in text and "| pmloss | 1 | extrapolation | 1.400 | 2.000 | 0.700 |" in text
    assert "## Recipe: what differs between the two runs" in text
    assert "| `model.encoder.offset_mode` | ori | unconstrained |" in text
    assert "## Where the PSNR is lost" in text
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert rows[0].startswith("variant,seed,split,psnr") and len(rows) == 5
