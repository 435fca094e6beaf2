"""The VideoFlow model: causality, the prior at initialisation, the loss assembled by
hand, training on every encoder, exact encode/decode, sampling, the paper config,
T2T test behaviours (T2T's `nfg_*_test.py`), input errors, checkpoints and tf.distribute.

The T2T oracle comparisons are in `test_model_oracle.py`."""

import math
import resource
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from flow_testing import perturb
from t2t_videoflow.layers.conv import ConvActNorm2D
from t2t_videoflow.layers.keras_tracking import (
    deferrable_initializer, keras_layers_in, random_kernels_deferred)
from t2t_videoflow.model.videoflow import VideoFlow, postprocess, preprocess

tfd = tfp.distributions

TINY = dict(n_levels=2, depth=1, coupling_width=8, latent_encoder_depth=1,
            latent_encoder_width=8, latent_pre_output_channels=8, num_cond_latents=2)


def tiny_model(shape=(8, 8, 3), seed=0, **overrides):
    return VideoFlow(shape, seed=seed, **{**TINY, **overrides})


def shapes_clips(batch=2, frames=3, size=8):
    """Shapes-like clips: a flat background and a 3x3 square moving one pixel a frame."""
    v = np.zeros((batch, frames, size, size, 3), np.uint8)
    v[...] = [40, 120, 200]
    for b in range(batch):
        for t in range(frames):
            r, c = (3 * b + t) % (size - 3), (2 * b + t) % (size - 3)
            v[b, t, r:r + 3, c:c + 3] = [250, 30 + 60 * b, 10]
    return v


def random_clips(batch=2, frames=3, size=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, frames, size, size, 3),
                                                dtype=np.uint8)


def noise_like(video, seed=1):
    return np.random.default_rng(seed).uniform(0, 1 / 256, video.shape).astype(np.float32)


def perturbed_model(video, seed=0, scale=0.05, **overrides):
    """A tiny model after data_init with every weight perturbed (non-trivial read-outs).

    Sampling tests use `scale=0.02`: at 0.05 some of these random models' samples grow
    without bound within a frame or two (their densities are then inf - inf)."""
    model = tiny_model(seed=seed, **overrides)
    model.data_init(video)
    perturb(model.trainable_variables, scale, seed=3)
    return model


def _var(v):
    """The backing tf.Variable (Keras 3 variables wrap one)."""
    return v if isinstance(v, tf.Variable) else v.value


# -- causality -----------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ["conv3d_net", "conv_lstm"])
def test_causality(encoder):
    video = random_clips(frames=4, seed=2)
    noise = noise_like(video)
    model = perturbed_model(video, latent_dist_encoder=encoder)
    base = model.bits_per_pixel(video, 0, noise=noise).numpy()
    assert base.shape == (2, 4)
    for t in range(3):
        changed = video.copy()
        changed[:, t + 1] = 255 - changed[:, t + 1]
        bpp = model.bits_per_pixel(changed, 0, noise=noise).numpy()
        np.testing.assert_array_equal(bpp[:, :t + 1], base[:, :t + 1])
        assert np.all(np.abs(bpp[:, t + 1] - base[:, t + 1]) > 1e-3)
    # A changed context frame changes the target's bpp. conv3d_net with N = 2 sees
    # frames t-2, t-1 only; the ConvLSTM's state carries frame 0 to every later frame.
    changed = video.copy()
    changed[:, 0] = 255 - changed[:, 0]
    bpp = model.bits_per_pixel(changed, 0, noise=noise).numpy()
    diff = np.abs(bpp - base)
    assert np.all(diff[:, 2] > 1e-4)
    if encoder == "conv3d_net":
        np.testing.assert_array_equal(bpp[:, 1], base[:, 1])  # marginal prior
        np.testing.assert_array_equal(bpp[:, 3], base[:, 3])  # outside the window
    else:
        assert np.all(diff[:, 1:] > 1e-4)


# -- the prior at initialisation (T2T `NextFrameGlow.top_cond_prior`) ------------------


@pytest.mark.parametrize("encoder,skip", [
    ("conv3d_net", True), ("conv3d_net", False), ("conv_net", True), ("conv_net", False),
    ("conv_lstm", True), ("pointwise", True)])
