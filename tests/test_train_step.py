"""One training step: `Trainer.train_step` is the step `Trainer.train` runs, and the one
the step, memory, start-up and T2T benchmarks time (`benchmarks/common.make_trainer`)."""

import os
import sys

import numpy as np

from t2t_videoflow.config import registry
from t2t_videoflow.training import trainer as trainer_lib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import common  # noqa: E402  (benchmarks/common.py)


def tiny_hparams():
    hp = registry.create_hparams("videoflow_tiny")
    hp.init_batch_size = hp.batch_size
    return hp


def test_train_step_is_the_loops_step(tmp_path):
    """Two steps by `train()` and two by `train_step()` from the same start give the
    same weights, losses and step count."""
    looped = common.make_trainer(tiny_hparams(), str(tmp_path / "a"), seed=3)
    stepped = common.make_trainer(tiny_hparams(), str(tmp_path / "b"), seed=3)
    for a, b in zip(looped.variables, stepped.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    looped.config.log_every_steps = 1             # a train_log.jsonl row per step
    looped.train(train_steps=2)
    metrics = [stepped.train_step() for _ in range(2)]
    assert stepped.step == looped.step == 2
    assert set(metrics[0]) == {"bpp", "grad_norm", "learning_rate"}
    log = trainer_lib.train_log(str(tmp_path / "a"))
    assert [float(m["bpp"]) for m in metrics] == [log[1]["bpp"], log[2]["bpp"]]
    for a, b in zip(looped.variables, stepped.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_benchmark_trainer_counts_the_steps_flops(tmp_path):
    trainer = common.make_trainer(tiny_hparams(), str(tmp_path))
    flops = common.graph_flops(trainer.train_step_graph())
    assert sum(flops.values()) > 0
    assert np.isfinite(float(trainer.train_step()["bpp"]))
