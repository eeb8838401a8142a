"""ALBERT: factorized embeddings and transformer blocks shared across depth."""

from tfft.encoders.bert import BertEncoder
from tfft.encoders.encoder import dense_weights, norm_weights, register_encoder


@register_encoder
class AlbertEncoder(BertEncoder):
    """ALBERT. Embeddings of width `embedding_size` are projected to `hidden_size`;
    `num_hidden_groups` groups of `inner_group_num` blocks are reused over `num_layers` steps,
    so most checkpoints hold a single block that runs at every depth.
    """

    model_types = ("albert",)
    base_prefix = "albert"
    lm_head_prefix = "predictions."
    tied_aliases = ("predictions.decoder.weight", "predictions.decoder.bias")
    hf_model_class = "AlbertModel"
    hf_masked_lm_class = "AlbertForMaskedLM"
    hf_sequence_classification_class = "AlbertForSequenceClassification"
    hf_classifier_dropout_key = "classifier_dropout_prob"
    hf_config_keys = {
        **BertEncoder.hf_config_keys,
        "embedding_size": "embedding_size",
        "num_hidden_groups": "num_hidden_groups",
        "inner_group_num": "inner_group_num",
    }

    def build_layers(self):
        c = self.config
        # HF ALBERT always has `embedding_hidden_mapping_in`, even when the widths match.
        self.embeddings = self.build_embeddings(project=True)
        # Flat list, group-major: block j of group g is at g * inner_group_num + j.
        self.transformer_layers = [
            self.build_transformer_layer(f"group_{g}_layer_{j}")
            for g in range(c.num_hidden_groups)
            for j in range(c.inner_group_num)
        ]

    def group(self, g):
        n = self.config.inner_group_num
        return self.transformer_layers[g * n : (g + 1) * n]

    def layer_sequence(self):
        c = self.config
        steps = []
        for i in range(c.num_layers):
            # Same rounding as transformers' AlbertTransformer.
            steps.extend(self.group(int(i / (c.num_layers / c.num_hidden_groups))))
        return steps

    def embedding_weight_map(self):
        table = super().embedding_weight_map()
        table.update(dense_weights("encoder.embedding_hidden_mapping_in", self.embeddings.projection))
        return table

    def weight_map(self):
        table = self.embedding_weight_map()
        for g in range(self.config.num_hidden_groups):
            for j, layer in enumerate(self.group(g)):
                prefix = f"encoder.albert_layer_groups.{g}.albert_layers.{j}"
                attention = layer.attention
                table.update(
                    {
                        **dense_weights(f"{prefix}.attention.query", attention.query),
                        **dense_weights(f"{prefix}.attention.key", attention.key),
                        **dense_weights(f"{prefix}.attention.value", attention.value),
                        **dense_weights(f"{prefix}.attention.dense", attention.output_dense),
                        **norm_weights(f"{prefix}.attention.LayerNorm", layer.attention_norm),
                        **dense_weights(f"{prefix}.ffn", layer.ffn.intermediate),
                        **dense_weights(f"{prefix}.ffn_output", layer.ffn.output_dense),
                        **norm_weights(f"{prefix}.full_layer_layer_norm", layer.output_norm),
                    }
                )
        if self.pooler is not None:
            table.update(dense_weights("pooler", self.pooler.dense))
        if self.lm_head is not None:
            head = self.lm_head
            table.update(
                {
                    **dense_weights("predictions.dense", head.dense),
                    **norm_weights("predictions.LayerNorm", head.norm),
                    "predictions.bias": (head.bias, False),
                }
            )
        return table
