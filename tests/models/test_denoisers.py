"""UNetDenoiser and TransformerDenoiser: shapes in 2-D and 1-D, zero output at init, training on toy piano
rolls (the epsilon loss falls; conditions and timesteps change the output), config and .keras round trips,
build-then-load_weights, presets, and input errors."""

import keras
import numpy as np
import pytest
from keras import ops

from chroma_keras.errors import ModelInputError, PresetError
from chroma_keras.generation.schedulers import NoiseSchedule
from chroma_keras.models.denoisers import TransformerDenoiser, UNetDenoiser, build_denoiser

CONDITION_DIM = 8
TINY = {
    "unet": (UNetDenoiser, {"channels": (8, 8), "num_res_blocks": 1, "num_heads": 2}),
    "transformer": (TransformerDenoiser, {"hidden_dim": 32, "num_layers": 2, "num_heads": 2, "patch_size": (4, 2)}),
    "transformer_learned": (
        TransformerDenoiser,
        {"hidden_dim": 32, "num_layers": 2, "num_heads": 2, "patch_size": (4, 2), "position_embedding": "learned"},
    ),
}


# One sample shape per mode for every eager call: JAX compiles each op once per shape, and
# reusing shapes keeps this file fast.
SHAPES = {2: (2, 16, 16), 1: (2, 16, 4)}


def make(kind, spatial_dims=2, **extra):
    cls, kwargs = TINY[kind]
    return cls(condition_dim=CONDITION_DIM, spatial_dims=spatial_dims, **{**kwargs, **extra})


def inputs(shape, seed=0, timestep=None):
    rng = np.random.default_rng(seed)
    batch = shape[0]
    return {
        "sample": rng.normal(size=shape).astype("float32"),
        "timestep": rng.integers(0, 1000, batch).astype("int32") if timestep is None else timestep,
        "condition": rng.normal(size=(batch, CONDITION_DIM)).astype("float32"),
    }


def to_np(x):
    return ops.convert_to_numpy(x)


# === Shapes and initial output ===


@pytest.mark.parametrize("kind", sorted(TINY))
@pytest.mark.parametrize("spatial_dims", [2, 1])
def test_output_is_shaped_like_the_sample_and_exactly_zero_at_init(kind, spatial_dims):
    shape = SHAPES[spatial_dims]
    denoiser = make(kind, spatial_dims)
    out = denoiser(inputs(shape))
    assert tuple(out.shape) == shape
    assert np.all(to_np(out) == 0.0), "the zero-initialised output layer must make the untrained prediction 0"
    # A scalar timestep serves the whole batch; float timesteps work too.
    assert tuple(denoiser(inputs(shape, timestep=np.float32(10.5))).shape) == shape


def test_patchify_cuts_row_major_patches_and_unpatchify_inverts_it():
    denoiser = make("transformer_learned")
    denoiser(inputs(SHAPES[2]))
    roll = np.arange(16 * 16, dtype="float32").reshape(1, 16, 16, 1)
    tokens = to_np(denoiser.patchify(roll))
    assert tokens.shape == (1, 4 * 8, 4 * 2)
    np.testing.assert_array_equal(tokens[0, 1], roll[0, 0:4, 2:4, 0].reshape(-1))  # patch (row 0, column 1)
    np.testing.assert_array_equal(tokens[0, 8], roll[0, 4:8, 0:2, 0].reshape(-1))  # patch (row 1, column 0)
    np.testing.assert_array_equal(to_np(denoiser.unpatchify(tokens, (16, 16))), roll)


# === Training on toy piano rolls ===


