"""The VideoFlow model against T2T's `next_frame_glow` (oracle fixtures produced by running
T2T on perturbed weights): bits per pixel, per-frame intermediates, and the T2T weight
import from dicts and from real TF1 checkpoints."""

import json
import types

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import load_oracle
from inference_testing import write_tf1_checkpoint
from t2t_videoflow.model.videoflow import T2T_BODY_SCOPE, build_model, load_t2t_weights

ORACLES = ["model_affine_relu_16", "model_additive_gatu_8"]
PERT = "var_pert/"


# Hparams this port added to T2T's, at the values that compute what T2T computes.
ADDED_HPARAMS = {
    "memory_efficient_backprop": False,
    "network_dtype": "float32",
    "loop_flow_steps": False,
    "weight_ema_decay": 0.0,
}


def oracle_model(name, **port_hparams):
    """(oracle, model built from the oracle's hparams, before its weights are loaded).

    `port_hparams` set fields this port added (e.g. `network_dtype="bfloat16"`); the
    others take their defaults."""
    oracle = load_oracle(name)
    # The oracle records T2T's hparams; fields this port added take their defaults.
    unknown = set(port_hparams) - set(ADDED_HPARAMS)
    assert not unknown, f"not hparams this port added: {sorted(unknown)}"
    added = dict(ADDED_HPARAMS, **port_hparams)
    hparams = types.SimpleNamespace(**added, **json.loads(str(oracle["meta/hparams"])))
    frame_shape = tuple(json.loads(str(oracle["meta/frame_shape"])))
    model = build_model(hparams, frame_shape)
    return oracle, model


def pert_weights(oracle):
    return {k[len(PERT):]: v for k, v in oracle.items() if k.startswith(PERT)}


def oracle_inputs(oracle):
    """uint8 video [B, T, H, W, C] and the oracle's noise moved to [B, T, ...]."""
    return oracle["in/video_uint8"], np.transpose(oracle["in/noise"], [1, 0, 2, 3, 4])


@pytest.fixture(scope="module", params=ORACLES)
def loaded(request):
    oracle, model = oracle_model(request.param)
    loaded_names = load_t2t_weights(model, pert_weights(oracle))
    return oracle, model, loaded_names


def test_every_oracle_variable_is_loaded(loaded):
    oracle, model, names = loaded
    assert sorted(names) == sorted(pert_weights(oracle))
    assert len(names) == len(model.t2t_variables())


