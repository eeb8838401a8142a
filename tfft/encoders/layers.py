"""Building blocks shared by every tfft encoder.

The blocks mirror Hugging Face's modules one for one (exact GELU, the checkpoint's LayerNorm
epsilon, additive attention masking), and every projection is a named `keras.layers.Dense`
(`attention.query`, `attention.key`, `attention.value`, `attention.output`,
`ffn.intermediate`, `ffn.output`) so parameter-efficient methods can wrap or replace them by
name.
"""

import math

import keras
import tensorflow as tf
from keras import ops

# TF has no public test for "this function is being compiled with XLA"; TF's own gradient and
# control-flow code uses this one.
from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext


def _gelu_exact(x):
    # PyTorch's formula. TF's exact gelu goes through erfc, whose kernels are slower than erf's:
    # on CPU 1.7x in float32 and 4.5x in bfloat16 without XLA, 1.3-1.7x with it.
    return x * 0.5 * (1.0 + ops.erf(x * ops.cast(0.7071067811865476, x.dtype)))


def _gelu_tanh(x):
    return keras.activations.gelu(x, approximate=True)


def _quick_gelu(x):
    return x * ops.sigmoid(1.702 * x)


# Hugging Face activation names (transformers.activations.ACT2FN) and their exact equivalents.
ACTIVATIONS = {
    "gelu": _gelu_exact,
    "gelu_python": _gelu_exact,
    "gelu_new": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_python_tanh": _gelu_tanh,
    "quick_gelu": _quick_gelu,
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
    "swish": keras.activations.silu,
    "tanh": keras.activations.tanh,
}


def get_activation(name):
    """Returns the activation function for a Hugging Face `hidden_act` name."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


def _dense(units, initializer_range, name, dtype, activation=None):
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
        name=name,
        dtype=dtype,
    )


def _layer_norm(epsilon, name, dtype):
    return keras.layers.LayerNormalization(epsilon=epsilon, name=name, dtype=dtype)


def attention_bias(attention_mask, dtype):
    """Turns a `[batch, seq]` 1/0 mask into an additive `[batch, 1, 1, seq]` bias.

    Masked keys get the dtype's most negative value, as in Hugging Face, so their softmax
    weight is exactly zero whenever a row has at least one visible key.
    """
    mask = ops.cast(attention_mask[:, None, None, :], "bool")
    minimum = -3.4028234663852886e38 if dtype == "float32" else -65504.0
    return ops.where(mask, ops.zeros((), dtype), ops.cast(minimum, dtype))


class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with faster masks: ThreeFry inside XLA, 16-bit draws outside it.

    Keras draws one float per value with TF's default stateless generator, Philox. Under
    `jit_compile=True` XLA compiles Philox to slow code on CPU (dropout took a quarter of a MiniLM
    training step on 2 cores); ThreeFry cuts that about four-fold. Outside XLA, where TF has only
    the Philox kernel, each 32-bit draw gives two 16-bit values compared with a 16-bit
    threshold: half the random numbers and no float conversion, 40% less time per mask (the
    attention probabilities' masks dominate). The drop rate is then `round(rate * 65536) / 65536`
    (0.1 -> 0.100006) and the scale `1 / (1 - that)`, so the expectation is unchanged. Either way
    the masks are seeded by the layer's `SeedGenerator`.
    """

    def call(self, inputs, training=False):
        if not (training and self.rate > 0 and self.noise_shape is None):
            return super().call(inputs, training=training)
        seed = self.seed_generator.next()
        if not GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()):
            return dropout_16bit(inputs, self.rate, seed)
        if seed.dtype != tf.int32:  # stateless ops under XLA want int32 seeds; as Keras does
            seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed, rng_alg="threefry")


