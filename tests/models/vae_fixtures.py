"""Tiny ConditionalVAE configurations and inputs shared by the model tests."""

import numpy as np

from chroma_keras import conditioning
from chroma_keras.data import keys

TINY_KWARGS = dict(
    num_pitches=16,
    num_frames=16,
    lowest_pitch=48,
    frames_per_second=4.0,
    latent_dim=6,
    condition_dim=8,
    encoder_filters=(4, 8),
    hidden_dim=16,
    kl_warmup_steps=10,
    seed=3,
)


def tiny_inputs(n=4, seed=0, pitches=16, frames=16):
    """Random sparse rolls with alternating Red / Future-Thing-Known conditions."""
    rng = np.random.default_rng(seed)
    rolls = ((rng.random((n, pitches, frames)) > 0.85) * rng.uniform(0.3, 1.0, (n, pitches, frames))).astype("float32")
    conds = ["Red", {"temporal": "future", "spatial": "thing", "ontological": "known"}] * (n // 2) + ["Blue"] * (n % 2)
    arrays = conditioning.condition_arrays(conds, n, {"rebracketing_intensity": 3.0, "rebracketing_type": "temporal"})
    return {keys.PIANO_ROLL: rolls, **arrays}


def structured_inputs(n=32, seed=0):
    """Learnable rolls: Red segments hold pitches 3 and 7, Future-Thing-Known ones pitch 12,
    each a sustained note starting at a random frame."""
    rng = np.random.default_rng(seed)
    rolls = np.zeros((n, 16, 16), np.float32)
    conds = []
    for i in range(n):
        start = rng.integers(0, 8)
        if i % 2 == 0:
            rolls[i, [3, 7], start : start + 8] = 0.8
            conds.append("Red")
        else:
            rolls[i, 12, start : start + 8] = 0.5
            conds.append("future,thing,known")
    return {keys.PIANO_ROLL: rolls, **conditioning.condition_arrays(conds, n)}
