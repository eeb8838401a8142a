"""BERT and every `bert` model_type checkpoint (BERT cased/uncased/Chinese, MiniLM, ...)."""

from tfft.encoders.encoder import (
    Encoder,
    bert_layer_weights,
    dense_weights,
    embedding_weights,
    norm_weights,
    register_encoder,
)
from tfft.encoders.layers import Embeddings, MaskedLMHead, TransformerLayer


@register_encoder
class BertEncoder(Encoder):
    """BERT: post-LayerNorm blocks, absolute positions, token types, tanh pooler."""

    model_types = ("bert",)
    base_prefix = "bert"
    lm_head_prefix = "cls.predictions."
    tied_aliases = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
    hf_model_class = "BertModel"
    hf_masked_lm_class = "BertForMaskedLM"
    hf_sequence_classification_class = "BertForSequenceClassification"  # bert.pooler, then classifier
    position_ids = "absolute"
    lm_head_activation = None  # None: the config's hidden_act.

    def build_layers(self):
        self.embeddings = self.build_embeddings()
        self.transformer_layers = [self.build_transformer_layer(f"layer_{i}") for i in range(self.config.num_layers)]

    def build_embeddings(self, **kwargs):
        c = self.config
        return Embeddings(
            vocab_size=c.vocab_size,
            hidden_size=c.hidden_size,
            max_position_embeddings=c.max_position_embeddings,
            type_vocab_size=c.type_vocab_size,
            layer_norm_eps=c.layer_norm_eps,
            dropout=c.hidden_dropout,
            initializer_range=c.initializer_range,
            embedding_size=c.embedding_size,
            position_ids=self.position_ids,
            pad_token_id=c.pad_token_id,
            name="embeddings",
            dtype=self.dtype_policy,
            **kwargs,
        )

    def build_transformer_layer(self, name):
        c = self.config
        return TransformerLayer(
            hidden_size=c.hidden_size,
            num_heads=c.num_heads,
            intermediate_size=c.intermediate_size,
            activation=c.hidden_act,
            layer_norm_eps=c.layer_norm_eps,
            dropout=c.hidden_dropout,
            attention_dropout=c.attention_dropout,
            initializer_range=c.initializer_range,
            name=name,
            dtype=self.dtype_policy,
        )

    def layer_sequence(self):
        return self.transformer_layers

    def build_lm_head(self):
        c = self.config
        return MaskedLMHead(
            vocab_size=c.vocab_size,
            hidden_size=c.hidden_size,
            embedding_size=c.embedding_size or c.hidden_size,
            activation=self.lm_head_activation or c.hidden_act,
            layer_norm_eps=c.layer_norm_eps,
            initializer_range=c.initializer_range,
            name="lm_head",
            dtype=self.dtype_policy,
        )

    def embedding_weight_map(self):
        e = self.embeddings
        table = {
            **embedding_weights("embeddings.word_embeddings", e.word_embeddings),
            **embedding_weights("embeddings.position_embeddings", e.position_embeddings),
            **norm_weights("embeddings.LayerNorm", e.norm),
        }
        if e.token_type_embeddings is not None:
            table.update(embedding_weights("embeddings.token_type_embeddings", e.token_type_embeddings))
        return table

    def weight_map(self):
        table = self.embedding_weight_map()
        for i, layer in enumerate(self.transformer_layers):
            table.update(bert_layer_weights(f"encoder.layer.{i}", layer))
        if self.pooler is not None:
            table.update(dense_weights("pooler.dense", self.pooler.dense))
        if self.lm_head is not None:
            table.update(self.lm_head_weight_map())
        return table

    def lm_head_weight_map(self):
        head = self.lm_head
        return {
            **dense_weights("cls.predictions.transform.dense", head.dense),
            **norm_weights("cls.predictions.transform.LayerNorm", head.norm),
            "cls.predictions.bias": (head.bias, False),
        }