def dropout_16bit(inputs, rate, seed):
    """Dropout with 16-bit uniform draws, two per Philox 32-bit output (see `Dropout`)."""
    threshold = min(round(rate * 65536), 65535)
    size = tf.size(inputs)
    bits = tf.random.stateless_uniform(
        [(size + 1) // 2], seed=seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    )
    halves = tf.reshape(tf.bitcast(bits, tf.uint16), [-1])[:size]
    keep = tf.reshape(halves, tf.shape(inputs)) >= tf.constant(threshold, tf.uint16)
    scaled = inputs * tf.cast(65536 / (65536 - threshold), inputs.dtype)
    return tf.where(keep, scaled, tf.zeros_like(inputs))


class Embeddings(keras.layers.Layer):
    """Word + position (+ token type) embeddings, LayerNorm, dropout, optional projection.

    Args:
        position_ids: "absolute" counts positions from 0; "padding_offset" (RoBERTa, XLM-R)
            counts non-pad tokens from `pad_token_id + 1` and gives pad tokens `pad_token_id`.
        embedding_size: width of the embedding tables (default `hidden_size`).
        project: add a dense `projection` to `hidden_size` (ALBERT always, ELECTRA when the
            widths differ). Default: only when `embedding_size != hidden_size`.
    """

    def __init__(
        self,
        vocab_size,
        hidden_size,
        max_position_embeddings,
        type_vocab_size,
        layer_norm_eps,
        dropout,
        initializer_range=0.02,
        embedding_size=None,
        position_ids="absolute",
        pad_token_id=0,
        project=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        embedding_size = embedding_size or hidden_size
        if project is None:
            project = embedding_size != hidden_size
        self.position_ids_mode = position_ids
        self.pad_token_id = pad_token_id
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.word_embeddings = keras.layers.Embedding(
            vocab_size, embedding_size, embeddings_initializer=init, name="word_embeddings", dtype=self.dtype_policy
        )
        self.position_embeddings = keras.layers.Embedding(
            max_position_embeddings, embedding_size, embeddings_initializer=init, name="position_embeddings", dtype=self.dtype_policy
        )
        self.token_type_embeddings = None
        if type_vocab_size:
            self.token_type_embeddings = keras.layers.Embedding(
                type_vocab_size, embedding_size, embeddings_initializer=init, name="token_type_embeddings", dtype=self.dtype_policy
            )
        self.norm = _layer_norm(layer_norm_eps, "norm", self.dtype_policy)
        self.dropout = Dropout(dropout, dtype=self.dtype_policy)
        self.projection = None
        if project:
            self.projection = _dense(hidden_size, initializer_range, "projection", self.dtype_policy)
        self.embedding_size = embedding_size

    def build(self, input_shape=None):
        for table in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            if table is not None:
                table.build((None, None))
        self.norm.build((None, None, self.embedding_size))
        if self.projection is not None:
            self.projection.build((None, None, self.embedding_size))
        self.built = True

    def _position_ids(self, input_ids, num_prompts=0, past_length=0):
        if num_prompts:
            # Soft prompts come first, as Hugging Face embeds `inputs_embeds`: every position counts
            # (RoBERTa's `create_position_ids_from_inputs_embeds` cannot tell padding there).
            start = self.pad_token_id + 1 if self.position_ids_mode == "padding_offset" else 0
            return ops.arange(start, start + num_prompts + ops.shape(input_ids)[1], dtype="int32")[None, :]
        if self.position_ids_mode == "padding_offset":
            not_pad = ops.cast(ops.not_equal(input_ids, self.pad_token_id), "int32")
            positions = ops.cumsum(not_pad, axis=1)
            if past_length:  # after key/value prefixes, as Hugging Face counts from a cache's length
                positions = positions + past_length
            return positions * not_pad + self.pad_token_id
        if past_length:
            return ops.arange(past_length, past_length + ops.shape(input_ids)[1], dtype="int32")[None, :]
        return ops.arange(ops.shape(input_ids)[1], dtype="int32")[None, :]

    def call(self, input_ids, token_type_ids=None, training=None, prompts=None, past_length=0):
        """Embeds `input_ids` [batch, seq]. For `tfft.peft`'s prompt learning: `prompts`
        [batch, n, embedding_size] are soft prompts placed before the tokens (token type 0), and
        `past_length` key/value prefixes come before them (positions start after it)."""
        x = self.word_embeddings(input_ids)
        num_prompts = 0
        if prompts is not None:
            num_prompts = prompts.shape[1]
            x = ops.concatenate([ops.cast(prompts, x.dtype), x], axis=1)
            if self.token_type_embeddings is not None:
                if token_type_ids is None:
                    token_type_ids = ops.zeros_like(input_ids)
                prompt_types = ops.zeros((ops.shape(input_ids)[0], num_prompts), dtype=token_type_ids.dtype)
                token_type_ids = ops.concatenate([prompt_types, token_type_ids], axis=1)
        x = x + self.position_embeddings(self._position_ids(input_ids, num_prompts, past_length))
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = ops.zeros_like(input_ids)
            x = x + self.token_type_embeddings(token_type_ids)
        x = self.dropout(self.norm(x), training=training)
        if self.projection is not None:
            x = self.projection(x)
        return x


class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention with separate `query`, `key`, `value`, `output` projections."""

    def __init__(self, hidden_size, num_heads, dropout, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_heads {num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.query = _dense(hidden_size, initializer_range, "query", self.dtype_policy)
        self.key = _dense(hidden_size, initializer_range, "key", self.dtype_policy)
        self.value = _dense(hidden_size, initializer_range, "value", self.dtype_policy)
        self.output_dense = _dense(hidden_size, initializer_range, "output", self.dtype_policy)
        self.dropout = Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        for dense in (self.query, self.key, self.value, self.output_dense):
            dense.build((None, None, self.hidden_size))
        self.built = True

    def call(self, x, bias, training=None, prefix=None):
        """`prefix`: `tfft.peft` prefix tuning's (keys, values), each [heads, n, head_size], seen
        before the tokens' own by every query (`bias` then covers n + seq keys)."""
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        # Projections see [batch * seq, hidden]: on CPU without XLA a 2-D matmul fuses with its
        # bias add, a 3-D one does not. The reshapes are free.
        tokens = ops.reshape(x, (-1, self.hidden_size))

        def split_heads(t):  # [batch * seq, hidden] -> [batch, heads, seq, head_size]
            return ops.transpose(ops.reshape(t, (batch, seq, self.num_heads, self.head_size)), (0, 2, 1, 3))

        q = split_heads(self.query(tokens))
        k = split_heads(self.key(tokens))
        v = split_heads(self.value(tokens))
        if prefix is not None:
            keys, values = (ops.broadcast_to(ops.cast(p, k.dtype)[None], (batch, *p.shape)) for p in prefix)
            k = ops.concatenate([keys, k], axis=2)
            v = ops.concatenate([values, v], axis=2)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(self.head_size))
        # Softmax in float32 keeps mixed precision stable; a no-op in full precision.
        probs = ops.softmax(ops.cast(scores + bias, "float32"), axis=-1)
        probs = self.dropout(ops.cast(probs, v.dtype), training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))
        output = self.output_dense(ops.reshape(context, (-1, self.hidden_size)))
        return ops.reshape(output, (batch, seq, self.hidden_size))


class FeedForward(keras.layers.Layer):
    """Position-wise `intermediate` -> activation -> `output` projection."""

    def __init__(self, hidden_size, intermediate_size, activation, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.activation = get_activation(activation)
        self.intermediate = _dense(intermediate_size, initializer_range, "intermediate", self.dtype_policy)
        self.output_dense = _dense(hidden_size, initializer_range, "output", self.dtype_policy)

    def build(self, input_shape=None):
        self.intermediate.build((None, None, self.hidden_size))
        self.output_dense.build((None, None, self.intermediate_size))
        self.built = True

    def call(self, x):
        # 2-D matmuls, as in SelfAttention: oneDNN fuses bias (and GELU) into them.
        tokens = ops.reshape(x, (-1, self.hidden_size))
        output = self.output_dense(self.activation(self.intermediate(tokens)))
        return ops.reshape(output, ops.shape(x))


class TransformerLayer(keras.layers.Layer):
    """A post-LayerNorm transformer block (BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT).

    `x = norm(x + dropout(attention(x)))`, then `x = norm(x + dropout(ffn(x)))`.
    """

    def __init__(
        self,
        hidden_size,
        num_heads,
        intermediate_size,
        activation,
        layer_norm_eps,
        dropout,
        attention_dropout,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.attention = SelfAttention(
            hidden_size, num_heads, attention_dropout, initializer_range, name="attention", dtype=self.dtype_policy
        )
        self.attention_norm = _layer_norm(layer_norm_eps, "attention_norm", self.dtype_policy)
        self.ffn = FeedForward(
            hidden_size, intermediate_size, activation, initializer_range, name="ffn", dtype=self.dtype_policy
        )
        self.output_norm = _layer_norm(layer_norm_eps, "output_norm", self.dtype_policy)
        self.dropout = Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        shape = (None, None, self.hidden_size)
        for sublayer in (self.attention, self.attention_norm, self.ffn, self.output_norm):
            sublayer.build(shape)
        self.built = True

    def call(self, x, bias, training=None, prefix=None):
        h = self.dropout(self.attention(x, bias, training=training, prefix=prefix), training=training)
        x = add_and_norm(self.attention_norm, h, x, training)
        return add_and_norm(self.output_norm, self.dropout(self.ffn(x), training=training), x, training)


def add_and_norm(norm, h, residual, training=None):
    """`norm(residual + h)`: a sub-block's residual connection and LayerNorm.

    A norm that `takes_residual` (a `tfft.peft` wrapper holding a bottleneck adapter) is given
    the sub-block's output `h` and its input `residual` apart, which is where adapters sit.
    """
    if getattr(norm, "takes_residual", False):
        return norm(h, residual=residual, training=training)
    return norm(residual + h)


class Pooler(keras.layers.Layer):
    """Dense + tanh on the first token, as in BERT's pretraining pooler."""

    def __init__(self, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.dense = _dense(hidden_size, initializer_range, "dense", self.dtype_policy, activation="tanh")

    def build(self, input_shape=None):
        self.dense.build((None, self.hidden_size))
        self.built = True

    def call(self, sequence_output):
        return self.dense(sequence_output[:, 0])


class MaskedLMHead(keras.layers.Layer):
    """Dense -> activation -> LayerNorm -> logits over the vocabulary.

    The output projection is the word-embedding matrix, passed in at call time so it stays
    tied (as in every checkpoint tfft loads) without this layer owning a second reference,
    plus a per-token bias.
    """

    def __init__(
        self, vocab_size, hidden_size, embedding_size, activation, layer_norm_eps, initializer_range=0.02, **kwargs
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        self.activation = get_activation(activation)
        self.dense = _dense(embedding_size, initializer_range, "dense", self.dtype_policy)
        self.norm = _layer_norm(layer_norm_eps, "norm", self.dtype_policy)

    def build(self, input_shape=None):
        self.dense.build((None, None, self.hidden_size))
        self.norm.build((None, None, self.embedding_size))
        self.bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="bias")
        self.built = True

    def call(self, sequence_output, word_embeddings):
        x = self.norm(self.activation(self.dense(sequence_output)))
        logits = ops.matmul(x, ops.transpose(ops.cast(word_embeddings, x.dtype)))
        return logits + ops.cast(self.bias, x.dtype)
