"""EnCodec's residual vector quantizer in Keras 3: nearest-codeword encoding, summed-codeword decoding."""

from __future__ import annotations

import keras
from keras import ops

from chroma_keras.errors import ModelInputError
from chroma_keras.pretrained.encodec_layers import FanInUniform


@keras.saving.register_keras_serializable(package="chroma_keras")
class EncodecResidualQuantizer(keras.layers.Layer):
    """``num_quantizers`` codebooks applied in turn, each to what the previous ones left unexplained.

    Encoding picks, per frame and codebook, the codeword nearest (Euclidean) to
    the current residual and subtracts it; decoding sums the chosen codewords.
    The codebooks are one non-trainable variable ``[num_quantizers,
    codebook_size, codebook_dim]`` (EnCodec learns them by k-means / EMA, not by
    gradient).

    Args:
        num_quantizers: codebooks available (the most any bandwidth uses).
        codebook_size: codewords per codebook.
        codebook_dim: width of a codeword (the encoder's output channels).

    Example:

    >>> rvq = EncodecResidualQuantizer(4, codebook_size=16, codebook_dim=8)
    >>> rvq.build(None)
    >>> codes = rvq.encode(keras.ops.ones((2, 5, 8)), num_quantizers=2)
    >>> codes.shape, rvq.decode(codes).shape
    ((2, 2, 5), (2, 5, 8))
    """

    def __init__(self, num_quantizers, codebook_size=1024, codebook_dim=128, **kwargs):
        super().__init__(**kwargs)
        self.num_quantizers = int(num_quantizers)
        self.codebook_size = int(codebook_size)
        self.codebook_dim = int(codebook_dim)

    def build(self, input_shape=None):
        self.codebooks = self.add_weight(
            name="codebooks",
            shape=(self.num_quantizers, self.codebook_size, self.codebook_dim),
            initializer=FanInUniform(0),
            trainable=False,
        )
        self.built = True

    def _check_count(self, num_quantizers):
        if not 1 <= num_quantizers <= self.num_quantizers:
            raise ModelInputError(
                f"num_quantizers={num_quantizers}: expected 1 to {self.num_quantizers} (the codebooks this model has)."
            )

    def encode(self, embeddings, num_quantizers):
        """Codes of ``embeddings`` ``[batch, frames, codebook_dim]`` with the first ``num_quantizers`` codebooks.

        Returns:
            int32 ``[batch, num_quantizers, frames]``.
        """
        self._check_count(num_quantizers)
        residual = embeddings
        codes = []
        for q in range(num_quantizers):
            codebook = self.codebooks[q]
            # ||r||^2 - 2 r.e + ||e||^2, in the order EnCodec computes it so near-ties break the same way.
            distance = (
                ops.sum(ops.square(residual), axis=-1, keepdims=True)
                - 2.0 * ops.matmul(residual, ops.transpose(codebook))
                + ops.sum(ops.square(codebook), axis=-1)
            )
            index = ops.cast(ops.argmin(distance, axis=-1), "int32")
            residual = residual - ops.take(codebook, index, axis=0)
            codes.append(index)
        return ops.stack(codes, axis=1)

    def decode(self, codes):
        """The summed codewords of int ``codes`` ``[batch, n_q, frames]`` as ``[batch, frames, codebook_dim]``."""
        n_q = codes.shape[1]
        self._check_count(n_q)
        codes = ops.cast(codes, "int32")
        # One gather from the flattened table: row q * codebook_size + code.
        offsets = ops.reshape(ops.arange(n_q, dtype="int32") * self.codebook_size, (1, n_q, 1))
        table = ops.reshape(self.codebooks[:n_q], (n_q * self.codebook_size, self.codebook_dim))
        return ops.sum(ops.take(table, codes + offsets, axis=0), axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(num_quantizers=self.num_quantizers, codebook_size=self.codebook_size, codebook_dim=self.codebook_dim)
        return config
