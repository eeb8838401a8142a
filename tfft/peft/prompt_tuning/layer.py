"""`PromptEmbedding`: prompt tuning's soft prompts."""

from tfft.peft.virtual_tokens import VirtualTokenModule


class PromptEmbedding(VirtualTokenModule):
    """peft's `PromptEmbedding`: the prompts [n, token_dim] themselves, trained as they are."""

    def __init__(self, config, **kwargs):
        super().__init__(config.num_virtual_tokens, config.token_dim, name="prompt_embedding", **kwargs)
