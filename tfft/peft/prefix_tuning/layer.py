"""`PrefixEncoder`: peft's prefix table, optionally reparameterized by an MLP."""

from keras import ops

from tfft.peft.virtual_tokens import VirtualTokenModule, torch_dense


class PrefixEncoder(VirtualTokenModule):
    """The prefixes of every layer: a table [n, num_layers * 2 * hidden] (peft's `prompt_embeddings`),
    or with `prefix_projection` an embedding [n, hidden] through Linear-Tanh-Linear to it.

    A row holds, per layer, its key then its value, each `heads x head_size`: peft views the table
    as [n, layers * 2, heads, head_size] and gives layer l the entries 2l (keys) and 2l + 1 (values).
    """

    def __init__(self, config, **kwargs):
        width = config.num_layers * 2 * config.token_dim
        reparameterized = config.prefix_projection and not config.inference_mode
        zeros = config.init_weights == "zero"
        super().__init__(config.num_virtual_tokens, config.token_dim if reparameterized else width,
                         initializer="zeros" if zeros and not reparameterized else None, name="prefix_encoder",
                         **kwargs)
        self.reparameterized = reparameterized
        self.num_layers = config.num_layers
        self.num_heads = config.num_attention_heads
        self.head_size = config.token_dim // config.num_attention_heads
        if reparameterized:
            hidden = config.encoder_hidden_size
            self.transform_in = torch_dense(hidden, config.token_dim, "transform_0", self.dtype_policy, "tanh")
            self.transform_out = torch_dense(width, hidden, "transform_2", self.dtype_policy, zeros=zeros)

    def table(self, training=False):
        embedding = super().table()
        return self.transform_out(self.transform_in(embedding)) if self.reparameterized else embedding

    def prompts(self, batch, training):
        return None

    def prefixes(self, training):
        shape = (self.num_virtual_tokens, self.num_layers * 2, self.num_heads, self.head_size)
        table = ops.transpose(ops.reshape(self.table(training), shape), (1, 2, 0, 3))  # [layers*2, heads, n, head]
        return [(table[2 * i], table[2 * i + 1]) for i in range(self.num_layers)]
