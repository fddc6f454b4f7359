"""A plain-PyTorch reference of the source project's scorer, for ``scorer_training.py`` and ``scorer_scoring.py``.

The source project's ``MultimodalFusionModel`` (see /work/shared/reference/source-project.md §3.2–3.3)
is a piano-roll CNN (``Conv-BN-ReLU-MaxPool2`` x 2, ``Conv-BN-ReLU``, ``AdaptiveAvgPool(4, 4)``,
flatten, ``Linear`` + ReLU) next to precomputed audio and text embeddings, concatenated and
mapped through an MLP to softmax heads and a sigmoid confidence. :class:`ReferenceScorer` is that
architecture written with ``torch.nn`` at the layer sizes of our ``Scorer`` built from the same
preset (the piano-roll size, the encoder, fusion and head widths, the colour head), so both
models do the same arithmetic and a timing ratio compares implementations, not architectures.
:func:`copy_weights` copies our weights into it; the benchmarks check that both give the same
outputs before timing.

Not a library module: the benchmarks import it from their own folder.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

AXES = ("temporal", "spatial", "ontological")


class ReferenceScorer(nn.Module):
    """The source project's fusion scorer in plain PyTorch (channels-first, eager).

    Args:
        modality_widths: ``{"text": d, "audio": d}`` input widths of the precomputed embeddings
            present besides MIDI (empty for a MIDI-only scorer).
        encoder_widths: ``{modality: width}`` of each encoder's output (``midi`` = the CNN's).
        filters: channels of the three conv blocks.
        fusion_dim: width of the per-modality projections and of the fusion MLP.
        head_dim: width of the shared layer before the heads.
        dropout: dropout in the fusion MLP and before the heads.
        modality_dropout: training-time probability of replacing a modality by its null embedding.
    """

    def __init__(self, modality_widths, encoder_widths, filters=(32, 64, 128), fusion_dim=512, head_dim=256, dropout=0.1, modality_dropout=0.0):
        super().__init__()
        self.modalities = [m for m in ("text", "audio") if m in modality_widths] + ["midi"]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        channels = 1
        for width in filters:
            self.convs.append(nn.Conv2d(channels, width, 3, padding=1))
            self.norms.append(nn.BatchNorm2d(width, eps=1e-5, momentum=0.1))
            channels = width
        self.midi_projection = nn.Linear(filters[-1] * 16, encoder_widths["midi"])
        self.embedding_norms = nn.ModuleDict({m: nn.LayerNorm(modality_widths[m], eps=1e-6) for m in modality_widths})
        self.embedding_projections = nn.ModuleDict({m: nn.Linear(modality_widths[m], encoder_widths[m]) for m in modality_widths})
        self.fusion_projections = nn.ModuleDict({m: nn.Linear(encoder_widths[m], fusion_dim) for m in self.modalities})
        self.null_embeddings = nn.Parameter(torch.randn(len(self.modalities), fusion_dim) * 0.02)
        self.fusion_hidden = nn.Linear(len(self.modalities) * fusion_dim, fusion_dim)
        self.fusion_output = nn.Linear(fusion_dim, fusion_dim)
        self.head_hidden = nn.Linear(fusion_dim, head_dim)
        self.heads = nn.ModuleDict({axis: nn.Linear(head_dim, 3) for axis in AXES})
        self.confidence_head = nn.Linear(head_dim, 1)
        self.colour_head = nn.Linear(head_dim, 9)
        self.dropout = dropout
        self.modality_dropout = modality_dropout

    def encode_midi(self, roll):
        x = roll[:, None]  # [b, 1, pitches, frames]
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.relu(norm(conv(x)))
            if i < 2:
                x = F.max_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(x, (4, 4)).flatten(1)
        return F.relu(self.midi_projection(x))

    def forward(self, batch):
        """``batch``: ``piano_roll`` [b, pitches, frames] and the embeddings; returns logits per head."""
        embeddings = []
        for m in self.modalities:
            if m == "midi":
                e = self.encode_midi(batch["piano_roll"])
            else:
                e = self.embedding_projections[m](self.embedding_norms[m](batch[f"{m}_embedding"]))
            embeddings.append(self.fusion_projections[m](e))
        fused = torch.stack(embeddings, 1)  # [b, modalities, fusion_dim]
        if self.training and self.modality_dropout > 0 and len(self.modalities) > 1:
            keep = torch.rand(fused.shape[:2], device=fused.device) >= self.modality_dropout
            keep[keep.sum(1) == 0, -1] = True  # never drop every modality of a row
            fused = torch.where(keep[:, :, None], fused, self.null_embeddings[None])
        h = F.relu(self.fusion_hidden(fused.flatten(1)))
        h = self.fusion_output(F.dropout(h, self.dropout, self.training))
        h = F.dropout(F.gelu(self.head_hidden(h)), self.dropout, self.training)
        out = {axis: self.heads[axis](h) for axis in AXES}
        out["confidence"] = self.confidence_head(h)
        out["colour"] = self.colour_head(h)
        return out


def reference_loss(logits, batch, weights):
    """The scorer's loss kinds: per-axis KL to the soft targets, confidence BCE, colour cross-entropy."""
    total = 0.0
    for axis in AXES:
        target = batch[f"{axis}_target"]
        log_p = F.log_softmax(logits[axis], -1)
        total = total + weights[axis] * F.kl_div(log_p, target, reduction="batchmean")
    total = total + weights["confidence"] * F.binary_cross_entropy_with_logits(logits["confidence"][:, 0], batch["confidence"])
    return total + weights["colour"] * F.cross_entropy(logits["colour"], batch["colour_index"].long())


