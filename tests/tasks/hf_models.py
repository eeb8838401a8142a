"""Helpers for the transformers round-trip tests of the task models (they need torch)."""


def perturbed_hf_model(auto_class, config):
    """A random-init transformers model from `config`, every parameter moved by seeded noise: heads
    start at zero bias, and noise makes a tensor-mapping mistake show in the logits."""
    import torch

    model = auto_class.from_config(config, attn_implementation="eager")
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model
