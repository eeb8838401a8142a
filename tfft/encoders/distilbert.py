"""DistilBERT: BERT blocks without token types or pooler, and its own tensor names."""

from tfft.encoders.bert import BertEncoder
from tfft.encoders.encoder import dense_weights, embedding_weights, norm_weights, register_encoder

# DistilBERT hard-codes this epsilon in every LayerNorm; its config.json has no key for it.
DISTILBERT_LAYER_NORM_EPS = 1e-12


@register_encoder
class DistilBertEncoder(BertEncoder):
    """DistilBERT. `token_type_ids` are accepted and ignored; `pooled_output` is the first token."""

    model_types = ("distilbert",)
    base_prefix = "distilbert"
    lm_head_prefix = "vocab_"
    tied_aliases = ("vocab_projector.weight",)
    has_pooler = False
    hf_model_class = "DistilBertModel"
    hf_masked_lm_class = "DistilBertForMaskedLM"
    # DistilBertForSequenceClassification's pre_classifier (dense + ReLU) has no tfft pooling.
    hf_sequence_classification_class = ""
    hf_config_keys = {
        "vocab_size": "vocab_size",
        "hidden_size": "dim",
        "num_layers": "n_layers",
        "num_heads": "n_heads",
        "intermediate_size": "hidden_dim",
        "hidden_act": "activation",
        "hidden_dropout": "dropout",
        "attention_dropout": "attention_dropout",
        "max_position_embeddings": "max_position_embeddings",
        "pad_token_id": "pad_token_id",
        "initializer_range": "initializer_range",
    }

    @classmethod
    def config_from_hf(cls, hf_config):
        config = super().config_from_hf(hf_config)
        config.type_vocab_size = 0
        config.layer_norm_eps = DISTILBERT_LAYER_NORM_EPS
        return config

    def weight_map(self):
        e = self.embeddings
        table = {
            **embedding_weights("embeddings.word_embeddings", e.word_embeddings),
            **embedding_weights("embeddings.position_embeddings", e.position_embeddings),
            **norm_weights("embeddings.LayerNorm", e.norm),
        }
        for i, layer in enumerate(self.transformer_layers):
            prefix = f"transformer.layer.{i}"
            attention = layer.attention
            table.update(
                {
                    **dense_weights(f"{prefix}.attention.q_lin", attention.query),
                    **dense_weights(f"{prefix}.attention.k_lin", attention.key),
                    **dense_weights(f"{prefix}.attention.v_lin", attention.value),
                    **dense_weights(f"{prefix}.attention.out_lin", attention.output_dense),
                    **norm_weights(f"{prefix}.sa_layer_norm", layer.attention_norm),
                    **dense_weights(f"{prefix}.ffn.lin1", layer.ffn.intermediate),
                    **dense_weights(f"{prefix}.ffn.lin2", layer.ffn.output_dense),
                    **norm_weights(f"{prefix}.output_layer_norm", layer.output_norm),
                }
            )
        if self.lm_head is not None:
            head = self.lm_head
            table.update(
                {
                    **dense_weights("vocab_transform", head.dense),
                    **norm_weights("vocab_layer_norm", head.norm),
                    "vocab_projector.bias": (head.bias, False),
                }
            )
        return table