def reference_for(scorer):
    """A :class:`ReferenceScorer` with the layer sizes of ``scorer`` (a late-fusion piano-roll ``Scorer``)."""
    fusion = scorer.fusion
    widths = {m: int(scorer.encoders[m].projection.kernel.shape[0]) for m in scorer.modalities if m != "midi"}
    midi = scorer.encoders["midi"]
    return ReferenceScorer(
        widths,
        {m: scorer.encoders[m].hidden_dim for m in scorer.modalities},
        filters=midi.filters,
        fusion_dim=fusion.hidden_dim,
        head_dim=scorer.head_dim,
        dropout=scorer.dropout_rate,
        modality_dropout=fusion.modality_dropout,
    )


def copy_weights(scorer, reference):
    """Copy a late-fusion piano-roll ``Scorer``'s weights into ``reference`` (channels-last -> channels-first)."""

    def put(param, value, transpose=None):
        value = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float32)
        if transpose is not None:
            value = value.transpose(transpose)
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    def dense(linear, layer):
        put(linear.weight, _np(layer.kernel), (1, 0))
        put(linear.bias, _np(layer.bias))

    midi = scorer.encoders["midi"]
    for conv, norm, keras_conv, keras_norm in zip(reference.convs, reference.norms, midi.convs, midi.norms):
        put(conv.weight, _np(keras_conv.kernel), (3, 2, 0, 1))
        put(conv.bias, _np(keras_conv.bias))
        put(norm.weight, _np(keras_norm.gamma))
        put(norm.bias, _np(keras_norm.beta))
        put(norm.running_mean, _np(keras_norm.moving_mean))
        put(norm.running_var, _np(keras_norm.moving_variance))
    dense(reference.midi_projection, midi.projection)
    for m in reference.embedding_norms:
        encoder = scorer.encoders[m]
        put(reference.embedding_norms[m].weight, _np(encoder.norm.gamma))
        put(reference.embedding_norms[m].bias, _np(encoder.norm.beta))
        dense(reference.embedding_projections[m], encoder.projection)
    fusion = scorer.fusion
    for m in reference.modalities:
        dense(reference.fusion_projections[m], fusion.projections[m])
    put(reference.null_embeddings, _np(fusion.null_and_dropout.null_embeddings))
    dense(reference.fusion_hidden, fusion.hidden)
    dense(reference.fusion_output, fusion.output_projection)
    dense(reference.head_hidden, scorer.hidden)
    for axis in AXES:
        dense(reference.heads[axis], scorer.heads[axis])
    dense(reference.confidence_head, scorer.confidence_head)
    dense(reference.colour_head, scorer.colour_head)


def _np(variable):
    import keras

    return keras.ops.convert_to_numpy(variable)


def scorer_flops(scorer, pitches, frames):
    """Multiply-adds x 2 of one forward pass of a late-fusion piano-roll ``Scorer`` per example.

    Counted layer by layer: a 3 x 3 convolution over an ``h x w`` map costs
    ``2 * h * w * 9 * c_in * c_out``; a dense layer ``2 * d_in * d_out``; pooling, batch norm,
    activations and the adaptive pooling's averaging are left out (under 1 % here).
    The MIDI encoder's ``sequence`` projection is left out: late fusion does not read it.
    """
    midi = scorer.encoders["midi"]
    flops, channels, h, w = 0, 1, pitches, frames
    for i, width in enumerate(midi.filters):
        flops += 2 * h * w * 9 * channels * width
        channels = width
        if i < 2:
            h, w = h // 2, w // 2
    flops += 2 * channels * 16 * midi.hidden_dim
    for m in scorer.modalities:
        encoder = scorer.encoders[m]
        if m != "midi":
            flops += 2 * int(encoder.projection.kernel.shape[0]) * encoder.hidden_dim
        flops += 2 * encoder.hidden_dim * scorer.fusion.hidden_dim
    d = scorer.fusion.hidden_dim
    flops += 2 * len(scorer.modalities) * d * d + 2 * d * d
    flops += 2 * d * scorer.head_dim + 2 * scorer.head_dim * (3 * 3 + 1 + 9)
    return flops
