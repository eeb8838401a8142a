"""tfft's transformer encoders. `Encoder.from_pretrained` picks the class from config.json."""

from tfft.encoders.albert import AlbertEncoder
from tfft.encoders.bert import BertEncoder
from tfft.encoders.config import EncoderConfig
from tfft.encoders.distilbert import DistilBertEncoder
from tfft.encoders.electra import ElectraEncoder
from tfft.encoders.encoder import Encoder, LoadingReport
from tfft.encoders.roberta import RobertaEncoder
from tfft.encoders.xlm_roberta import XLMRobertaEncoder

__all__ = [
    "AlbertEncoder",
    "BertEncoder",
    "DistilBertEncoder",
    "ElectraEncoder",
    "Encoder",
    "EncoderConfig",
    "LoadingReport",
    "RobertaEncoder",
    "XLMRobertaEncoder",
]
