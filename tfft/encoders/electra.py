"""ELECTRA discriminator: BERT blocks, optional embedding projection, no pooler."""

from tfft.encoders.bert import BertEncoder
from tfft.encoders.encoder import dense_weights, register_encoder


@register_encoder
class ElectraEncoder(BertEncoder):
    """ELECTRA (discriminator). Small models embed at `embedding_size` and project up.

    The checkpoint has no pooler, so `pooled_output` is the first token's hidden state.
    The discriminator's replaced-token head is not part of the encoder and is reported unused.
    """

    model_types = ("electra",)
    base_prefix = "electra"
    lm_head_prefix = ""
    tied_aliases = ()
    has_pooler = False
    hf_model_class = "ElectraModel"
    hf_masked_lm_class = ""  # ELECTRA's masked-LM head belongs to its generator, a separate model
    # ElectraClassificationHead applies GELU after its dense layer where tfft's pooler applies tanh.
    hf_sequence_classification_class = ""
    hf_config_keys = {**BertEncoder.hf_config_keys, "embedding_size": "embedding_size"}

    def build_lm_head(self):
        raise ValueError(
            "the ELECTRA discriminator has no masked-LM head (ELECTRA's generator is a separate checkpoint); "
            "build it with lm_head=False"
        )

    def embedding_weight_map(self):
        table = super().embedding_weight_map()
        if self.embeddings.projection is not None:
            table.update(dense_weights("embeddings_project", self.embeddings.projection))
        return table
