"""Tasks: an encoder plus a head, with the data, metrics, prediction and export that go with it.

Each task is a module (or folder) here with a `Task` subclass (`tfft.tasks.base`); a run config
names it with `task: <name>`.
"""

from tfft.errors import ConfigError
from tfft.tasks.base import Task
from tfft.tasks.question_answering.model import QuestionAnswerer
from tfft.tasks.question_answering.task import QuestionAnswering
from tfft.tasks.sequence_classifier import SequenceClassifier
from tfft.tasks.text_classification import TextClassification
from tfft.tasks.token_classification.model import TokenClassifier
from tfft.tasks.token_classification.task import TokenClassification

TASKS = {task.name: task for task in (TextClassification, TokenClassification, QuestionAnswering)}


def get_task(name: str, source: str = "config") -> type[Task]:
    """The `Task` class a config's `task:` names; a ConfigError listing the known tasks otherwise."""
    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(name, TASKS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{source}: unknown task {name!r}{hint}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["QuestionAnswerer", "QuestionAnswering", "SequenceClassifier", "TASKS", "Task", "TextClassification",
           "TokenClassification", "TokenClassifier", "get_task"]
