"""Token classification (named-entity recognition): `task: token_classification`.

    >>> from tfft.tasks.token_classification import make_token_dataset, read_token_examples, tag_names
    >>> train = read_token_examples("data/ner-wnut16/train.conll")
    >>> model = tfft.TokenClassifier.from_pretrained(checkpoint, labels=tag_names(train))
    >>> model.fit(make_token_dataset(train, model, batch_size=16, shuffle=True), epochs=10)

Modules: `schemes` (IOB2/IOBES/IO tags, entity extraction), `data` (CoNLL and JSONL readers),
`features` (subword alignment, windows), `metrics` (seqeval-equal entity metrics), `model`
(`TokenClassifier`), `serving` (in-graph entity decoding), `task` (the run's `Task`).
"""

from tfft.tasks.token_classification.data import TokenExamples, read_token_examples
from tfft.tasks.token_classification.metrics import entity_metrics, format_entity_report
from tfft.tasks.token_classification.model import TokenClassifier
from tfft.tasks.token_classification.task import TokenClassification, make_token_dataset, tag_names

__all__ = ["TokenClassification", "TokenClassifier", "TokenExamples", "entity_metrics", "format_entity_report",
           "make_token_dataset", "read_token_examples", "tag_names"]
