"""ChromaticGPT: a decoder-only transformer over the unified chromatic vocabulary."""

from __future__ import annotations

import pathlib

import keras
import keras_hub
import numpy as np
from keras import ops

from chroma_keras.errors import ModelInputError
from chroma_keras.generation import prompts as prompt_tools
from chroma_keras.generation.samplers import SamplingConfig, beam_search, sample_loop
from chroma_keras.tokenizers.chromatic_vocabulary import ChromaticVocabulary, check_audio_pattern, sequence_sections

TOKEN_IDS = "token_ids"
PADDING_MASK = "padding_mask"


@keras.saving.register_keras_serializable(package="chroma_keras")
class ChromaticGPT(keras.Model):
    """A causal language model over :class:`~chroma_keras.tokenizers.ChromaticVocabulary`.

    Token and learned position embeddings feed ``num_layers`` pre-norm causal
    :class:`keras_hub.layers.TransformerDecoder` blocks (GELU MLPs, as GPT-2); a final layer
    norm and an LM head give next-token logits. The head is the transposed token embedding
    (``tie_embeddings=True``, as GPT-2) or its own matrix.

    Training: ``fit()`` on dicts ``{"token_ids": int [batch, T], "padding_mask": [batch, T]}``
    (1 = real token). :meth:`compute_loss` is the mean next-token cross-entropy over real
    target tokens, so the stock ``train_step`` trains it on every backend.

    Generation: :meth:`generate` builds the prompt's prefix, runs it through the model once
    (:meth:`prefill`) to fill a key/value cache, then feeds one token per step
    (:meth:`decode_step`), choosing each with a strategy of
    :mod:`chroma_keras.generation.samplers`; greedy / temperature / top-k / top-p requests run
    prefill and the whole loop compiled in the backend instead
    (:mod:`chroma_keras.generation.compiled_loop`, ``generate(compiled=...)``).

    Args:
        vocabulary: a :class:`ChromaticVocabulary` or its config dict.
        hidden_dim: token width.
        num_layers: transformer blocks.
        num_heads: attention heads (must divide ``hidden_dim``).
        intermediate_dim: width of each block's MLP.
        max_sequence_length: longest sequence (prompt + generated tokens) the position
            embedding covers.
        dropout: dropout of embeddings, attention and MLPs in training.
        tie_embeddings: share the token embedding with the LM head.
        layer_norm_epsilon: epsilon of the layer norms.
        sampling: default strategy of :meth:`generate` (one of
            :data:`chroma_keras.generation.samplers.STRATEGIES`).
        temperature, top_k, top_p, repetition_penalty, num_beams, length_penalty: default
            sampling parameters (see :class:`~chroma_keras.generation.samplers.SamplingConfig`).
        max_length: default longest generated sequence, prompt included.
        seed: seed of dropout.
        text_max_bytes: training rows carry the segment's text, cut to this many UTF-8 bytes, in a
            ``<sep_text>`` section (0: none; the vocabulary needs text tokens).
        audio_pattern: layout of the ``<sep_audio>`` section's EnCodec codes (``"delay"`` or
            ``"flatten"``); used when the vocabulary has audio tokens.
        encodec_weights: where the EnCodec codec of the audio tokens comes from (a local converted
            directory or checkpoint; None: a seeded random-init stand-in, see
            :mod:`chroma_keras.tokenizers.gpt_audio`). Loaded on first use.

    Call arguments:
        inputs: a dict with ``token_ids`` and optionally ``padding_mask``, or token ids.
        training: apply dropout.

    Returns:
        logits ``[batch, T, vocabulary_size]``.

    Example:
    >>> import chroma_keras as ck
    >>> model = ck.from_preset("gpt_remi_chromatic")
    >>> ids = model.generate(prompt="Generate a RED segment with high temporal complexity",
    ...                      max_length=64, sampling="top_p", seed=0)
    >>> report = model.to_midi(ids[0], "red.mid")  # doctest: +SKIP
    """

    @property
    def multimodal(self) -> bool:
        """Training rows carry text or audio sections besides MIDI (``gpt_multimodal_chromatic``)."""
        return self.text_max_bytes > 0 or self.vocabulary.audio_num_codebooks > 0

    @property
    def required_modalities(self) -> tuple:
        """Modalities a corpus segment must have: MIDI for a MIDI-only model; none for a multimodal
        one (a segment lacking a modality has no section for it)."""
        return () if self.multimodal else ("midi",)

    @property
    def corpus_modalities(self):
        """What the corpus reader loads for this model (None: the preset's default, MIDI)."""
        if not self.multimodal:
            return None
        chosen = ["midi"]
        if self.text_max_bytes > 0:
            chosen.append("text")
        if self.vocabulary.audio_num_codebooks > 0:
            chosen.append("audio")
        return tuple(chosen)

    def __init__(
        self,
        vocabulary=None,
        hidden_dim=256,
        num_layers=4,
        num_heads=4,
        intermediate_dim=1024,
        max_sequence_length=512,
        dropout=0.1,
        tie_embeddings=True,
        layer_norm_epsilon=1e-5,
        sampling="top_p",
        temperature=1.0,
        top_k=40,
        top_p=0.9,
        repetition_penalty=1.0,
        num_beams=4,
        length_penalty=1.0,
        max_length=256,
        seed=None,
        text_max_bytes=0,
        audio_pattern="delay",
        encodec_weights=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if vocabulary is None:
            vocabulary = ChromaticVocabulary(midi={"tokenization": "remi"})
        elif not isinstance(vocabulary, ChromaticVocabulary):
            vocabulary = ChromaticVocabulary.from_config(vocabulary)
        if hidden_dim % num_heads:
            raise ModelInputError(
                f"hidden_dim must be divisible by num_heads. Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        self.vocabulary = vocabulary
        # === Layers ===
        self.token_embedding = keras_hub.layers.ReversibleEmbedding(
            vocabulary.vocabulary_size,
            hidden_dim,
            tie_weights=tie_embeddings,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02, seed=seed),
            name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            max_sequence_length,
            initializer=keras.initializers.RandomNormal(stddev=0.02, seed=None if seed is None else seed + 1),
            name="position_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, seed=seed, name="embedding_dropout")
        self.blocks = [
            keras_hub.layers.TransformerDecoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                dropout=dropout,
                activation="gelu",
                layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=keras.initializers.RandomNormal(stddev=0.02, seed=None if seed is None else seed + 2 + i),
                normalize_first=True,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="final_norm")
        self.token_embedding.build((None, None))
        self.position_embedding.build((None, None, hidden_dim))
        for block in self.blocks:
            block.build((None, None, hidden_dim))
        self.final_norm.build((None, None, hidden_dim))
        self.built = True

        # === Config ===
        self.hidden_dim = int(hidden_dim)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.intermediate_dim = int(intermediate_dim)
        self.max_sequence_length = int(max_sequence_length)
        self.dropout = float(dropout)
        self.tie_embeddings = bool(tie_embeddings)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.sampling_config = SamplingConfig(
            sampling,
            temperature=float(temperature),
            top_k=int(top_k),
            top_p=float(top_p),
            repetition_penalty=float(repetition_penalty),
            num_beams=int(num_beams),
            length_penalty=float(length_penalty),
        )
        self.max_length = int(max_length)
        self.seed = seed
        if text_max_bytes and not vocabulary.text:
            raise ModelInputError(f"text_max_bytes={text_max_bytes} needs a vocabulary with text tokens (model.gpt.text_tokens).")
        check_audio_pattern(audio_pattern, "audio_pattern")
        self.text_max_bytes = int(text_max_bytes)
        self.audio_pattern = str(audio_pattern)
        self.encodec_weights = None if encodec_weights is None else str(encodec_weights)
        self._audio_tokenizer = None
        self._audio_code_cache = None
        self.rebracketing_dropout = 0.0  # set from the preset's model.gpt.rebracketing_dropout
        self.infill_rate = 0.0  # set from the preset's model.gpt.infill_rate

    # --- forward pass and loss -------------------------------------------------------------

    def _embed(self, token_ids, start_index=0, training=False):
        tokens = self.token_embedding(token_ids)
        if isinstance(start_index, (int, np.integer)):
            positions = self.position_embedding(tokens, start_index=int(start_index))
        else:
            # A tensor index (compiled and exported decoding): gather the rows. A slice at a tensor
            # offset has a data-dependent size, which torch.export (and so ONNX) cannot capture.
            rows = ops.arange(ops.shape(token_ids)[1], dtype="int32") + ops.cast(start_index, "int32")
            positions = self.position_embedding(tokens, positions=rows)
        return self.embedding_dropout(tokens + positions, training=training)

    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            token_ids, padding_mask = inputs[TOKEN_IDS], inputs.get(PADDING_MASK)
        else:
            token_ids, padding_mask = inputs, None
        x = self._embed(token_ids, training=training)
        for block in self.blocks:
            x = block(x, decoder_padding_mask=padding_mask, training=training)
        return self.token_embedding(self.final_norm(x), reverse=True)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        token_ids = x[TOKEN_IDS] if isinstance(x, dict) else x
        mask = x.get(PADDING_MASK) if isinstance(x, dict) else None
        targets = token_ids[:, 1:]
        logits = ops.cast(y_pred[:, :-1, :], "float32")
        weights = ops.ones_like(targets, dtype="float32") if mask is None else ops.cast(mask[:, 1:], "float32")
        losses = ops.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        loss = ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1.0)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def compile(self, optimizer=None, **kwargs):
        """Compile with the model's own next-token loss; the optimizer defaults to AdamW(3e-4)."""
        if kwargs.get("loss") is not None:
            raise ModelInputError("ChromaticGPT owns its loss; do not pass loss= to compile().")
        kwargs.pop("loss", None)
        super().compile(optimizer=optimizer or keras.optimizers.AdamW(3e-4), **kwargs)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(optimizer=config.get("optimizer"))
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_variables)

    # --- cached decoding ---------------------------------------------------------------------

    def init_cache(self, batch_size, length):
        """An empty key/value cache ``[batch, num_layers, 2, length, num_heads, head_dim]``."""
        head_dim = self.hidden_dim // self.num_heads
        return ops.zeros((batch_size, self.num_layers, 2, length, self.num_heads, head_dim), dtype=self.compute_dtype)

    def call_with_cache(self, token_ids, cache, index):
        """Run ``token_ids`` (positions ``index ..``) through the model, reading and writing ``cache``.

        Returns:
            ``(logits [batch, n, vocab], cache)``.
        """
        x = self._embed(token_ids, start_index=index)
        layers = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, self_attention_cache=cache[:, i, ...], self_attention_cache_update_index=index)
            layers.append(layer_cache)
        logits = self.token_embedding(self.final_norm(x), reverse=True)
        return logits, ops.stack(layers, axis=1)

    def call_with_cache_in_place(self, token_ids, cache, index):
        """:meth:`call_with_cache` that writes the new keys and values into ``cache`` itself (PyTorch only).

        The functional step copies the whole cache about three times per token (keras-hub's cached
        attention clones each layer's keys and values to update them and stacks them back, and the
        layers are stacked again); at a 1,024-position cache that copying was over half of a decoding
        step on CPU. Here each layer's new keys and values are written into their slot of ``cache``
        and the attention reads that slot, so nothing is copied. Same arithmetic as
        :meth:`call_with_cache` (a test compares them); only a caller that owns ``cache`` and never
        reuses an older state may use it: on PyTorch, the compiled decoding loop and the stepper of the
        NumPy loop (beam search's reordering takes a new cache).

        Args:
            token_ids: ``[batch, n]`` ints at positions ``index .. index + n - 1``.
            cache: a PyTorch tensor from :meth:`init_cache`, modified in place.
            index: a Python int or an int scalar tensor.

        Returns:
            ``(logits [batch, n, vocab], cache)`` (the same ``cache`` object).
        """
        if keras.config.backend() != "torch":
            raise ModelInputError(
                "ChromaticGPT.call_with_cache_in_place writes into a PyTorch tensor; under the "
                f"{keras.config.backend()} backend use call_with_cache."
            )
        start = int(index)
        count = int(ops.shape(token_ids)[1])
        # The rectangular causal mask of cached decoding: query i (at start + i) sees cache slots 0..start + i.
        query_positions = ops.arange(count, dtype="int32")[:, None] + start
        mask = ops.expand_dims(query_positions >= ops.arange(ops.shape(cache)[3], dtype="int32")[None, :], 0)
        x = self._embed(token_ids, start_index=start)
        for i, block in enumerate(self.blocks):
            attention = block._self_attention_layer
            residual = x
            normed = block._self_attention_layer_norm(x)  # the blocks normalise first (normalize_first=True)
            query = attention._query_dense(normed)
            cache[:, i, 0, start : start + count] = attention._key_dense(normed)
            cache[:, i, 1, start : start + count] = attention._value_dense(normed)
            attended, _ = attention._compute_attention(
                query=query, key=cache[:, i, 0], value=cache[:, i, 1], attention_mask=mask, training=False
            )
            x = attention._output_dense(attended) + residual
            residual = x
            normed = block._feedforward_layer_norm(x)
            x = block._feedforward_output_dense(block._feedforward_intermediate_dense(normed)) + residual
        return self.token_embedding(self.final_norm(x), reverse=True), cache

    def compiled_cached_call(self):
        """:meth:`call_with_cache` compiled for the backend (built once, reused by :meth:`generate`)."""
        if getattr(self, "_compiled_cached_call", None) is None:
            from chroma_keras.backend.compiled_decoding import compile_cached_call

            self._compiled_cached_call = compile_cached_call(self)
        return self._compiled_cached_call

    def prefill(self, token_ids, cache_length=None):
        """Fill a fresh cache with a prompt.

        Args:
            token_ids: ``[batch, prompt_length]`` ints.
            cache_length: positions the cache holds (default ``max_sequence_length``).

        Returns:
            ``(logits [batch, prompt_length, vocab], cache)``.
        """
        token_ids = ops.convert_to_tensor(np.asarray(token_ids, np.int32))
        length = self.max_sequence_length if cache_length is None else int(cache_length)
        self._check_length(ops.shape(token_ids)[1], length)
        cache = self.init_cache(ops.shape(token_ids)[0], length)
        return self.compiled_cached_call()(token_ids, cache, 0)

    def decode_step(self, token_ids, cache, index):
        """One decoding step: the logits after ``token_ids [batch, 1]`` at position ``index``.

        Returns:
            ``(logits [batch, vocab], cache)``.
        """
        token_ids = ops.convert_to_tensor(np.asarray(token_ids, np.int32).reshape(-1, 1))
        logits, cache = self.compiled_cached_call()(token_ids, cache, index)
        return logits[:, -1, :], cache

    def _check_length(self, length, cache_length):
        if not 0 < int(length) <= int(cache_length) <= self.max_sequence_length:
            raise ModelInputError(
                f"sequence length {int(length)} and cache length {int(cache_length)} must satisfy "
                f"0 < length <= cache_length <= max_sequence_length={self.max_sequence_length}."
            )

    # --- generation ----------------------------------------------------------------------

    def prompt_ids(self, prompt=None, condition=None, rebracketing=None, rebracketing_type=None, text=None) -> np.ndarray:
        """The prefix tokens :meth:`generate` starts from (see :mod:`chroma_keras.generation.prompts`).

        ``prompt`` may also be token ids (a 1-D int sequence), used as they are. ``text`` (a
        multimodal model's concept text) goes in a ``<sep_text>`` section before ``<sep_midi>``,
        cut to ``text_max_bytes`` as in training.
        """
        if text is not None:
            if not self.text_max_bytes:
                raise ModelInputError("text= needs a model trained with text sections (model.gpt.text_max_bytes > 0).")
            from chroma_keras.training.gpt_batches import multimodal_row

            base = self.prompt_ids(prompt, condition, rebracketing, rebracketing_type)
            if base[-1] != self.vocabulary.separator_id("midi"):
                raise ModelInputError("text= needs a prompt whose prefix ends with <sep_midi> (not raw token ids that end elsewhere).")
            ids = multimodal_row(self.vocabulary, base, text, text_max_bytes=self.text_max_bytes)[:-1]
            return np.asarray(ids + [self.vocabulary.separator_id("midi")], np.int32)
        if isinstance(prompt, (np.ndarray, list, tuple)) and not isinstance(prompt, str):
            ids = np.asarray(prompt)
            if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or ids.size == 0:
                raise ModelInputError(f"token-id prompts must be a non-empty 1-D int sequence. Received: shape={ids.shape}, dtype={ids.dtype}")
            if ids.min() < 0 or ids.max() >= self.vocabulary.vocabulary_size:
                raise ModelInputError(f"prompt token ids must be in [0, {self.vocabulary.vocabulary_size}).")
            return ids.astype(np.int32)
        structured = prompt_tools.resolve_prompt(prompt, condition, rebracketing, rebracketing_type)
        return prompt_tools.prompt_ids(structured, self.vocabulary)

    def generate(
        self,
        prompt=None,
        condition=None,
        max_length=None,
        sampling=None,
        seed=None,
        temperature=None,
        top_k=None,
        top_p=None,
        repetition_penalty=None,
        num_beams=None,
        length_penalty=None,
        num_samples=1,
        rebracketing=None,
        logits_processors=(),
        constrained=False,
        compiled="auto",
        text=None,
        audio_frames=None,
    ) -> np.ndarray:
        """Generate token sequences for a prompt.

        Args:
            prompt: free text ("Generate a RED segment with high temporal complexity"), a
                :class:`~chroma_keras.generation.prompts.StructuredPrompt`, a dict of its fields,
                prefix token ids, or None (no mode on any axis).
            condition: a colour / per-axis condition (overrides the prompt's modes).
            max_length: longest returned sequence, prompt included (default: the preset's
                ``generation.sampling.max_length``; at most ``max_sequence_length``).
            sampling: strategy, one of :data:`~chroma_keras.generation.samplers.STRATEGIES`
                (default: the preset's ``generation.sampling.strategy``).
            seed: integer seed of the draws; the same seed gives the same tokens (on the compiled
                path, on the same backend; see ``compiled``). None draws a fresh seed.
            temperature, top_k, top_p, repetition_penalty, num_beams, length_penalty: override the
                model's defaults (see :class:`~chroma_keras.generation.samplers.SamplingConfig`).
            num_samples: sequences to return (for ``beam``: the best ``num_samples`` beams).
            rebracketing: normalised rebracketing levels merged over the prompt's.
            logits_processors: ``f(sequences, logits) -> logits`` masks applied every step.
            constrained: mask every token REMI's grammar does not allow next
                (:class:`~chroma_keras.generation.remi_grammar.RemiGrammar`), so the MIDI section
                decodes with no token errors; works with every strategy. With audio tokens it also
                keeps the ``<sep_audio>`` section in its codebook pattern
                (:class:`~chroma_keras.generation.audio_grammar.AudioPatternGrammar`), so
                :meth:`to_audio` can decode it.
            compiled: where the decoding loop runs. ``True``: the whole loop in one compiled
                backend loop (:mod:`chroma_keras.generation.compiled_loop`; greedy, temperature,
                top-k, top-p and top-k + top-p without repetition penalty, processors or
                constraints); ``False``: NumPy strategies between compiled model steps (every
                feature; draws identical on every backend); ``"auto"`` (default): compiled when the
                request allows it. Greedy decoding gives the same tokens either way; sampled
                draws differ between the two (each is reproducible from ``seed``). Constraints
                need the NumPy loop: ``"auto"`` falls back to it when ``constrained=True``.
            text: a multimodal model's concept text, put in the prompt's ``<sep_text>`` section.
            audio_frames: with ``constrained=True`` on a model with audio tokens, write exactly
                this many EnCodec frames (75 per second) in the audio section, then ``<eos>``.

        Returns:
            int32 NumPy array ``[num_samples, length]``: prefix then generated tokens, ending with
            ``<eos>`` when the model ended the sequence, ``<pad>`` after it.
        """
        prefix = self.prompt_ids(prompt, condition, rebracketing, text=text)
        if audio_frames is not None and not (constrained and self.vocabulary.audio_num_codebooks):
            raise ModelInputError(
                f"audio_frames={audio_frames!r} needs constrained=True and a model with audio tokens (model.gpt.audio_num_codebooks > 0)."
            )
        config = self.sampling_config.updated(
            strategy=sampling,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            num_beams=num_beams,
            length_penalty=length_penalty,
        )
        max_length = self.max_length if max_length is None else int(max_length)
        max_length = min(max_length, self.max_sequence_length)
        if max_length <= len(prefix):
            raise ModelInputError(
                f"max_length must exceed the prompt's {len(prefix)} tokens (and max_sequence_length caps it at "
                f"{self.max_sequence_length}). Received: max_length={max_length}"
            )
        if not (isinstance(num_samples, (int, np.integer)) and num_samples >= 1):
            raise ModelInputError(f"num_samples must be an integer >= 1. Received: num_samples={num_samples!r}")
        vocab = self.vocabulary
        logits_processors = list(logits_processors)
        if self._use_compiled_loop(compiled, config, logits_processors, constrained):
            return self._generate_compiled(prefix, num_samples, max_length, config, seed)
        if constrained:
            from chroma_keras.generation.remi_grammar import RemiGrammar

            logits_processors.append(RemiGrammar(vocab))
            if vocab.audio_num_codebooks:
                from chroma_keras.generation.audio_grammar import AudioPatternGrammar

                logits_processors.append(AudioPatternGrammar(vocab, self.audio_pattern, num_frames=audio_frames))
        if config.strategy == "beam":
            if num_samples > config.num_beams:
                raise ModelInputError(
                    f"beam search returns at most num_beams={config.num_beams} sequences. Received: num_samples={num_samples}"
                )
            stepper = _CachedStepper(self, config.num_beams, max_length)
            sequences, _ = beam_search(
                stepper,
                prefix,
                max_length,
                config.num_beams,
                config.length_penalty,
                eos_id=vocab.eos_id,
                pad_id=vocab.pad_id,
                reorder_fn=stepper.reorder,
                repetition_penalty=config.repetition_penalty,
                num_return=num_samples,
                processors=logits_processors,
            )
            return sequences
        stepper = _CachedStepper(self, num_samples, max_length)
        prompts = np.repeat(prefix[None, :], num_samples, axis=0)
        return sample_loop(
            stepper, prompts, max_length, config, seed=seed, eos_id=vocab.eos_id, pad_id=vocab.pad_id, processors=logits_processors
        )

    def _use_compiled_loop(self, compiled, config, processors, constrained) -> bool:
        from chroma_keras.generation.compiled_loop import unsupported_reason

        if compiled not in (True, False, "auto"):
            raise ModelInputError(f"compiled must be True, False or 'auto'. Received: compiled={compiled!r}")
        reason = unsupported_reason(config, processors, constrained)
        if compiled is True and reason is not None:
            raise ModelInputError(
                f"compiled=True runs greedy / temperature / top-k / top-p decoding without repetition penalty, "
                f"logits processors or constraints; this request has {reason}. Pass compiled=False or 'auto'."
            )
        return compiled is not False and reason is None

    def _generate_compiled(self, prefix, num_samples, max_length, config, seed):
        from chroma_keras.generation.compiled_loop import loop_spec

        vocab = self.vocabulary
        spec = loop_spec(config, max_length, vocab.eos_id, vocab.pad_id, vocab.vocabulary_size)
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        if getattr(self, "_compiled_decode_loop", None) is None:
            from chroma_keras.backend.compiled_decoding import compile_decode_loop

            self._compiled_decode_loop = compile_decode_loop(self)
        prompts = np.repeat(prefix[None, :], num_samples, axis=0).astype(np.int32)
        return self._compiled_decode_loop(prompts, seed, config.temperature, config.top_p, spec)

    def continue_midi(self, midi, prompt=None, condition=None, max_new_tokens=256, rebracketing=None, **generate_kwargs):
        """Continue a MIDI segment: its REMI tokens follow the prompt's prefix, and generation goes on from there.

        Args:
            midi: a Standard MIDI File as bytes, or the path of one.
            prompt, condition, rebracketing: the prefix, as in :meth:`generate` (the colour or
                per-axis modes the continuation should have).
            max_new_tokens: tokens to add after the given MIDI's tokens.
            **generate_kwargs: :meth:`generate`'s sampling arguments (``sampling``, ``seed``,
                ``temperature``, ``top_k``, ``top_p``, ``num_beams``, ``constrained``, ...).

        Returns:
            int32 ``[num_samples, length]``: prefix, the given MIDI's tokens, then the
            continuation; :meth:`to_midi` turns it into MIDI (the given part included).

        Raises:
            MidiError: the MIDI cannot be parsed (naming the file).
            ModelInputError: the prefix and the given tokens leave no room for
                ``max_new_tokens`` within ``max_sequence_length``.

        Example:

        >>> ids = gpt.continue_midi("verse.mid", condition="Red", max_new_tokens=128, sampling="top_p",
        ...                         seed=0, constrained=True)
        >>> gpt.to_midi(ids, "out/")
        """
        from chroma_keras.generation.infilling import read_midi_bytes

        midi, source = read_midi_bytes(midi)
        prefix = self.prompt_ids(prompt, condition, rebracketing)
        if prefix[-1] != self.vocabulary.separator_id("midi"):
            raise ModelInputError("continue_midi needs a MIDI prompt (its prefix must end with <sep_midi>).")
        given = self.vocabulary.encode_midi(midi, source=source)
        ids = np.concatenate([prefix, given]).astype(np.int32)
        if not (isinstance(max_new_tokens, (int, np.integer)) and max_new_tokens >= 1):
            raise ModelInputError(f"max_new_tokens must be an integer >= 1. Received: max_new_tokens={max_new_tokens!r}")
        if len(ids) + max_new_tokens > self.max_sequence_length:
            raise ModelInputError(
                f"{source}: the prefix ({len(prefix)} tokens) and the MIDI's {len(given)} REMI tokens leave room for "
                f"{max(0, self.max_sequence_length - len(ids))} new tokens within max_sequence_length="
                f"{self.max_sequence_length}; asked for max_new_tokens={max_new_tokens}. Pass a shorter segment."
            )
        return self.generate(prompt=ids, max_length=len(ids) + int(max_new_tokens), **generate_kwargs)

    def infill(self, midi, bars, prompt=None, condition=None, max_new_tokens=256, rebracketing=None, constrained=True, **generate_kwargs):
        """Regenerate some bars of a MIDI segment, keeping the bars before and after them.

        The segment's REMI tokens are cut at its ``Bar`` tokens; the model sees the bars before and
        after the span in fill-in-the-middle form and writes the missing bars
        (:mod:`chroma_keras.generation.infilling`), which are spliced back in place. The model must
        have been trained with FIM examples (``model.gpt.infill_rate > 0``) to write a middle that
        fits its context.

        Args:
            midi: a Standard MIDI File as bytes, or the path of one.
            bars: ``(start, end)``: bars ``start .. end - 1`` are regenerated. 0-based and
                half-open like a slice: "bars 5-8" counted from 1 is ``bars=(4, 8)``.
            prompt, condition, rebracketing: the prefix, as in :meth:`generate`.
            max_new_tokens: the most tokens the new bars may take (``<infill_end>`` included).
            constrained: the new bars follow REMI's grammar (as ``generate(constrained=True)``).
                Either way they hold exactly ``end - start`` bars.
            **generate_kwargs: :meth:`generate`'s sampling arguments (``sampling``, ``seed``,
                ``top_k``, ``top_p``, ``num_beams``, ``num_samples``, ...).

        Returns:
            int32 ``[num_samples, length]`` plain sequences (prefix, bars before, new bars, bars
            after, ``<eos>``); :meth:`to_midi` writes them. Bars outside the span are the given
            segment's tokens, so they decode note for note as the given MIDI does.

        Raises:
            ModelInputError: ``bars`` out of range or ``start >= end``, a segment with no bars, no
                room for the new bars, or a vocabulary without the infill tokens.
            MidiError: the MIDI cannot be parsed.

        Example:

        >>> ids = gpt.infill("song.mid", bars=(4, 8), condition="Red", sampling="top_p", seed=0)
        >>> gpt.to_midi(ids[0], "song_new_bars_5_to_8.mid")
        """
        from chroma_keras.generation.infilling import infill_midi

        return infill_midi(
            self, midi, bars, prompt, condition, rebracketing, max_new_tokens=max_new_tokens, constrained=constrained, **generate_kwargs
        )

    def to_midi(self, ids, path=None):
        """Decode generated sequences into Standard MIDI Files.

        Only the MIDI section of each sequence (after ``<sep_midi>``, up to ``<eos>``) is decoded;
        tokens that break REMI's grammar are skipped the way miditok decodes, and counted.

        Args:
            ids: one sequence ``[T]`` or a batch ``[batch, T]`` (what :meth:`generate` returns).
            path: for one sequence, the ``.mid`` file to write; for a batch, a directory that
                receives ``sample_000.mid``, ... ; None writes nothing.

        Returns:
            A report dict per sequence (a list for a batch): ``midi`` (the bytes), ``path``,
            ``num_tokens``, ``num_notes`` and ``token_error_rate`` (miditok's share of
            tokens whose type cannot follow the previous token's).
        """
        array = np.asarray(ids)
        if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.integer):
            raise ModelInputError(f"ids must be integer token ids [T] or [batch, T]. Received: shape={array.shape}, dtype={array.dtype}")
        if array.ndim == 2:
            out_dir = None if path is None else pathlib.Path(path)
            return [
                self.to_midi(row, None if out_dir is None else out_dir / f"sample_{i:03d}.mid") for i, row in enumerate(array)
            ]
        midi_ids = sequence_sections(array, self.vocabulary)["midi"]
        data, report = self.vocabulary.decode_midi(midi_ids)
        if path is not None:
            path = pathlib.Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return {"midi": data, "path": None if path is None else str(path), **report}

    def to_text(self, ids):
        """The text of each sequence's ``<sep_text>`` section (a list for a batch)."""
        array = np.asarray(ids)
        if array.ndim == 2:
            return [self.to_text(row) for row in array]
        if array.ndim != 1:
            raise ModelInputError(f"ids must be token ids [T] or [batch, T]. Received: shape={array.shape}")
        return self.vocabulary.decode_text(sequence_sections(array, self.vocabulary)["text"])

    def get_audio_tokenizer(self):
        """The EnCodec :class:`~chroma_keras.tokenizers.audio_tokenizer.AudioTokenizer` of the audio
        tokens, loaded from ``encodec_weights`` on first use (see :mod:`chroma_keras.tokenizers.gpt_audio`)."""
        if self._audio_tokenizer is None:
            self.set_audio_tokenizer(None)
        return self._audio_tokenizer

    def set_audio_tokenizer(self, tokenizer=None):
        """Use ``tokenizer`` (an AudioTokenizer whose codebooks fit the vocabulary) for the audio tokens,
        or load the one ``encodec_weights`` names when None. Resets the code cache.

        Raises:
            ModelInputError: no audio tokens, or a codec whose codebooks do not fit.
            CheckpointError: ``encodec_weights`` does not exist or holds no EnCodec.
        """
        from chroma_keras.tokenizers.gpt_audio import AudioCodeCache, gpt_audio_tokenizer

        vocab = self.vocabulary
        if not vocab.audio_num_codebooks:
            raise ModelInputError("this model has no audio tokens (model.gpt.audio_num_codebooks is 0).")
        tokenizer, bandwidth = gpt_audio_tokenizer(self.encodec_weights, vocab.audio_num_codebooks, vocab.audio_codebook_size, tokenizer)
        self._audio_tokenizer = tokenizer
        self._audio_code_cache = AudioCodeCache(tokenizer, bandwidth)

    def audio_code_cache(self):
        """The :class:`~chroma_keras.tokenizers.gpt_audio.AudioCodeCache` training rows encode clips with."""
        if self._audio_code_cache is None:
            self.set_audio_tokenizer(self._audio_tokenizer)
        return self._audio_code_cache

    def to_audio(self, ids, path=None):
        """Decode each sequence's ``<sep_audio>`` section through the EnCodec decoder.

        The section's complete frames are kept (:func:`~chroma_keras.tokenizers.gpt_audio.audio_section_codes`:
        one cut by ``max_length`` loses only its unfinished frame).

        Args:
            ids: one sequence ``[T]`` or a batch ``[batch, T]``.
            path: for one sequence, a ``.wav`` file to write; for a batch, a directory that receives
                ``sample_000.wav``, ...; None writes nothing.

        Returns:
            A dict per sequence (a list for a batch): ``audio`` (float32 ``[frames * 320]`` at
            ``sample_rate``, empty for no frames), ``sample_rate`` (24000), ``codes``
            (int32 ``[K, frames]``), ``num_frames`` and ``path``.

        Raises:
            ModelInputError: no audio tokens, or tokens outside their codebook (unconstrained samples).

        Example:

        >>> ids = gpt.generate(prompt="Red", constrained=True, max_length=1024, seed=0)   # doctest: +SKIP
        >>> gpt.to_audio(ids[0], "red.wav")["num_frames"]                                # doctest: +SKIP
        """
        from chroma_keras.tokenizers.gpt_audio import audio_section_codes

        array = np.asarray(ids)
        if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.integer):
            raise ModelInputError(f"ids must be integer token ids [T] or [batch, T]. Received: shape={array.shape}, dtype={array.dtype}")
        if array.ndim == 2:
            out_dir = None if path is None else pathlib.Path(path)
            return [self.to_audio(row, None if out_dir is None else out_dir / f"sample_{i:03d}.wav") for i, row in enumerate(array)]
        tokenizer = self.get_audio_tokenizer()
        codes = audio_section_codes(self.vocabulary, sequence_sections(array, self.vocabulary)["audio"], self.audio_pattern)
        audio = tokenizer.decode(codes) if codes.shape[1] else np.zeros(0, np.float32)
        if path is not None:
            import soundfile

            path = pathlib.Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(path), audio, tokenizer.sample_rate)
        return {
            "audio": audio,
            "sample_rate": tokenizer.sample_rate,
            "codes": codes,
            "num_frames": int(codes.shape[1]),
            "path": None if path is None else str(path),
        }

    def training_batches(self, dataset):
        """``fit()`` batches for this model from a corpus reader's MIDI-token batches
        (:class:`~chroma_keras.training.gpt_batches.GPTTokenBatches`); None passes through.
        :func:`chroma_keras.demo.train_on_corpus` calls it."""
        if dataset is None:
            return None
        from chroma_keras.training.gpt_batches import GPTTokenBatches

        seed = 0 if self.seed is None else int(self.seed)
        audio_codes = self.audio_code_cache().encode if self.vocabulary.audio_num_codebooks else None
        return GPTTokenBatches(
            dataset,
            self.vocabulary,
            self.max_sequence_length,
            self.rebracketing_dropout,
            seed,
            infill_rate=self.infill_rate,
            text_max_bytes=self.text_max_bytes,
            audio_codes=audio_codes,
            audio_pattern=self.audio_pattern,
        )

    # --- presets -------------------------------------------------------------------------

    @classmethod
    def from_preset_config(cls, config):
        """Build the model from a resolved preset dict (``model.gpt``, ``preprocessing.midi``,
        ``generation.sampling``)."""
        from chroma_keras.preprocessing.midi_tokens import MidiTokenizerSpec

        gpt = config["model"]["gpt"]
        sampling = config["generation"]["sampling"]
        spec = MidiTokenizerSpec.from_config(config)
        vocabulary = ChromaticVocabulary(
            midi=spec,
            audio_num_codebooks=gpt["audio_num_codebooks"],
            audio_codebook_size=gpt["audio_codebook_size"],
            rebracketing_buckets=gpt["rebracketing_buckets"],
            text=gpt["text_tokens"],
        )
        model = cls(
            vocabulary=vocabulary,
            hidden_dim=gpt["hidden_dim"],
            num_layers=gpt["num_layers"],
            num_heads=gpt["num_heads"],
            intermediate_dim=gpt["intermediate_dim"],
            max_sequence_length=gpt["max_sequence_length"],
            dropout=gpt["dropout"],
            tie_embeddings=gpt["tie_embeddings"],
            sampling=sampling["strategy"],
            temperature=sampling["temperature"],
            top_k=sampling["top_k"],
            top_p=sampling["top_p"],
            repetition_penalty=sampling["repetition_penalty"],
            num_beams=sampling["num_beams"],
            length_penalty=sampling["length_penalty"],
            max_length=sampling["max_length"],
            seed=config["training"]["seed"],
            text_max_bytes=gpt["text_max_bytes"],
            audio_pattern=gpt["audio_pattern"],
            encodec_weights=gpt["encodec_weights"],
            name=config["name"],
        )
        model.rebracketing_dropout = float(gpt["rebracketing_dropout"])
        model.infill_rate = float(gpt["infill_rate"])
        if gpt["audio_num_codebooks"]:
            from chroma_keras.tokenizers.gpt_audio import check_encodec_weights

            check_encodec_weights(gpt["encodec_weights"])  # fail at load, not at the first training batch
        return model

    def preset_overrides(self):
        """The preset keys this model's constructor arguments determine (inverse of :meth:`from_preset_config`)."""
        vocab = self.vocabulary
        spec = vocab.midi_spec
        out = {
            "model.generative.type": "autoregressive",
            "model.gpt.hidden_dim": self.hidden_dim,
            "model.gpt.num_layers": self.num_layers,
            "model.gpt.num_heads": self.num_heads,
            "model.gpt.intermediate_dim": self.intermediate_dim,
            "model.gpt.max_sequence_length": self.max_sequence_length,
            "model.gpt.dropout": self.dropout,
            "model.gpt.tie_embeddings": self.tie_embeddings,
            "model.gpt.audio_num_codebooks": vocab.audio_num_codebooks,
            "model.gpt.audio_codebook_size": vocab.audio_codebook_size,
            "model.gpt.rebracketing_buckets": vocab.rebracketing_buckets,
            "model.gpt.text_tokens": vocab.text,
            "model.gpt.rebracketing_dropout": self.rebracketing_dropout,
            "model.gpt.infill_rate": self.infill_rate,
            "model.gpt.text_max_bytes": self.text_max_bytes,
            "model.gpt.audio_pattern": self.audio_pattern,
            "model.gpt.encodec_weights": self.encodec_weights,
            "generation.sampling.strategy": self.sampling_config.strategy,
            "generation.sampling.temperature": self.sampling_config.temperature,
            "generation.sampling.top_k": self.sampling_config.top_k,
            "generation.sampling.top_p": self.sampling_config.top_p,
            "generation.sampling.repetition_penalty": self.sampling_config.repetition_penalty,
            "generation.sampling.num_beams": self.sampling_config.num_beams,
            "generation.sampling.length_penalty": self.sampling_config.length_penalty,
            "generation.sampling.max_length": self.max_length,
        }
        if spec is not None:
            out.update(
                {
                    "preprocessing.midi.tokenization": spec.tokenization,
                    "preprocessing.midi.max_events": spec.max_events,
                    "preprocessing.midi.tokens.cpword_layout": spec.cpword_layout,
                    "preprocessing.midi.tokens.positions_per_beat": spec.positions_per_beat,
                    "preprocessing.midi.tokens.num_velocities": spec.num_velocities,
                    "preprocessing.midi.tokens.use_tempos": spec.use_tempos,
                }
            )
        return out

    # --- config ------------------------------------------------------------------------------

    def get_config(self):
        sampling = self.sampling_config
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary": self.vocabulary.to_config(),
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "max_sequence_length": self.max_sequence_length,
            "dropout": self.dropout,
            "tie_embeddings": self.tie_embeddings,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "sampling": sampling.strategy,
            "temperature": sampling.temperature,
            "top_k": sampling.top_k,
            "top_p": sampling.top_p,
            "repetition_penalty": sampling.repetition_penalty,
            "num_beams": sampling.num_beams,
            "length_penalty": sampling.length_penalty,
            "max_length": self.max_length,
            "seed": self.seed,
            "text_max_bytes": self.text_max_bytes,
            "audio_pattern": self.audio_pattern,
            "encodec_weights": self.encodec_weights,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _CachedStepper:
    """``step_fn`` of the decoding loops: feeds only the tokens the cache has not seen yet."""

    def __init__(self, model: ChromaticGPT, batch_size: int, cache_length: int):
        self.model = model
        self.cache = model.init_cache(batch_size, cache_length)
        self.cache_length = cache_length
        self.seen = 0
        self.call = model.compiled_cached_call()
        if keras.config.backend() == "torch":
            # The stepper owns its cache (reorder makes a new one), so PyTorch may write it in place.
            import torch

            def call(token_ids, cache, index):
                with torch.no_grad():
                    return model.call_with_cache_in_place(token_ids, cache, index)

            self.call = call

    def __call__(self, sequences: np.ndarray) -> np.ndarray:
        new = np.asarray(sequences[:, self.seen :], np.int32)
        self.model._check_length(sequences.shape[1], self.cache_length)
        logits, self.cache = self.call(ops.convert_to_tensor(new), self.cache, self.seen)
        self.seen = sequences.shape[1]
        return ops.convert_to_numpy(ops.cast(logits[:, -1, :], "float32"))

    def reorder(self, parents: np.ndarray) -> None:
        self.cache = ops.take(self.cache, ops.convert_to_tensor(np.asarray(parents, np.int32)), axis=0)


__all__ = ["ChromaticGPT"]
