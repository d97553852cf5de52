"""One split of the global batch (:class:`sagan.data.batch_plan.BatchPlan`): its arithmetic, its refusal,
the plan a checkpoint was written under, and the trainer handing one plan to the data stream, the GAN step,
the start-up notes and the log line."""

from __future__ import annotations

import pytest

from sagan.config import load_config
from sagan.data.batch_plan import BatchPlan
from sagan.data.stream import EpochBatchSampler
from sagan.errors import UserError
from sagan.training.loop import Trainer
from sagan.training.startup_notes import split_note

TINY = ["model.g_ch=16", "model.d_ch=16", "data.demo_size=48", "train.num_workers=0", "train.max_steps=1"]


def config(*overrides: str):
    return load_config("demo", overrides=[*TINY, *overrides])


def checkpoint_of(cfg, processes: int | None) -> dict:
    """What split_note and BatchPlan.of_checkpoint read of a training checkpoint: its config and meta."""
    meta = {} if processes is None else {"num_processes": processes}
    return {"config": cfg.to_dict(), "meta": meta, "path": "ckpt.pt"}


def test_plan_cuts_the_global_batch_into_processes_times_accumulation_micro_batches():
    plan = BatchPlan.of(config("train.batch_size=24", "train.grad_accum=2"), processes=3)
    assert (plan.global_batch, plan.processes, plan.accumulation, plan.micro_batch) == (24, 3, 2, 4)
    assert plan.micro_batch * plan.processes * plan.accumulation == plan.global_batch


def test_plan_refuses_a_global_batch_the_processes_and_accumulation_do_not_divide():
    cfg = config("train.batch_size=8", "train.grad_accum=2")  # valid on one process, not on three
    with pytest.raises(UserError) as e:
        BatchPlan.of(cfg, processes=3)
    assert str(e.value) == ("train.batch_size=8 is not divisible by grad_accum x processes = 2 x 3; pick a multiple "
                            "of 6")


def test_plan_is_frozen_and_compares_by_its_numbers():
    a, b = BatchPlan(16, 2, 2), BatchPlan(16, 2, 2)
    assert a == b and a != BatchPlan(16, 1, 4)
    with pytest.raises(AttributeError):
        a.micro_batch = 3


def test_plan_of_a_checkpoint_reads_its_config_and_recorded_processes():
    cfg = config("train.batch_size=16", "train.grad_accum=2")
    assert BatchPlan.of_checkpoint(checkpoint_of(cfg, 4)) == BatchPlan(16, 4, 2)
    assert BatchPlan.of_checkpoint(checkpoint_of(cfg, 4)).micro_batch == 2
    # a checkpoint without the record (a converted one) was written by one process
    assert BatchPlan.of_checkpoint(checkpoint_of(cfg, None)) == BatchPlan(16, 1, 2)


def test_micro_batch_choices_halve_the_per_process_batch_while_it_divides():
    assert BatchPlan(48, 2, 1).micro_batch_options() == [24, 12, 6, 3]
    assert BatchPlan(64, 1, 4).micro_batch_options() == [64, 32, 16, 8, 4, 2, 1]  # accumulation plays no part
    chosen = BatchPlan.with_micro_batch(256, 2, 32)
    assert (chosen.accumulation, chosen.micro_batch) == (4, 32)


def test_split_note_compares_the_runs_plan_with_the_checkpoints():
    ckpt = checkpoint_of(config("train.batch_size=8", "train.grad_accum=1"), 2)  # 4 images x 2 processes
    assert split_note(BatchPlan(8, 2, 1), ckpt) is None
    assert split_note(BatchPlan(8, 1, 2), ckpt) == ("note: same global batch and micro-batch under another split "
                                                    "(2 process(es) x 1 accumulation -> 1 x 2): the same run continues")
    assert split_note(BatchPlan(8, 1, 1), ckpt).startswith("note: micro-batch 4 -> 8 images since the checkpoint "
                                                           "(2 process(es) x 1 accumulation -> 1 x 1)")
    assert split_note(BatchPlan(16, 2, 2), ckpt).startswith("note: global batch 8 -> 16 since the checkpoint")


def test_sampler_of_a_plan_cuts_like_the_sampler_of_its_numbers():
    plan = BatchPlan(12, 3, 2)
    for rank in range(3):
        a = EpochBatchSampler.for_plan(plan, size=50, rank=rank, seed=7)
        b = EpochBatchSampler(size=50, global_batch=12, micro_batches=2, rank=rank, world=3, seed=7)
        a.set_epoch(2, 12)
        b.set_epoch(2, 12)
        assert list(a) == list(b) and a.per_process == b.per_process == plan.micro_batch == 2
        assert a.plan == b.plan == plan


def test_trainer_hands_one_plan_to_the_stream_the_step_and_the_log(tmp_path):
    trainer = Trainer(config("train.batch_size=8", "train.grad_accum=2"), outdir=tmp_path / "run", progress=False)
    assert trainer.plan == BatchPlan(8, 1, 2) and trainer.plan.micro_batch == 4
    assert trainer.gan.plan is trainer.plan and trainer.gan.per_process == 4
    assert trainer.data.sampler.plan == trainer.plan and trainer.data.sampler.per_process == 4
    trainer.run()  # (releases the run folder's lock)
    assert "global batch 8 = 4 x 1 process(es) x 2 accumulation" in (tmp_path / "run" / "log.txt").read_text()


def test_trainer_refuses_a_dataset_smaller_than_one_batch_before_writing_anything(tmp_path):
    with pytest.raises(UserError, match="the dataset has 48 images, fewer than one batch"):
        Trainer(config("train.batch_size=64"), outdir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
