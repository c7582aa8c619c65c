"""A chunk listed in index.json but missing on disk (issue #27: such chunks were dropped without a
word, training ran on 24 of 32 scenes):

- through the CLI, ``pmsplat train`` stops with exit code 2 and one line naming the missing file,
  the count of scenes lost and the opt-in, without a traceback;
- the opt-in that line names (``dataset.skip_missing_chunks=true``) works: the run trains on the
  other scenes and warns with the count;
- the check is part of the start-up validation (``typed_config``), before any model is built;
- in-process, the loader's index and chunk list agree (the length counts only scenes it can read).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from splatcore.dataset.config import DatasetCfg
from splatcore.dataset.dataset import ChunkedDataset
from splatcore.errors import DataError
from testkit.tiny_mvsplat import SIZE, tiny_overrides


@pytest.fixture(scope="module")
def one_chunk_missing(tmp_path_factory) -> Path:
    """A tiny synthetic set with 3 training scenes of one chunk each; the chunk 000001.torch deleted."""
    from pmsplat.synthetic import SynthConfig, generate

    root = tmp_path_factory.mktemp("one_chunk_missing")
    generate(SynthConfig(out=root, train_scenes=3, test_scenes=1, frames=37, height=SIZE, width=SIZE,
                         supersample=1, scenes_per_chunk=1))
    (root / "train" / "000001.torch").unlink()
    return root


def _train(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    overrides = tiny_overrides(root, out, "trainer.max_steps=1", "trainer.val_check_interval=1000", *extra)
    return subprocess.run([sys.executable, "-m", "pmsplat.cli", "train", *overrides],
                          capture_output=True, text=True, cwd=out.parent, timeout=300)


def test_a_listed_but_missing_chunk_is_one_clear_error(one_chunk_missing, tmp_path):
    done = _train(one_chunk_missing, tmp_path / "out")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("pmsplat train: ")
    assert str(one_chunk_missing / "train" / "index.json") in line
    assert "000001.torch" in line and "1 of its 3 scenes" in line
    assert "dataset.skip_missing_chunks=true" in line


def test_the_check_runs_at_start_up_before_any_model_is_built(one_chunk_missing, tmp_path):
    from splatcore.run_config import compose_config, typed_config

    composed = compose_config(tiny_overrides(one_chunk_missing, tmp_path / "out", "trainer.max_steps=1"))
    with pytest.raises(DataError, match=r"000001\.torch.*dataset\.skip_missing_chunks=true"):
        typed_config(composed)
    opted_in = compose_config(tiny_overrides(one_chunk_missing, tmp_path / "out", "trainer.max_steps=1", "dataset.skip_missing_chunks=true"))
    assert typed_config(opted_in).dataset.skip_missing_chunks is True


def test_the_opt_in_trains_on_the_other_scenes_and_warns_with_the_count(one_chunk_missing, tmp_path):
    done = _train(one_chunk_missing, tmp_path / "out", "dataset.skip_missing_chunks=true")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    text = " ".join(done.stderr.split())
    assert "skipping 1 chunk file(s) listed in index.json but missing on disk (1 of 3 scenes" in text
    assert "000001.torch" in text


def _cfg(root: Path, **values) -> DatasetCfg:
    return DatasetCfg(name="synthetic", roots=[root], image_shape=[SIZE, SIZE], ori_image_shape=[SIZE, SIZE], **values)


@pytest.mark.parametrize("use_index", [False, True])
def test_the_loader_raises_or_skips_consistently(one_chunk_missing, use_index, caplog):
    with pytest.raises(DataError, match="000001.torch"):
        ChunkedDataset(_cfg(one_chunk_missing, use_index_to_load_chunk=use_index), "train")
    with caplog.at_level(logging.WARNING, logger="splatcore.dataset.dataset"):
        dataset = ChunkedDataset(_cfg(one_chunk_missing, use_index_to_load_chunk=use_index, skip_missing_chunks=True),
                                 "train")
    assert len(dataset) == 2 and len(dataset.chunks) == 2 and len(dataset.index) == 2
    assert all(path.is_file() for path in dataset.chunks)
    assert "skipping 1 chunk file(s)" in caplog.text


def test_a_complete_dataset_does_not_warn(tmp_path, caplog):
    from pmsplat.synthetic import SynthConfig, generate

    generate(SynthConfig(out=tmp_path, train_scenes=2, test_scenes=1, frames=37, height=SIZE, width=SIZE,
                         supersample=1, scenes_per_chunk=1))
    with caplog.at_level(logging.WARNING):
        dataset = ChunkedDataset(_cfg(tmp_path), "train")
    assert len(dataset.chunks) == 2 and "skipping" not in caplog.text
