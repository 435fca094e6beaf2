"""Several input pipelines (workers) shard by example: together, in order, they yield
exactly the clips and windows of one pipeline's global batches."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.config import registry

PROBLEM = "stochastic_shapes_tiny"


def _batches(data_dir, pipelines, pipe, replicas, steps, batch_size=4):
    hp = registry.create_hparams("videoflow_tiny", f"batch_size={batch_size}", PROBLEM)
    ctx = tf.distribute.InputContext(num_input_pipelines=pipelines,
                                     input_pipeline_id=pipe, num_replicas_in_sync=replicas)
    ds = registry.problem(PROBLEM).dataset("train", data_dir, hp, input_context=ctx,
                                           deterministic=True, seed=11)
    local = replicas // pipelines
    out, it = [], iter(ds)
    for _ in range(steps):   # a step takes one per-replica batch per local replica
        out.append([next(it)["video"].numpy() for _ in range(local)])
    return out


@pytest.mark.parametrize("pipelines,replicas", [(2, 2), (2, 4), (4, 4)])
def test_pipelines_together_yield_one_pipelines_global_batches(tiny_data_dir, pipelines,
                                                               replicas):
    steps = 6      # 24 clips: more than the 21 of a pass, so the repeat is crossed too
    one = _batches(tiny_data_dir, 1, 0, 1, steps)
    shares = [_batches(tiny_data_dir, pipelines, p, replicas, steps)
              for p in range(pipelines)]
    for step in range(steps):
        # Replica r (pipeline r // local, local replica r % local) gets rows
        # [r b, (r + 1) b) of the single pipeline's global batch.
        joined = np.concatenate([b for share in shares for b in share[step]])
        np.testing.assert_array_equal(joined, one[step][0])
    assert shares[0][0][0].shape[0] == 4 // replicas


def test_several_pipelines_need_a_deterministic_order(tiny_data_dir):
    hp = registry.create_hparams("videoflow_tiny", "batch_size=4", PROBLEM)
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=0,
                                     num_replicas_in_sync=2)
    with pytest.raises(ValueError, match="deterministic"):
        registry.problem(PROBLEM).dataset("train", tiny_data_dir, hp, input_context=ctx)
