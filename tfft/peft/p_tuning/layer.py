"""`PromptEncoder`: P-tuning's soft prompts computed by an MLP or a bidirectional LSTM."""

import math

import keras
from keras import ops

from tfft.encoders.layers import Dropout
from tfft.peft.virtual_tokens import VirtualTokenModule, torch_dense


class PromptEncoder(VirtualTokenModule):
    """peft's `PromptEncoder`: an embedding [n, token_dim] through `mlp_head` (Linear-ReLU-Linear-ReLU-
    Linear), or through `lstm_head` (bidirectional) and then Linear-ReLU-Linear, each initialized as
    torch initializes it. With `inference_mode` only the prompts themselves (what the file holds)."""

    def __init__(self, config, **kwargs):
        super().__init__(config.num_virtual_tokens, config.token_dim, name="prompt_encoder", **kwargs)
        self.reparameterized = not config.inference_mode
        if not self.reparameterized:
            return
        hidden, width, dtype = config.encoder_hidden_size, config.token_dim, self.dtype_policy
        self.lstm_head = None
        if config.encoder_reparameterization_type == "LSTM":
            self.lstm_head = BidirectionalLSTM(width, hidden, config.encoder_num_layers, config.encoder_dropout,
                                               dtype=dtype)
            self.mlp_head = [torch_dense(2 * hidden, 2 * hidden, "mlp_head_0", dtype, "relu"),
                             torch_dense(width, 2 * hidden, "mlp_head_2", dtype)]
        else:
            self.mlp_head = [torch_dense(hidden, width, "mlp_head_0", dtype, "relu"),
                             torch_dense(hidden, hidden, "mlp_head_2", dtype, "relu"),
                             torch_dense(width, hidden, "mlp_head_4", dtype)]

    def table(self, training=False):
        x = super().table()
        if not self.reparameterized:
            return x
        if self.lstm_head is not None:
            x = self.lstm_head(x, training=training)
        for dense in self.mlp_head:
            x = dense(x)
        return x


class BidirectionalLSTM(keras.layers.Layer):
    """`torch.nn.LSTM(bidirectional=True)` over one sequence [steps, input_size] -> [steps, 2 * hidden]:
    gates in torch's order (input, forget, cell, output), both of torch's biases, its init (uniform
    in ±1/sqrt(hidden)) and dropout between layers, so P-tuning's LSTM is peft's, parameter for
    parameter. The steps (the virtual tokens) are few and unrolled, which XLA compiles as it is."""

    def __init__(self, input_size, hidden_size, num_layers, dropout=0.0, **kwargs):
        super().__init__(name="lstm_head", **kwargs)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        bound = 1.0 / math.sqrt(hidden_size)
        self.cells = []  # per layer and direction: (kernel, recurrent_kernel, bias_ih, bias_hh), Keras layout
        for layer in range(num_layers):
            size = input_size if layer == 0 else 2 * hidden_size
            for suffix in ("", "_reverse"):
                shapes = {"weight_ih": (size, 4 * hidden_size), "weight_hh": (hidden_size, 4 * hidden_size),
                          "bias_ih": (4 * hidden_size,), "bias_hh": (4 * hidden_size,)}
                self.cells.append(tuple(
                    self.add_weight(shape=shape, name=f"{name}_l{layer}{suffix}",
                                    initializer=keras.initializers.RandomUniform(-bound, bound))
                    for name, shape in shapes.items()))
        self.dropout = Dropout(dropout, dtype=self.dtype_policy) if dropout and num_layers > 1 else None
        self.built = True

    def call(self, x, training=None):
        steps = x.shape[0]
        for layer in range(self.num_layers):
            outputs = []
            for direction, order in enumerate((range(steps), reversed(range(steps)))):
                kernel, recurrent, bias_ih, bias_hh = (ops.cast(w, x.dtype) for w in self.cells[2 * layer + direction])
                gates_in = ops.matmul(x, kernel) + bias_ih + bias_hh
                h = c = ops.zeros((1, self.hidden_size), x.dtype)
                states = [None] * steps
                for t in order:
                    i, f, g, o = ops.split(gates_in[t : t + 1] + ops.matmul(h, recurrent), 4, axis=-1)
                    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
                    h = ops.sigmoid(o) * ops.tanh(c)
                    states[t] = h
                outputs.append(ops.concatenate(states, axis=0))
            x = ops.concatenate(outputs, axis=-1)
            if self.dropout is not None and layer < self.num_layers - 1:
                x = self.dropout(x, training=training)
        return x