def toy_rolls(n=32, size=16, seed=0):
    """Two classes of 16x16 rolls in [-1, 1]: a held note plus a note a fourth away, low (class 0) or high (class 1)."""
    rng = np.random.default_rng(seed)
    rolls = -np.ones((n, size, size), np.float32)
    classes = np.arange(n) % 2
    for i, cls in enumerate(classes):
        pitch, start = rng.integers(0, size // 2) + (size // 2) * cls, rng.integers(0, size // 2)
        rolls[i, pitch, start : start + size // 2] = 1.0
        rolls[i, pitch + 4 if cls == 0 else pitch - 4, start : start + size // 2] = 1.0
    conditions = np.zeros((n, CONDITION_DIM), np.float32)
    conditions[np.arange(n), classes] = 1.0
    return rolls, conditions


class EpsilonTrainer(keras.Model):
    """Plain DDPM training (Ho et al. 2020, Algorithm 1): MSE between the denoiser output and the added noise."""

    def __init__(self, denoiser, schedule, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.denoiser = denoiser
        self.schedule = schedule
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, batch, training=False):
        x0 = batch["sample"]
        timesteps = self.schedule.sample_timesteps(ops.shape(x0)[0], seed=self.seed_generator)
        noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
        noisy = self.schedule.add_noise(x0, noise, timesteps)
        prediction = self.denoiser({"sample": noisy, "timestep": timesteps, "condition": batch["condition"]}, training=training)
        return prediction - noise

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return ops.mean(ops.square(y_pred))


@pytest.fixture(scope="module", params=["unet", "transformer"])
def trained(request):
    """A tiny denoiser after 32 Adam steps (8 epochs x 4 batches) of epsilon prediction on 32 toy rolls."""
    keras.utils.set_random_seed(0)
    denoiser = make(request.param)
    rolls, conditions = toy_rolls()
    trainer = EpsilonTrainer(denoiser, NoiseSchedule(1000, "linear"))
    trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = trainer.fit({"sample": rolls, "condition": conditions}, epochs=8, batch_size=8, verbose=0)
    return request.param, denoiser, history.history["loss"]


def test_epsilon_loss_falls_on_toy_rolls(trained):
    kind, _, losses = trained
    # The untrained model predicts 0, so the first epoch's loss is near E[eps^2] = 1.
    assert 0.8 < losses[0] < 1.2, losses
    assert losses[-1] < 0.6 * losses[0], f"{kind}: loss fell only from {losses[0]:.3f} to {losses[-1]:.3f}"


def test_condition_and_timestep_change_the_trained_output(trained):
    kind, denoiser, _ = trained
    rolls, conditions = toy_rolls(2, seed=1)
    sample = NoiseSchedule(1000).add_noise(rolls, np.random.default_rng(2).normal(size=rolls.shape).astype("float32"), 300)
    t = np.full((2,), 300, "int32")
    base = to_np(denoiser({"sample": sample, "timestep": t, "condition": conditions}))
    swapped = to_np(denoiser({"sample": sample, "timestep": t, "condition": conditions[:, [1, 0] + list(range(2, CONDITION_DIM))]}))
    later = to_np(denoiser({"sample": sample, "timestep": t + 400, "condition": conditions}))
    scale = np.mean(np.abs(base))
    assert scale > 0.05, f"{kind}: the trained output is still ~0"
    # Measured after these 32 steps: 3-7% (condition) and 3-24% (timestep) of the output's size on all backends.
    assert np.mean(np.abs(swapped - base)) > 5e-3 * scale, f"{kind}: the condition does not reach the output"
    assert np.mean(np.abs(later - base)) > 1e-2 * scale, f"{kind}: the timestep does not reach the output"


# === Serialization ===


def test_keras_file_round_trip_of_a_trained_denoiser(trained, tmp_path):
    kind, denoiser, _ = trained
    batch = inputs(SHAPES[2], seed=5)
    expected = to_np(denoiser(batch))
    path = tmp_path / f"{kind}.keras"
    denoiser.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(denoiser) and restored.get_config() == denoiser.get_config()
    np.testing.assert_allclose(to_np(restored(batch)), expected, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(TINY))
@pytest.mark.parametrize("spatial_dims", [2, 1])
def test_from_config_then_build_then_load_weights(kind, spatial_dims, tmp_path):
    denoiser = make(kind, spatial_dims, dropout=0.1, seed=3)
    batch = inputs(SHAPES[spatial_dims], seed=1)
    denoiser(batch)
    rng = np.random.default_rng(0)
    denoiser.set_weights([rng.normal(scale=0.2, size=w.shape).astype("float32") for w in denoiser.get_weights()])
    path = tmp_path / "denoiser.weights.h5"
    denoiser.save_weights(path)

    clone = type(denoiser).from_config(denoiser.get_config())
    assert clone.get_config() == denoiser.get_config()
    clone.build({key: value.shape for key, value in batch.items()})  # all weights exist after build()
    assert len(clone.weights) == len(denoiser.weights)
    clone.load_weights(path)
    np.testing.assert_allclose(to_np(clone(batch)), to_np(denoiser(batch)), atol=1e-5)


# === Presets ===


def test_build_denoiser_reads_the_preset_section():
    unet = build_denoiser({"model": {"diffusion": {"condition_dim": 12, "channels": [8, 16], "attention": False}}})
    assert isinstance(unet, UNetDenoiser) and unet.channels == (8, 16) and not unet.attention and unet.condition_dim == 12
    dit = build_denoiser(
        {"model": {"diffusion": {"denoiser": "transformer", "condition_dim": 4, "hidden_dim": 64, "num_layers": 3, "patch_size": [2, 8]}}}
    )
    assert isinstance(dit, TransformerDenoiser) and dit.patch_size == (2, 8) and dit.num_layers == 3 and dit.num_heads == 4
    assert build_denoiser({"model": {"diffusion": {"condition_dim": 4}}}, spatial_dims=1).spatial_dims == 1
    with pytest.raises(PresetError, match="model.diffusion.denoiser"):
        build_denoiser({"model": {"diffusion": {"denoiser": "lstm"}}})


# === Bad input ===


@pytest.mark.parametrize("kind", ["unet", "transformer"])
@pytest.mark.parametrize(
    "change,match",
    [
        ({"sample": np.zeros((2, 16), "float32")}, r"inputs\['sample'\] must have rank 3"),
        ({"sample": np.zeros((2, 16, 8, 1), "float32")}, r"inputs\['sample'\] must have rank 3"),
        ({"sample": np.zeros((2, 16, 9), "float32")}, r"inputs\['sample'\] width \(frames\) must be divisible by [24]"),
        ({"sample": np.zeros((2, 15, 16), "float32")}, r"inputs\['sample'\] height \(pitches\) must be divisible by [24]"),
        ({"condition": np.zeros((2, CONDITION_DIM + 1), "float32")}, r"inputs\['condition'\] must have shape \[batch, condition_dim\]"),
        ({"condition": np.zeros((3, CONDITION_DIM), "float32")}, r"inputs\['condition'\]"),
        ({"timestep": np.zeros((2, 2), "int32")}, r"inputs\['timestep'\] must have shape \[batch\]"),
    ],
)
def test_bad_inputs_raise_model_input_error_naming_the_input(kind, change, match):
    good = inputs(SHAPES[2])
    with pytest.raises(ModelInputError, match=match):
        make(kind)({**good, **change})  # caught in build()
    built = make(kind)
    built(good)
    with pytest.raises(ModelInputError, match=match):
        built({**good, **change})  # and in call()


def test_other_bad_inputs():
    good = inputs(SHAPES[2])
    with pytest.raises(ModelInputError, match=r"lack \['condition'\]"):
        make("unet")({"sample": good["sample"], "timestep": good["timestep"]})
    with pytest.raises(ModelInputError, match="must be a dict"):
        make("transformer")(good["sample"])
    sequence = make("unet", spatial_dims=1)
    sequence(inputs(SHAPES[1]))
    with pytest.raises(ModelInputError, match="must have 4 channels"):
        sequence(inputs((2, 16, 3)))
    with pytest.raises(ModelInputError, match=r"length must be divisible by 2"):
        make("unet", spatial_dims=1)(inputs((2, 15, 4)))
    learned = make("transformer_learned")
    learned(good)
    with pytest.raises(ModelInputError, match="learned positions were built for a \\[4, 8\\] patch grid"):
        learned(inputs((2, 16, 32)))


@pytest.mark.parametrize(
    "cls,kwargs,argument",
    [
        (UNetDenoiser, {"condition_dim": 0}, "condition_dim"),
        (UNetDenoiser, {"condition_dim": 4, "channels": []}, "channels"),
        (UNetDenoiser, {"condition_dim": 4, "channels": (8, 0)}, "channels"),
        (UNetDenoiser, {"condition_dim": 4, "channels": (8, 10), "num_heads": 4}, "num_heads"),
        (UNetDenoiser, {"condition_dim": 4, "spatial_dims": 3}, "spatial_dims"),
        (UNetDenoiser, {"condition_dim": 4, "dropout": 1.0}, "dropout"),
        (UNetDenoiser, {"condition_dim": 4, "position_channels": -1}, "position_channels"),
        (TransformerDenoiser, {"condition_dim": 4, "hidden_dim": 30, "num_heads": 4}, "num_heads"),
        (TransformerDenoiser, {"condition_dim": 4, "hidden_dim": 6, "num_heads": 1}, "hidden_dim"),
        (TransformerDenoiser, {"condition_dim": 4, "patch_size": (4, 0)}, "patch_size"),
        (TransformerDenoiser, {"condition_dim": 4, "position_embedding": "rotary"}, "position_embedding"),
        (TransformerDenoiser, {"condition_dim": 4, "num_layers": 0}, "num_layers"),
    ],
)
def test_bad_constructor_arguments(cls, kwargs, argument):
    with pytest.raises(ModelInputError, match=argument):
        cls(**kwargs)


@pytest.mark.parametrize("spatial_dims", [2, 1])
def test_position_channels_give_the_unet_absolute_coordinates(spatial_dims):
    model = make("unet", spatial_dims=spatial_dims, position_channels=2)
    shape = SHAPES[spatial_dims]
    model(inputs(shape))
    sizes = shape[1:] if spatial_dims == 2 else shape[1:2]
    # The sample's channels plus sin and cos at two frequencies per axis.
    assert model.conv_in.kernel.shape[-2] == (1 if spatial_dims == 2 else shape[-1]) + 2 * 2 * spatial_dims
    table = to_np(model._coordinates(sizes, 3, "float32"))
    assert table.shape == (3, *sizes, 4 * spatial_dims)
    index = np.arange(sizes[0]) / sizes[0]
    first_axis = table[0, :, 0] if spatial_dims == 2 else table[0]
    np.testing.assert_allclose(first_axis[:, 0], np.sin(np.pi * index), atol=1e-6)
    np.testing.assert_allclose(first_axis[:, 1], np.sin(2 * np.pi * index), atol=1e-6)
    np.testing.assert_allclose(first_axis[:, 2], np.cos(np.pi * index), atol=1e-6)
    again = UNetDenoiser.from_config(model.get_config())
    assert again.position_channels == 2
