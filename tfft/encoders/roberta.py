"""RoBERTa: BERT blocks with positions counted from the padding id and a GELU LM head."""

from tfft.encoders.bert import BertEncoder
from tfft.encoders.encoder import dense_weights, norm_weights, register_encoder


@register_encoder
class RobertaEncoder(BertEncoder):
    """RoBERTa. Position ids start at `pad_token_id + 1` and skip pad tokens, as in fairseq."""

    model_types = ("roberta",)
    base_prefix = "roberta"
    lm_head_prefix = "lm_head."
    tied_aliases = ("lm_head.decoder.weight", "lm_head.decoder.bias")
    hf_model_class = "RobertaModel"
    hf_masked_lm_class = "RobertaForMaskedLM"
    # RobertaClassificationHead: dense + tanh on the first token, then out_proj; tfft's pooler
    # and classifier compute the same. The bare model's pooler is not used.
    hf_sequence_classification_class = "RobertaForSequenceClassification"
    hf_classifier_name = "classifier.out_proj"
    hf_head_pooler_name = "classifier.dense"
    position_ids = "padding_offset"
    lm_head_activation = "gelu"  # RobertaLMHead always uses exact GELU.

    def lm_head_weight_map(self):
        head = self.lm_head
        return {
            **dense_weights("lm_head.dense", head.dense),
            **norm_weights("lm_head.layer_norm", head.norm),
            "lm_head.bias": (head.bias, False),
        }
