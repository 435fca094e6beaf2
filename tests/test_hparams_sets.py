"""Every value of the T2T sets (`glow.glow_hparams`, `next_frame_glow`'s sets) and the
VideoFlow paper's appendix E, tables E.1 / E.2."""

import pytest

from t2t_videoflow.config import registry

# Fields the model code reads (of T2T's `glow_hparams` / `next_frame_glow_hparams`)
# plus ours.
MODEL_FIELDS = """n_levels depth coupling coupling_width coupling_dropout activation n_bits_x
top_prior level_scale init_batch_size temperature batch_size learning_rate_constant
clip_grad_norm weight_decay learning_rate_schedule learning_rate learning_rate_warmup_steps
learning_rate_decay_scheme learning_rate_decay_steps optimizer_adam_beta1 optimizer_adam_beta2
optimizer_adam_epsilon video_num_input_frames video_num_target_frames gen_mode learn_top_scale
condition_all_levels num_train_frames latent_dist_encoder num_cond_latents latent_architecture
latent_apply_dilations latent_dilation_rates model_input cond_first_frame latent_skip
latent_encoder_depth latent_encoder_width latent_dropout latent_pre_output_channels
latent_activation latent_noise pretrain_steps train_steps frame_height frame_width
frame_channels memory_efficient_backprop network_dtype loop_flow_steps
weight_ema_decay""".split()

# T2T next_frame_glow_hparams = glow_hparams (+ basic_params1) + video fields.
NFG = dict(
    n_levels=3, depth=32, coupling="affine", coupling_width=512, coupling_dropout=0.0,
    activation="relu", n_bits_x=8, top_prior="single_conv", level_scale="prev_level",
    init_batch_size=256, temperature=1.0, batch_size=32, learning_rate_constant=3e-4,
    clip_grad_norm=0.0, weight_decay=0.0, learning_rate_schedule="legacy", learning_rate=0.1,
    learning_rate_warmup_steps=100, learning_rate_decay_scheme="none",
    learning_rate_decay_steps=5000, optimizer="adam", optimizer_adam_beta1=0.85,
    optimizer_adam_beta2=0.997, optimizer_adam_epsilon=1e-6, initializer="orthogonal",
    initializer_gain=1.5, video_num_input_frames=1, video_num_target_frames=1,
    gen_mode="conditional", learn_top_scale=False, condition_all_levels=True,
    num_train_frames=-1, latent_dist_encoder="conv_net", num_cond_latents=1,
    latent_architecture="glow_resnet", latent_apply_dilations=False,
    latent_dilation_rates=[1, 3], model_input=False, cond_first_frame=False, latent_skip=True,
    latent_encoder_depth=2, latent_encoder_width=512, latent_dropout=0.0,
    latent_pre_output_channels=512, latent_activation="relu", latent_noise=0.0,
    pretrain_steps=-1, frame_height=64, frame_width=64, frame_channels=3, train_steps=250000,
    memory_efficient_backprop=False, network_dtype="float32", loop_flow_steps=False,
    weight_ema_decay=0.0)

BAIR_QUANT = dict(NFG, video_num_input_frames=3, video_num_target_frames=10, num_train_frames=4,
                  num_cond_latents=3, depth=24, activation="gatu",
                  latent_dist_encoder="conv3d_net", latent_encoder_depth=5,
                  latent_encoder_width=256, latent_apply_dilations=True,
                  latent_activation="gatu", learning_rate_schedule="constant*linear_warmup",
                  learning_rate_constant=3e-4, learning_rate_warmup_steps=10000,
                  init_batch_size=128, batch_size=5)
BAIR_QUAL = dict(BAIR_QUANT, coupling="additive", coupling_width=392, temperature=0.5)
SHAPES = dict(BAIR_QUANT, video_num_input_frames=1, video_num_target_frames=2,
              num_train_frames=2, num_cond_latents=1, coupling="additive",
              latent_encoder_depth=10, latent_skip=False, learning_rate_constant=1e-4,
              batch_size=10)
FRAME_GLOW = dict(NFG, gen_mode="unconditional", num_train_frames=1)

# Paper table E.1; everything the table leaves out as T2T's bair_quant.
PAPER_E1 = dict(BAIR_QUANT, n_levels=3, depth=24, coupling="affine", coupling_width=512,
                batch_size=40, learning_rate_constant=3e-4,
                learning_rate_schedule="constant*linear_warmup*linear_decay",
                learning_rate_warmup_steps=10000, learning_rate_decay_steps=150000,
                train_steps=600000, latent_encoder_depth=5, latent_encoder_width=256)