def test_initial_prior_is_previous_latent_or_standard_normal(encoder, skip):
    video = random_clips(frames=4, seed=4)
    model = tiny_model(latent_dist_encoder=encoder, latent_skip=skip, batch_size=2)
    model.data_init(video)  # read-outs stay zero; only actnorms move
    x = model.dequantize(video, noise_like(video))
    _, details = model.frame_objectives(x, return_details=True)
    n = model.num_cond_latents
    assert n == (2 if encoder.startswith("conv3d") or encoder == "conv_net" else 1)
    enc = details["encoding"]
    (level_loc, level_scale), = details["level_params"]
    top_loc, top_scale = details["top_params"]
    np.testing.assert_allclose(top_scale, 1.0, atol=1e-6)
    np.testing.assert_allclose(level_scale, 1.0, atol=1e-6)
    # marginal priors before frame n: N(0, 1)
    np.testing.assert_allclose(top_loc[:, :n], 0.0, atol=1e-6)
    np.testing.assert_allclose(level_loc[:, :n], 0.0, atol=1e-6)
    # pointwise quirk: m = 1 at init and the skip adds z_{t-1} again.
    factor = (2.0 if encoder == "pointwise" else 1.0) if skip else 0.0
    np.testing.assert_allclose(top_loc[:, n:], factor * enc.top[:, n - 1:-1].numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(level_loc[:, n:],
                               factor * enc.latents[0][:, n - 1:-1].numpy(), atol=1e-5)


# -- the loss by hand ------------------------------------------------------------------


def _reference_objectives(model, x):
    """`J_t` assembled by hand, frame by frame, from the flow's parts and the prior
    layers themselves (an independent check of the engine's batched / looped
    scoring): `-D ln 256 + sum of the flow levels' log-dets + ln p(z^0) + ln p(z^top)`."""
    d = float(np.prod(model.frame_shape))
    n, first = model.num_cond_latents, model.cond_first_frame
    needed = n + int(first)
    levels, tops, out = [], [], []
    level_state = top_state = None
    for t in range(x.shape[1]):
        enc = model.flow.encode(x[:, t])
        mu0, sigma0 = model.level_priors[0](enc.conditions[0])
        if t < needed:
            level_loc, level_scale = mu0, sigma0
            top_loc, top_scale = model.marginal_top_prior(enc.top)
        else:
            past_levels = ([levels[0]] if first else []) + levels[-n:]
            past_tops = ([tops[0]] if first else []) + tops[-n:]
            level_loc, level_scale, level_state = model.level_cond_priors[0](
                past_levels, mu0, sigma0=sigma0, state=level_state)
            top_loc, top_scale, top_state = model.top_cond_prior(past_tops, state=top_state)
        log_p = (tf.reduce_sum(tfd.Normal(level_loc, level_scale).log_prob(enc.latents[0]),
                               axis=[1, 2, 3])
                 + tf.reduce_sum(tfd.Normal(top_loc, top_scale).log_prob(enc.top),
                                 axis=[1, 2, 3]))
        out.append(-d * math.log(256.0) + tf.add_n(enc.level_log_dets) + log_p)
        levels.append(enc.latents[0])
        tops.append(enc.top)
    return tf.stack(out, axis=1)


def test_loss_equals_hand_assembled_objective():
    video = random_clips(frames=4, seed=5)
    noise = noise_like(video)
    model = perturbed_model(video)
    x = preprocess(video) + noise
    d = 8 * 8 * 3
    num_context = 1
    bpp = -_reference_objectives(model, x) / (d * math.log(2.0))
    expected = tf.reduce_mean(bpp[:, num_context:])
    loss = model.loss(video, num_context, noise=noise, training=False)
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert np.isfinite(float(loss)) and float(loss) > 0.0


# -- training on every encoder ---------------------------------------------------------

ENCODER_CASES = {
    "conv3d_net": dict(latent_dist_encoder="conv3d_net"),
    "conv_net-single_conv": dict(latent_dist_encoder="conv_net",
                                 latent_architecture="single_conv"),
    "conv_net-glow_nn": dict(latent_dist_encoder="conv_net", latent_architecture="glow_nn"),
    "conv_net-glow_resnet": dict(latent_dist_encoder="conv_net",
                                 latent_architecture="glow_resnet"),
    "pointwise": dict(latent_dist_encoder="pointwise", batch_size=2),
    "conv_lstm": dict(latent_dist_encoder="conv_lstm"),
    "unconditional": dict(gen_mode="unconditional"),
}


@pytest.mark.parametrize("case", list(ENCODER_CASES))
def test_training_overfits_two_clips(case):
    """Adam (T2T's betas/eps) on 2 shapes clips drops the bpp by >= 30%."""
    video = tf.constant(shapes_clips())
    model = tiny_model(**ENCODER_CASES[case])
    model.data_init(video)
    # A short decay keeps the last steps from bouncing (each case runs < ~10 s).
    learning_rate = tf.keras.optimizers.schedules.PolynomialDecay(1e-2, 40, 1e-3)
    optimizer = tf.keras.optimizers.Adam(learning_rate, beta_1=0.85, beta_2=0.997,
                                         epsilon=1e-6)
    variables = model.trainable_variables

    @tf.function
    def train_step(step):
        with tf.GradientTape() as tape:
            loss = model.loss(video, 2, seed=tf.stack([step, 0]))
        grads = tape.gradient(loss, variables)
        # pointwise prev_level: the merge std is unused, its gradient is None.
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, variables) if g is not None])
        return loss

    start = float(model.loss(video, 2, seed=[0, 0], training=False))
    assert 7.5 < start < 11.0
    for step in range(40):
        train_step(tf.constant(step + 1))
    end = float(model.loss(video, 2, seed=[0, 0], training=False))
    print(f"\n{case}: bpp {start:.3f} -> {end:.3f} ({end / start:.3f})")
    assert np.isfinite(end)
    assert end <= 0.7 * start, (start, end)


