"""``pmsplat data synth`` writes a loadable benchmark; ``pmsplat data fetch-index`` validates what
it downloads and fails clearly without internet."""

from __future__ import annotations

import io
import json
import urllib.error

from splatcore.dataset import ChunkedDataset, read_evaluation_index

from pmsplat.cli import main
from pmsplat.commands import data as data_command
from pmsplat.synthetic import synthetic_dataset_cfg


def test_synth_command_writes_a_loadable_set(tmp_path, capsys):
    out = tmp_path / "synthetic"
    code = main(["data", "synth", "--out", str(out), "--scenes", "1", "--test-scenes", "1", "--frames", "37",
                 "--size", "16", "24", "--supersample", "1", "--workers", "1", "--seed", "3"])
    assert code == 0
    assert "Wrote 1 train + 1 test scenes (37 frames, 16x24)" in capsys.readouterr().out
    metadata = json.loads((out / "synthetic.json").read_text())
    assert metadata["dataset"]["image_shape"] == [16, 24] and metadata["dataset"]["near"] == 1.0
    assert "z-depth" in metadata["depth"]
    item = next(iter(ChunkedDataset(synthetic_dataset_cfg(out), "train")))
    assert item["context"]["image"].shape == (2, 3, 16, 24)
    assert len(read_evaluation_index(out / "evaluation_index_extrapolation.json")) == 1


def test_synth_command_rejects_bad_settings(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--frames", "5"]) == 2
    assert "frames must be >=" in capsys.readouterr().err


def test_fetch_index_without_internet_fails_clearly(tmp_path, monkeypatch, capsys):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(data_command.urllib.request, "urlopen", offline)
    assert main(["data", "fetch-index", "--out", str(tmp_path), "--only", "re10k_bound_aware.json"]) == 1
    error = capsys.readouterr().err
    assert "re10k_bound_aware.json: cannot download https://raw.githubusercontent.com/aim-uofa/PM-Loss" in error
    assert "needs internet access" in error
    assert not (tmp_path / "re10k_bound_aware.json").exists()


def test_fetch_index_validates_and_writes(tmp_path, monkeypatch, capsys):
    payloads = {
        "evaluation_index_re10k.json": json.dumps({"abc": {"context": [0, 4], "target": [2]}, "def": None}).encode(),
        "evaluation_index_acid.json": b"<html>rate limited</html>",
    }

    def fake(url, timeout):
        return io.BytesIO(payloads[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(data_command.urllib.request, "urlopen", fake)
    code = main(["data", "fetch-index", "--out", str(tmp_path), "--only", "evaluation_index_re10k.json", "evaluation_index_acid.json"])
    assert code == 1
    assert read_evaluation_index(tmp_path / "evaluation_index_re10k.json")["def"] is None
    assert not (tmp_path / "evaluation_index_acid.json").exists()
    assert "not a valid index" in capsys.readouterr().err
