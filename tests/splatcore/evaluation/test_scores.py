"""ScoreBook: per view -> per scene mean -> mean over scenes, and the upstream score files."""

from __future__ import annotations

import json

import pytest
import torch

from splatcore.evaluation import ScoreBook
from splatcore.errors import InputError


def _book() -> ScoreBook:
    book = ScoreBook(time_skip_steps=1)
    # Scenes with different view counts: per-scene-then-scenes differs from a flat mean.
    book.add("a", {"psnr": torch.tensor([10.0, 20.0]), "ssim": torch.tensor([0.5, 0.7])})
    book.add("b", {"psnr": torch.tensor([30.0, 30.0, 30.0, 30.0]), "ssim": torch.tensor([0.9] * 4)})
    return book


def test_per_scene_then_over_scenes():
    book = _book()
    assert book.per_scene("psnr") == [15.0, 30.0]
    averages = book.averages()
    assert averages["psnr"] == pytest.approx(22.5)  # flat mean over 6 views would be 25
    assert averages["ssim"] == pytest.approx((0.6 + 0.9) / 2)


def test_written_files_have_the_upstream_layout(tmp_path):
    book = _book()
    book.mark_unavailable("lpips", "weights missing: set PMSPLAT_LPIPS_VGG16")
    for seconds in (100.0, 1.0, 3.0):
        book.add_time("encoder", seconds)
    book.write(tmp_path)
    assert json.loads((tmp_path / "scores_psnr_all.json").read_text()) == [15.0, 30.0]
    assert json.loads((tmp_path / "scores_ssim_all.json").read_text()) == pytest.approx([0.6, 0.9])
    assert not (tmp_path / "scores_lpips_all.json").exists()
    summary = json.loads((tmp_path / "scores_all_avg.json").read_text())
    assert summary["psnr"] == pytest.approx(22.5)
    assert summary["encoder"] == [2, pytest.approx(2.0)]  # first call skipped
    assert "lpips" not in summary and "weights missing" in summary["unavailable"]["lpips"]
    by_scene = json.loads((tmp_path / "scores_by_scene.json").read_text())
    assert by_scene["b"]["psnr"] == 30.0


def test_scorebook_rejects_inconsistent_input():
    book = _book()
    with pytest.raises(InputError, match="already added"):
        book.add("a", {"psnr": torch.tensor([1.0]), "ssim": torch.tensor([1.0])})
    with pytest.raises(InputError, match="same metrics"):
        book.add("c", {"psnr": torch.tensor([1.0])})
    with pytest.raises(InputError, match="1-D"):
        book.add("d", {"psnr": torch.tensor([]), "ssim": torch.tensor([])})
    with pytest.raises(InputError, match="no scene"):
        ScoreBook().averages()


def test_merged_books_of_ranks_equal_one_book_and_reject_overlapping_shards():
    values = {f"s{i}": {"psnr": torch.tensor([20.0 + i, 21.0 + i]), "ssim": float(i) / 10} for i in range(5)}
    whole = ScoreBook()
    ranks = [ScoreBook(), ScoreBook()]
    for i, (scene, metrics) in enumerate(values.items()):
        whole.add(scene, metrics)
        ranks[0 if i < 2 else 1].add(scene, metrics)  # contiguous blocks, as the test shards
        ranks[0 if i < 2 else 1].add_time("encoder", 0.1 * i)
        whole.add_time("encoder", 0.1 * i)
    merged = ScoreBook.merged([book.state() for book in ranks])
    assert merged.rows() == whole.rows() and merged.averages() == whole.averages()
    assert merged.timings() == whole.timings()
    ranks[1].add("s0", values["s0"])
    with pytest.raises(InputError, match="'s0' was evaluated by two ranks"):
        ScoreBook.merged([book.state() for book in ranks])
