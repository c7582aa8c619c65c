"""``pmsplat reproduce --gpus N``'s training path, on 2 CPU processes: a stage with
``trainer.devices=2`` runs as a ``pmsplat train`` child process (Lightning's DDP launcher starts the
other rank by re-running the child's command, never the pipeline), and the stage's result
(checkpoint, weights digest, one history row per step) is what the pipeline records for one
process."""

from __future__ import annotations

from pmsplat.reproduce import pipeline
from pmsplat.reproduce.protocol import RunSpec
from testkit.tiny_mvsplat import tiny_overrides


def test_a_two_process_stage_runs_as_a_child_and_records_its_result(tiny_synthetic, tmp_path):
    overrides = [o for o in tiny_overrides(tiny_synthetic, tmp_path / "unused", "loss=[mse]", "trainer.max_steps=2",
                                           "trainer.val_check_interval=1000", "checkpointing.every_n_train_steps=1000")
                 if not o.startswith("output_dir=")]
    assert pipeline._processes(overrides + ["trainer.accelerator=cpu", "trainer.devices=2"]) == 2
    assert pipeline._processes(overrides) == 1
    spec = RunSpec(name="ddp", kind="train", overrides=overrides + ["trainer.accelerator=cpu", "trainer.devices=2"])
    directory = tmp_path / "out" / "runs" / "ddp"
    result = pipeline._train(spec, directory, None)
    assert (directory / result["checkpoint"]).is_file() and result["checkpoint"] == "checkpoints/last.ckpt"
    assert [row["step"] for row in result["history"]] == [0.0, 1.0]
    assert result["weights"] == pipeline.weights_digest(directory / result["checkpoint"])