def test_bits_per_pixel_matches_t2t(loaded):
    oracle, model, _ = loaded
    video, noise = oracle_inputs(oracle)
    n_in = int(oracle["meta/video_num_input_frames"])
    bpp = model.bits_per_pixel(video, n_in, noise=noise).numpy()
    assert bpp.shape == (video.shape[0], video.shape[1] - n_in)
    np.testing.assert_allclose(bpp[:, 0], oracle["out_pert/bpp_per_example"],
                               atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(model.loss(video, n_in, noise=noise, training=False),
                               oracle["out_pert/bpp"], atol=1e-4, rtol=1e-5)


def test_data_init_after_an_import_keeps_the_imported_weights(loaded):
    """The trainer runs data-dependent init before fine-tuning an imported model: every
    actnorm (flow, 2-D and 3-D prior) is marked initialised by the import, so the
    first loss is still T2T's."""
    oracle, model, _ = loaded
    video, noise = oracle_inputs(oracle)
    before = {k: v.numpy() for k, v in model.t2t_variables().items()}
    model.data_init(np.flip(video, axis=0).copy(), seed=(5, 5))
    for name, var in model.t2t_variables().items():
        np.testing.assert_array_equal(var.numpy(), before[name], err_msg=name)
    n_in = int(oracle["meta/video_num_input_frames"])
    np.testing.assert_allclose(model.loss(video, n_in, noise=noise, training=False),
                               oracle["out_pert/bpp"], atol=1e-4, rtol=1e-5)


def test_per_frame_intermediates_match_t2t(loaded):
    oracle, model, _ = loaded
    video, noise = oracle_inputs(oracle)
    x = model.dequantize(video, noise)
    d = float(np.prod(model.frame_shape))
    _, details = model.frame_objectives(x, return_details=True)
    enc = details["encoding"]
    assert enc.top.shape[1] == video.shape[1]
    (level_loc, level_scale), = details["level_params"]
    top_loc, top_scale = details["top_params"]
    for t in range(video.shape[1]):
        prefix = f"out_pert/frame{t}/"
        np.testing.assert_allclose(x[:, t], oracle[prefix + "x_dequantized"], atol=1e-6)
        encoder_objective = (-d * np.log(256.0) + enc.log_det[:, t]
                             + details["level_log_probs"][0][:, t])
        ours = {
            "split_0/x1": enc.conditions[0][:, t],
            "split_0/z": enc.latents[0][:, t],
            "split_0/prior_on_z2/loc": level_loc[:, t],
            "split_0/prior_on_z2/scale": level_scale[:, t],
            "split_0/logp": details["level_log_probs"][0][:, t],
            "z_top": enc.top[:, t],
            "top_prior/loc": top_loc[:, t],
            "top_prior/scale": top_scale[:, t],
            "top_prior/logp": details["top_log_prob"][:, t],
            "encoder_objective": encoder_objective,
        }
        for key, value in ours.items():
            np.testing.assert_allclose(
                np.asarray(value), oracle[prefix + key], atol=1e-4, rtol=1e-5,
                err_msg=f"frame {t}: {key}")
        # The conditional priors take over exactly at frame num_cond_latents.
        conditional = t >= int(oracle["meta/num_cond_latents"])
        assert bool(oracle[prefix + "top_prior/conditional"]) == conditional
        assert bool(oracle[prefix + "split_0/prior_on_z2/conditional"]) == conditional


def test_load_from_tf1_checkpoint_gives_t2t_bpp(tmp_path):
    oracle, model = oracle_model("model_affine_relu_16")
    weights = pert_weights(oracle)
    extra = {"global_step": np.int64(123),
             "next_frame_glow/body/codec/revnet_0/unused_slot": np.zeros(3, np.float32)}
    ckpt = write_tf1_checkpoint(str(tmp_path / "model.ckpt"), {**weights, **extra})
    reader = tf.train.load_checkpoint(ckpt)
    assert T2T_BODY_SCOPE + "codec/revnet_0/revnet_step_0/actnorm/actnorm_center/b" in (
        reader.get_variable_to_shape_map())
    names = load_t2t_weights(model, ckpt)
    assert sorted(names) == sorted(weights)
    for name, var in model.t2t_variables().items():
        np.testing.assert_array_equal(var.numpy(), weights[T2T_BODY_SCOPE + name])
    video, noise = oracle_inputs(oracle)
    np.testing.assert_allclose(model.bits_per_pixel(video, 2, noise=noise)[:, 0],
                               oracle["out_pert/bpp_per_example"], atol=1e-4, rtol=1e-5)


def test_load_errors_name_the_variable(tmp_path):
    oracle, model = oracle_model("model_affine_relu_16")
    weights = pert_weights(oracle)
    missing_name = T2T_BODY_SCOPE + "top/conv3d/res_final/W"
    assert missing_name in weights
    partial = {k: v for k, v in weights.items() if k != missing_name}
    with pytest.raises(ValueError, match="1 T2T variables missing.*top/conv3d/res_final/W"):
        load_t2t_weights(model, partial)
    # From a checkpoint path too.
    ckpt = write_tf1_checkpoint(str(tmp_path / "partial.ckpt"), partial)
    with pytest.raises(ValueError, match="top/conv3d/res_final/W"):
        load_t2t_weights(model, ckpt)
    # Non-strict loading skips it and loads the rest.
    assert sorted(load_t2t_weights(model, partial, strict=False)) == sorted(partial)

    bad_name = T2T_BODY_SCOPE + "codec/revnet_1/revnet_step_0/actnorm/actnorm_center/b"
    bad = {k: v + 1.0 for k, v in weights.items()}
    bad[bad_name] = np.zeros([1, 1, 1, 5], np.float32)
    current = {k: v.numpy() for k, v in model.t2t_variables().items()}
    with pytest.raises(ValueError, match=r"Shape mismatch for " + bad_name +
                       r": checkpoint \(1, 1, 1, 5\)"):
        load_t2t_weights(model, bad)
    bad = {k: v + 1.0 for k, v in weights.items()}
    nan_name = T2T_BODY_SCOPE + "top/conv3d/res_final/W"
    bad[nan_name] = np.full_like(weights[nan_name], np.nan)
    with pytest.raises(ValueError, match="Non-finite values in " + nan_name):
        load_t2t_weights(model, bad)
    # Everything is checked before anything is assigned: the model is untouched.
    for name, var in model.t2t_variables().items():
        np.testing.assert_array_equal(var.numpy(), current[name], err_msg=name)