# Paper table E.2: additive, 392 channels, 500K steps; temperature 0.5 as T2T bair_qual.
PAPER_E2 = dict(PAPER_E1, coupling="additive", coupling_width=392, train_steps=500000,
                temperature=0.5)

BUILTIN = ["next_frame_glow_hparams", "next_frame_glow_bair_quant", "next_frame_glow_bair_qual",
           "next_frame_glow_shapes", "frame_glow_hparams", "videoflow_bpp", "videoflow_qual",
           "videoflow_shapes_cpu", "videoflow_tiny"]

EXPECTED = {
    "next_frame_glow_hparams": NFG,
    "next_frame_glow_bair_quant": BAIR_QUANT,
    "next_frame_glow_bair_qual": BAIR_QUAL,
    "next_frame_glow_shapes": SHAPES,
    "frame_glow_hparams": FRAME_GLOW,
    "videoflow_bpp": PAPER_E1,
    "videoflow_qual": PAPER_E2,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_value(name):
    values = registry.hparams(name).values()
    assert values == EXPECTED[name]      # every field, nothing more, nothing less
    for key, value in EXPECTED[name].items():   # and the types (3e-4 is float, 5 is int)
        assert type(values[key]) is type(value), key


def test_all_sets_define_the_model_fields_with_the_same_types():
    base = registry.hparams("next_frame_glow_hparams")
    assert set(BUILTIN) <= set(registry.list_hparams())
    for name in BUILTIN:
        hp = registry.hparams(name)
        assert set(MODEL_FIELDS) <= set(hp.values()), name
        assert set(hp.values()) == set(base.values()), name
        for key in hp.values():
            assert hp.type_of(key) == base.type_of(key), (name, key)


def test_cpu_sets():
    cpu = registry.create_hparams("videoflow_shapes_cpu", problem_name="stochastic_shapes_32")
    shapes = registry.hparams("next_frame_glow_shapes")
    changed = {k for k, v in cpu.values().items() if shapes.values()[k] != v}
    assert changed == {"frame_height", "frame_width", "depth", "coupling", "coupling_width",
                       "latent_encoder_depth", "latent_encoder_width",
                       "latent_pre_output_channels", "batch_size", "init_batch_size",
                       "learning_rate_constant", "learning_rate_schedule",
                       "learning_rate_warmup_steps", "learning_rate_decay_steps", "train_steps",
                       "clip_grad_norm"}
    assert cpu.learning_rate_decay_steps == 6000
    assert (cpu.frame_height, cpu.depth, cpu.coupling, cpu.coupling_width, cpu.batch_size,
            cpu.learning_rate_constant, cpu.clip_grad_norm, cpu.train_steps) == (
                32, 8, "affine", 64, 16, 4e-4, 20.0, 16000)
    assert cpu.learning_rate_warmup_steps < cpu.train_steps - cpu.learning_rate_decay_steps
    demo16 = registry.create_hparams("videoflow_shapes16_demo",
                                     problem_name="stochastic_shapes_16")
    demo16_changed = {k for k, v in demo16.values().items() if cpu.values()[k] != v}
    assert demo16_changed == {"frame_height", "frame_width", "n_levels", "n_bits_x",
                              "learning_rate_constant", "learning_rate_warmup_steps",
                              "learning_rate_decay_steps", "train_steps"}
    assert (demo16.frame_height, demo16.n_levels, demo16.n_bits_x, demo16.train_steps,
            demo16.learning_rate_constant) == (16, 2, 4, 3000, 6e-4)
    assert demo16.learning_rate_warmup_steps < (demo16.train_steps
                                                - demo16.learning_rate_decay_steps)
    tiny = registry.create_hparams("videoflow_tiny", problem_name="stochastic_shapes_tiny")
    assert (tiny.frame_height, tiny.n_levels, tiny.depth, tiny.coupling_width,
            tiny.batch_size, tiny.train_steps) == (16, 2, 1, 8, 2, 2)


def test_docstrings_cite_their_source():
    from t2t_videoflow.hparams import videoflow
    for name in BUILTIN:
        doc = getattr(videoflow, name).__doc__
        assert doc and ("T2T" in doc or "paper" in doc.lower() or "tests" in doc), name
    assert "1.87 bits per pixel" in videoflow.videoflow_bpp.__doc__
    assert "table E.2" in videoflow.videoflow_qual.__doc__


def test_sets_are_fresh_objects():
    a = registry.hparams("videoflow_bpp")
    a.depth = 1
    assert registry.hparams("videoflow_bpp").depth == 24