# -- encode / decode / sample ----------------------------------------------------------


@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_decode_encode_is_exact_on_uint8(coupling):
    video = random_clips(batch=3, frames=3, seed=6)
    video[0, 0, :4] = 0
    video[0, 0, 4:] = 255
    model = perturbed_model(video, coupling=coupling)
    latents = model.encode(video)
    assert latents["top"].shape == (3, 3, 2, 2, 24)
    assert [z.shape for z in latents["levels"]] == [(3, 3, 4, 4, 6)]
    back = model.decode(latents)
    assert back.dtype == tf.uint8
    np.testing.assert_array_equal(back.numpy(), video)


def test_postprocess_inverts_preprocess_exactly():
    v = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16, 1)
    np.testing.assert_array_equal(postprocess(preprocess(v)).numpy(), v)


@pytest.fixture(scope="module")
def sampling_model():
    video = random_clips(batch=2, frames=2, seed=7)
    return perturbed_model(video, seed=1), video


def test_sample_at_temperature_zero_decodes_prior_means(sampling_model):
    model, context = sampling_model
    samples = model.sample(context, num_frames=2, temperature=0.0, seed=3)
    # By hand: encode the context, then take every prior's mean, frame by frame.
    enc = model.encode(context)
    tops = [enc["top"][:, t] for t in range(2)]
    levels = [enc["levels"][0][:, t] for t in range(2)]
    frames = []
    for _ in range(2):
        top, _, _ = model.top_cond_prior(tops[-2:])

        def mean_latent(level, x1):
            mu0, _ = model.level_priors[level](x1)
            loc, _, _ = model.level_cond_priors[level](levels[-2:], mu0)
            return loc

        frame, used, _ = model.flow.decode(top, sample_latent=mean_latent)
        tops.append(top)
        levels.append(used[0])
        frames.append(frame)
    expected = postprocess(tf.stack(frames, axis=1)).numpy()
    np.testing.assert_array_equal(samples.numpy(), expected)
    # The mean path does not depend on the seed.
    np.testing.assert_array_equal(
        model.sample(context, 2, temperature=0.0, seed=11).numpy(), expected)


