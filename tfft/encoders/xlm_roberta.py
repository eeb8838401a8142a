"""XLM-RoBERTa: the RoBERTa architecture with a multilingual SentencePiece vocabulary."""

from tfft.encoders.encoder import register_encoder
from tfft.encoders.roberta import RobertaEncoder


@register_encoder
class XLMRobertaEncoder(RobertaEncoder):
    """XLM-R. Same blocks and tensor names as RoBERTa under the `roberta.` prefix."""

    model_types = ("xlm-roberta",)
    hf_model_class = "XLMRobertaModel"
    hf_masked_lm_class = "XLMRobertaForMaskedLM"
    hf_sequence_classification_class = "XLMRobertaForSequenceClassification"
