"""Imports `transformers` quietly.

tfft uses transformers for configs and tokenizers only, so its "PyTorch was not found" notice
is noise here. It is silenced during the import unless the user chose a verbosity themselves.
"""

import os
import sys


def import_transformers():
    if "transformers" in sys.modules:
        return sys.modules["transformers"]
    user_choice = "TRANSFORMERS_VERBOSITY" in os.environ
    if not user_choice:
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    try:
        import transformers
    finally:
        if not user_choice:
            del os.environ["TRANSFORMERS_VERBOSITY"]
    if not user_choice:
        transformers.logging.set_verbosity_warning()
    return transformers