def test_per_level_temperatures_route_noise_to_their_level(sampling_model):
    """One tau per flow level (finest first, top last): a scalar is the same tau at
    every level; the top's tau alone decides the first frame's top latent, the level's
    tau only the latent below it (both as the sampler drew them, from its carry)."""
    model, context = sampling_model
    np.testing.assert_array_equal(model.sample(context, 2, [0.7, 0.7], seed=5),
                                  model.sample(context, 2, 0.7, seed=5))

    def first_frame_latents(taus):
        _, _, carry = model.sampling_step(model.sampling_start(context), 0, taus, 5)
        return carry["top"][-1].numpy(), carry["levels"][0][-1].numpy()

    top_a, level_a = first_frame_latents([0.0, 1.0])
    top_b, level_b = first_frame_latents([0.8, 1.0])
    top_c, _ = first_frame_latents([0.0, 0.5])
    np.testing.assert_array_equal(top_a, top_b)
    assert np.abs(level_a - level_b).max() > 1e-2
    assert np.abs(top_a - top_c).max() > 1e-2
    with pytest.raises(ValueError, match=r"one per flow level \(2 values"):
        model.sample(context, 1, temperature=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        model.sample(context, 1, temperature=[1.0, -0.5])


def test_sample_seeds_shapes_and_temperature(sampling_model):
    model, context = sampling_model
    a = model.sample(context, num_frames=3, temperature=1.0, seed=5)
    assert a.shape == (2, 3, 8, 8, 3) and a.dtype == tf.uint8
    np.testing.assert_array_equal(a.numpy(), model.sample(context, 3, 1.0, seed=5).numpy())
    assert np.mean(a.numpy() != model.sample(context, 3, 1.0, seed=6).numpy()) > 0.3
    mean = model.sample(context, 3, temperature=0.0, seed=5).numpy().astype(np.float64)
    spread = [np.abs(model.sample(context, 3, tau, seed=5).numpy() - mean).mean()
              for tau in (0.1, 0.5, 1.0)]
    assert 0.0 < spread[0] < spread[1] < spread[2], spread


def test_temperature_zero_returns_the_mean_where_a_scale_overflowed(sampling_model):
    """tau = 0 gives every latent its prior mean, also where the prior's scale is inf
    (`loc + 0 * inf * eps` would be NaN), as T2T's temperature-0 sampling does."""
    from t2t_videoflow.model.videoflow import tempered_draw
    loc = tf.constant([1.0, -2.0, 3.0])
    scale = tf.constant([np.inf, 1.0, 2.0])
    eps = tf.constant([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(tempered_draw(loc, scale, 0.0, eps).numpy(), loc.numpy())
    np.testing.assert_allclose(tempered_draw(loc, scale[1:2] * 0 + 1.0, 0.5, eps).numpy(),
                               loc.numpy() + 0.5 * eps.numpy())
    model, context = sampling_model
    expected = model.sample(context, 2, temperature=0.0, seed=3).numpy()
    top = model._conditional_top

    def overflowed_top(*args, **kwargs):       # the top prior's scale overflows to inf
        loc, scale, state = top(*args, **kwargs)
        return loc, tf.fill(tf.shape(scale), np.inf), state
    model._conditional_top = overflowed_top
    try:
        frames, _ = model.sample_with_log_density(context, 2, temperature=0.0, seed=3)
        assert np.isfinite(frames.numpy()).all()
        np.testing.assert_array_equal(model.sample(context, 2, 0.0, seed=3).numpy(), expected)
    finally:
        del model._conditional_top


def test_unconditional_sampling_shape():
    video = random_clips(batch=2, frames=1, seed=8)
    model = perturbed_model(video, gen_mode="unconditional")
    out = model.sample(video, num_frames=2, temperature=0.5, seed=0)
    assert out.shape == (2, 2, 8, 8, 3) and out.dtype == tf.uint8


@pytest.mark.parametrize("encoder", ["conv3d_net", "conv_lstm"])
def test_sampler_draws_from_the_density_the_likelihood_scores(encoder):
    """At tau = 1 the sampler's own log-density of each frame equals the scorer's
    (`frame_objectives` of the context plus the continuous samples): the sampler is
    the exact ancestral sampler of the model's likelihood, so poor samples cannot
    be blamed on the sampler. At tau != 1 the tempered density differs from the
    model's."""
    video = random_clips(batch=2, frames=2, seed=7)
    model = perturbed_model(video, seed=1, scale=0.02, latent_dist_encoder=encoder)
    d = 8 * 8 * 3
    frames, log_density = model.sample_with_log_density(video, 3, temperature=1.0, seed=4)
    assert frames.shape == (2, 3, 8, 8, 3) and log_density.shape == (2, 3)
    assert np.all(np.abs(frames.numpy()) < 10.0)  # bounded samples: finite densities
    assert np.all(np.isfinite(log_density.numpy()))
    x = tf.concat([preprocess(video), frames], axis=1)
    scored = model.frame_objectives(x)[:, 2:] + d * math.log(256.0)
    np.testing.assert_allclose(log_density.numpy(), scored.numpy(), rtol=1e-4, atol=1e-2)
    # `sample` is the quantised sampler output, for the same seed.
    np.testing.assert_array_equal(model.sample(video, 3, 1.0, seed=4).numpy(),
                                  postprocess(frames).numpy())
    tempered, tempered_density = model.sample_with_log_density(video, 2, 0.5, seed=4)
    x = tf.concat([preprocess(video), tempered], axis=1)
    scored = model.frame_objectives(x)[:, 2:] + d * math.log(256.0)
    assert np.all(np.abs(tempered_density.numpy() - scored.numpy()) > 1.0)


# -- the paper configuration -----------------------------------------------------------


def test_paper_config_one_loss_and_gradient_on_cpu():
    """videoflow_bpp sizes (T2T `next_frame_glow_bair_quant`): build, one loss, one
    gradient."""
    start = time.time()
    with tf.device("/cpu:0"):
        model = VideoFlow(
            (64, 64, 3), n_levels=3, depth=24, coupling="affine", coupling_width=512,
            activation="gatu", latent_dist_encoder="conv3d_net", latent_encoder_depth=5,
            latent_encoder_width=256, latent_activation="gatu",
            latent_apply_dilations=True, latent_dilation_rates=(1, 3), latent_skip=True,
            num_cond_latents=3, seed=0)
        built = time.time()
        video = tf.constant(random_clips(batch=1, frames=4, size=64, seed=9))
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            loss = model.loss(video, 3, seed=[0, 0])
        grads = tape.gradient(loss, variables)
    elapsed = time.time() - built
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n_params = sum(int(np.prod(v.shape)) for v in variables)
    print(f"\npaper config: {n_params} parameters, build {built - start:.1f} s, "
          f"loss+gradient {elapsed:.1f} s, peak RSS {peak_mib:.0f} MiB, "
          f"loss {float(loss):.3f}")
    assert model.top_shape == (8, 8, 48)
    assert model.level_shapes == [(32, 32, 6), (16, 16, 12)]
    assert np.isfinite(float(loss)) and float(loss) > 0.0
    assert all(g is not None for g in grads)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads[:20] + grads[-20:])


# -- T2T test behaviours (T2T's `nfg_test_utils.py`) -----------------------------------


def test_loss_after_init_on_shapes_like_clip_is_in_0_10():
    video = shapes_clips(batch=4, frames=3, size=16)
    model = tiny_model(shape=(16, 16, 3), depth=2, coupling_width=16,
                       latent_dist_encoder="conv3d_net")
    model.data_init(video)
    loss = float(model.loss(video, 2, seed=[1, 2]))
    assert 0.0 < loss < 10.0


@pytest.mark.parametrize("encoder", ["conv3d_net", "conv_lstm"])
def test_condition_false_gives_marginal_prior_objective(encoder):
    video = random_clips(frames=4, seed=10)
    noise = noise_like(video)
    model = perturbed_model(video, latent_dist_encoder=encoder)
    x = model.dequantize(video, noise)
    marginal = model.frame_objectives(x, condition=False).numpy()
    # Each frame scored alone: a one-frame clip only has the marginal priors.
    alone = np.stack([model.frame_objectives(x[:, t:t + 1]).numpy()[:, 0]
                      for t in range(4)], axis=1)
    np.testing.assert_allclose(marginal, alone, rtol=1e-6)
    conditioned = model.frame_objectives(x, condition=True).numpy()
    n = model.num_cond_latents
    np.testing.assert_array_equal(conditioned[:, :n], marginal[:, :n])
    assert np.all(np.abs(conditioned[:, n:] - marginal[:, n:]) > 1e-2)
    # A boolean tensor (the trainer's pretrain_steps switch) works inside tf.function.
    fn = tf.function(lambda c: model.frame_objectives(x, condition=c))
    np.testing.assert_allclose(fn(tf.constant(False)), marginal, rtol=1e-6)
    np.testing.assert_allclose(fn(tf.constant(True)), conditioned, rtol=1e-6)


# -- bad input -------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    model = tiny_model()
    good = random_clips(frames=3)
    with pytest.raises(ValueError, match=r"must have shape \[batch, time, 8, 8, 3\]"):
        model.bits_per_pixel(good[:, 0], 0)  # rank 4
    with pytest.raises(ValueError, match=r"must have shape \[batch, time, 8, 8, 3\]"):
        model.bits_per_pixel(random_clips(size=16), 0)
    with pytest.raises(ValueError, match=r"must have shape .*got \(2, 3, 8, 8, 1\)"):
        model.bits_per_pixel(good[..., :1], 0)
    with pytest.raises(ValueError, match=r"pixel values in \[0, 255\]"):
        model.bits_per_pixel(good.astype(np.float32) + 1.0, 0)
    with pytest.raises(ValueError, match=r"pixel values in \[0, 255\]"):
        model.loss(good.astype(np.float32) - 1.0, 0)
    with pytest.raises(ValueError, match="must be uint8"):
        model.bits_per_pixel(good.astype(np.int32), 0)
    with pytest.raises(ValueError, match="needs at least 3 frames"):
        model.bits_per_pixel(good[:, :2], 2)
    with pytest.raises(ValueError, match="num_context must be >= 0"):
        model.bits_per_pixel(good, -1)
    with pytest.raises(ValueError, match="context_frames needs at least 2 frames"):
        model.sample(good[:, :1], 1)
    for bad_temperature in (-0.5, np.float32(-1.0), tf.constant(-2.0), float("nan")):
        with pytest.raises(ValueError, match="temperature must be >= 0"):
            model.sample(good, 1, temperature=bad_temperature)
    nan_frames = good.astype(np.float32)
    nan_frames[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"finite pixel values in \[0, 255\]"):
        model.bits_per_pixel(nan_frames, 0)
    with pytest.raises(ValueError, match="num_frames must be >= 1"):
        model.sample(good, 0)
    with pytest.raises(ValueError, match="Unknown gen_mode"):
        tiny_model(gen_mode="video")
    # Floats scaled to [0, 1] would score as a near-black video: refused, by name.
    scaled = good.astype(np.float32) / 255.0
    with pytest.raises(ValueError, match=r"frames looks like float pixels scaled to "
                                         r"\[0, 1\].*multiply the floats by 255"):
        model.bits_per_pixel(scaled, 0)
    with pytest.raises(ValueError, match=r"context_frames looks like .*\[0, 1\]"):
        model.sample(scaled, 1)
    # An integer-valued float clip at or below 1 is a valid (near-black) video.
    dark = np.minimum(good, 1).astype(np.float32)
    assert np.isfinite(model.bits_per_pixel(dark, 2, noise_like(good)).numpy()).all()
    # Float frames within [0, 255] are accepted and equal the uint8 result.
    noise = noise_like(good)
    np.testing.assert_allclose(model.bits_per_pixel(good.astype(np.float32), 2, noise),
                               model.bits_per_pixel(good, 2, noise), rtol=1e-6)


@pytest.mark.parametrize("encoder", ["conv3d_net", "conv_net", "conv_lstm"])
def test_data_init_initialises_priors_as_a_second_encoding_pass_would(encoder):
    # data_init reuses the flow's init pass for the priors' init. The rule it must
    # keep: init the flow on every frame, then the priors by a teacher-forced pass
    # (init=True) over the clip up to its first conditioned frame.
    video = shapes_clips(batch=2, frames=4)
    reused, reference = (tiny_model(seed=3, latent_dist_encoder=encoder) for _ in range(2))
    reused.data_init(video, seed=(4, 5))
    x = reference._duplicate_first_frame(reference.dequantize(video, seed=(4, 5)))
    reference.flow.data_init(tf.reshape(x, [-1, *reference.frame_shape]))
    reference.frame_objectives(x[:, :reference.frames_before_conditioning + 1],
                               init=True)
    assert len(reused.variables) == len(reference.variables)
    changed = 0
    for a, b in zip(reused.variables, reference.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=a.name)
        changed += "initialized" in a.name and bool(a.numpy())
    assert changed == sum("initialized" in v.name for v in reused.variables) > 0


# -- checkpoints and distribution ------------------------------------------------------


def test_checkpoint_round_trip_then_data_init_changes_nothing(tmp_path):
    video = random_clips(frames=3, seed=11)
    noise = noise_like(video)
    model = perturbed_model(video)
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    fresh = tiny_model(seed=5)
    assert len(fresh.variables) == len(model.variables)
    status = tf.train.Checkpoint(model=fresh).read(path)
    status.assert_existing_objects_matched()
    saved = {name: _var(v).numpy() for name, v in model.t2t_variables().items()}
    for name, var in fresh.t2t_variables().items():
        np.testing.assert_array_equal(_var(var).numpy(), saved[name], err_msg=name)
    flags = [v for v in fresh.variables if "initialized" in v.name]
    assert flags and all(bool(f.numpy()) for f in flags)
    snapshot = [v.numpy().copy() for v in fresh.variables]
    fresh.data_init(random_clips(frames=3, seed=12))
    for before, var in zip(snapshot, fresh.variables):
        np.testing.assert_array_equal(var.numpy(), before, err_msg=var.name)
    np.testing.assert_array_equal(fresh.bits_per_pixel(video, 2, noise),
                                  model.bits_per_pixel(video, 2, noise))


@pytest.mark.parametrize("gen_mode", ["conditional", "unconditional"])
def test_every_variable_is_tracked_and_named_for_t2t(gen_mode):
    model = tiny_model(gen_mode=gen_mode)
    tracked = {id(v) for v in model.variables}
    t2t = model.t2t_variables()
    assert all(id(_var(v)) in tracked for v in t2t.values())
    flags = [v for v in model.variables if "initialized" in v.name]
    assert len(t2t) + len(flags) == len(model.variables)
    # The marginal top prior: scope "unconditional" inside T2T's conditional model,
    # Glow's "top_prior" in unconditional mode.
    scope = "unconditional" if gen_mode == "conditional" else "top_prior"
    assert f"{scope}/top_learn_prior/conv2d/W" in t2t
    assert not any(k.startswith("top/") for k in t2t) or gen_mode == "conditional"


def test_created_and_run_under_mirrored_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    video = random_clips(frames=3, seed=13)
    noise = noise_like(video)
    with strategy.scope():
        model = tiny_model()
        model.data_init(video)
        optimizer = tf.keras.optimizers.Adam(1e-3)
    assert all(isinstance(v, tf.distribute.DistributedValues) or "Mirrored" in type(v).__name__
               for v in model.trainable_variables[:3])

    @tf.function
    def step():
        def replica_fn():
            with tf.GradientTape() as tape:
                loss = model.loss(video, 2, noise=noise)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        return strategy.run(replica_fn)

    before = float(model.loss(video, 2, noise=noise, training=False))
    loss = float(strategy.reduce("MEAN", step(), axis=None))
    np.testing.assert_allclose(loss, before, rtol=1e-5)
    assert float(model.loss(video, 2, noise=noise, training=False)) != before


def test_cond_first_frame_keeps_frame_zero_in_the_conditioning_set():
    """The engine on a given latent sequence: frame 0's latent is prepended to every
    conditioning set, which needs num_cond_latents + 1 past frames."""
    video = random_clips(frames=4, seed=14)
    noise = noise_like(video)
    model = perturbed_model(video, latent_dist_encoder="conv_net", num_cond_latents=1,
                            cond_first_frame=True)
    x = model.dequantize(video, noise)
    conditioned = model.frame_objectives(x).numpy()
    marginal = model.frame_objectives(x, condition=False).numpy()
    # Needs num_cond_latents + 1 = 2 past frames: frames 0 and 1 use the marginal priors.
    np.testing.assert_array_equal(conditioned[:, :2], marginal[:, :2])
    assert np.all(np.abs(conditioned[:, 2:] - marginal[:, 2:]) > 1e-2)
    # In pixels, frame 0 is duplicated first (T2T): frame 1 is conditioned on
    # [x0] + [x0], and frame 0 still conditions frame 3 through the extra entry.
    changed = video.copy()
    changed[:, 0] = 255 - changed[:, 0]
    after = model.bits_per_pixel(changed, 0, noise=noise).numpy()
    before = model.bits_per_pixel(video, 0, noise=noise).numpy()
    assert np.all(np.abs(after[:, 1] - before[:, 1]) > 1e-4)
    assert np.all(np.abs(after[:, 3] - before[:, 3]) > 1e-4)
    samples = model.sample(video[:, :2], num_frames=2, temperature=0.0, seed=0)
    assert samples.shape == (2, 2, 8, 8, 3)


# -- the one engine: any number of frames, graph and eager alike -----------------------


ENGINE_CASES = {
    "conv3d_net": dict(latent_dist_encoder="conv3d_net"),
    "conv_lstm": dict(latent_dist_encoder="conv_lstm"),
    "conv_net-first_frame": dict(latent_dist_encoder="conv_net", num_cond_latents=2,
                                 cond_first_frame=True),
    "pointwise": dict(latent_dist_encoder="pointwise", batch_size=2),
}


@pytest.mark.parametrize("case", list(ENGINE_CASES))
def test_engine_scores_like_a_frame_by_frame_reference_eagerly_and_in_graph(case):
    """The batched (conv nets) and looped (conv_lstm, pointwise) teacher-forced
    scoring equals a frame-by-frame assembly, eagerly and traced once with the
    number of frames unknown (the SavedModel's situation)."""
    video = random_clips(frames=5, seed=13)
    model = perturbed_model(video, seed=2, **ENGINE_CASES[case])
    x = model.dequantize(video, noise_like(video))
    expected = _reference_objectives(model, x)
    np.testing.assert_allclose(model.frame_objectives(x), expected, rtol=1e-5, atol=1e-3)
    if case == "pointwise":
        return  # its parameters carry the batch: traced with a static batch below
    scorer = tf.function(lambda x: model.frame_objectives(x), autograph=False,
                         input_signature=[tf.TensorSpec([None, None, 8, 8, 3])])
    for frames in (5, 3):
        np.testing.assert_allclose(scorer(x[:, :frames]), expected[:, :frames],
                                   rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("case", list(ENGINE_CASES))
def test_sampling_in_graph_with_a_tensor_length_equals_eager_sampling(case):
    """One engine: `sample` eagerly and `sampling_start` + `generate` traced once with
    a tensor number of frames (the decoder's and the SavedModel's path) draw the same
    frames for the same seed, and two chunks equal one run of the same length."""
    video = random_clips(frames=4, seed=14)
    model = perturbed_model(video, seed=3, scale=0.02, **ENGINE_CASES[case])
    eager, eager_density = model.sample_with_log_density(video, 2, 0.7, seed=5)

    @tf.function(autograph=False)
    def graph(context, count):
        carry = model.sampling_start(context)
        frames, density, carry = model.generate(carry, 0, count, 0.7, 5)
        return frames, density

    frames, density = graph(tf.constant(video), tf.constant(2))
    # Graph rewrites may reorder float sums: equal up to rounding, not bitwise.
    np.testing.assert_allclose(frames, eager, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(density, eager_density, rtol=1e-4, atol=1e-2)
    carry = model.sampling_start(video)
    first, _, carry = model.generate(carry, 0, 1, 0.7, 5)
    second, _, _ = model.generate(carry, 1, 1, 0.7, 5)
    np.testing.assert_array_equal(tf.concat([first, second], axis=1), eager)


# -- weights: tracked once, fixed by the seed -----------------------------------------


@pytest.mark.parametrize("encoder", ["conv3d_net", "conv_lstm"])
def test_checkpoint_stores_every_weight_once(tmp_path, encoder):
    """The checkpoint's floats = the model's parameters (Keras 3 prior and coupling
    weights are not stored a second time through their Keras wrappers), and a
    restore brings back every weight."""
    model = tiny_model(latent_dist_encoder=encoder)
    # Floats: the parameters plus the 1x1 convs' fixed permutation / sign tensors.
    params = sum(int(np.prod(v.shape)) for v in model.variables if v.dtype.is_floating)
    assert len({id(v) for v in model.variables}) == len(model.variables)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    stored = sum(int(np.prod(shape)) for name, shape in tf.train.list_variables(path)
                 if name.startswith("model/")
                 and tf.train.load_variable(path, name).dtype.kind == "f")
    assert stored == params
    other = tiny_model(seed=9, latent_dist_encoder=encoder)
    tf.train.Checkpoint(model=other).restore(path).assert_consumed()
    for a, b in zip(model.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)


def test_the_seed_alone_fixes_the_initial_weights():
    """`VideoFlow(seed=s)` gives the same initial weights whatever the global random
    state (Python, NumPy, TF, Keras); another seed gives other random kernels."""
    import random
    random.seed(1)
    tf.random.set_seed(1)
    first = tiny_model(seed=4, latent_dist_encoder="conv_lstm")
    random.seed(2)
    tf.random.set_seed(2)
    tiny_model(seed=0)  # consume global random state in between
    second = tiny_model(seed=4, latent_dist_encoder="conv_lstm")
    third = tiny_model(seed=5, latent_dist_encoder="conv_lstm")
    differing = 0
    for a, b, c in zip(first.variables, second.variables, third.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)
        differing += int(not np.array_equal(a.numpy(), c.numpy()))
    # Every random kernel (coupling nets' convs, the ConvLSTM kernels, ...) differs.
    assert differing >= 4


def test_seeded_build_draws_each_random_kernel_once_and_leaves_none_zero():
    """A seeded model creates its seedable kernels zero-filled and draws them once, in
    `reseed_random_kernels`: afterwards every kernel of a layer with `reseed` holds its
    initializer's draw (N(0, 0.05^2) for the convs), and the deferral is over (a layer
    built later, or after a failed build, draws its own kernel)."""
    model = tiny_model(seed=4, latent_dist_encoder="conv_lstm")
    layers = [layer for top in keras_layers_in(model.flow) + [
        model.level_cond_priors[0], model.top_cond_prior]
        for layer in top._flatten_layers(include_self=True, recursive=True)
        if hasattr(layer, "reseed")]
    assert len(layers) >= 4
    for layer in layers:
        kernel = layer.kernel.numpy()
        assert np.count_nonzero(kernel) == kernel.size, layer.name
        if isinstance(layer, ConvActNorm2D):
            assert 0.03 < kernel.std() < 0.07, layer.name
    with pytest.raises(RuntimeError):
        with random_kernels_deferred():
            assert deferrable_initializer("random_normal") == "zeros"
            assert deferrable_initializer("ones") == "ones"  # no seed: never deferred
            raise RuntimeError("build failed")
    later = ConvActNorm2D(4)
    later.build((None, 8, 8, 3))
    assert np.count_nonzero(later.kernel.numpy()) == later.kernel.numpy().size


def test_cond_first_frame_duplicates_frame_zero_as_t2t():
    """As T2T's `NextFrameGlow.get_all_frames`: with cond_first_frame the clip becomes
    `[x0, x0, x1, ..]` before the priors see it; the duplicate is context, never scored.
    So frame 2 (N = 2) is already conditioned, on `[x0] + [x0, x1]`, and a 2-frame
    context suffices."""
    video = random_clips(frames=4, seed=21)
    noise = noise_like(video)
    model = perturbed_model(video, seed=2, latent_dist_encoder="conv_net",
                            num_cond_latents=2, cond_first_frame=True)
    assert model.frames_before_conditioning == 3 and model.min_context_frames == 2
    bpp = model.bits_per_pixel(video, 2, noise=noise).numpy()
    x = model.dequantize(video, noise)
    duplicated = tf.concat([x[:, :1], x], axis=1)
    d = 8 * 8 * 3
    expected = -model.frame_objectives(duplicated)[:, 3:] / (d * math.log(2.0))
    np.testing.assert_allclose(bpp, expected, rtol=1e-6)
    # Frame 2 is conditioned: changing frame 0 (in every conditioning set) changes it.
    changed = video.copy()
    changed[:, 0] = 255 - changed[:, 0]
    assert np.all(np.abs(model.bits_per_pixel(changed, 2, noise=noise).numpy()[:, 0]
                         - bpp[:, 0]) > 1e-4)
    samples = model.sample(video[:, :2], 2, 0.5, seed=1)
    assert samples.shape == (2, 2, 8, 8, 3)
