"""Adapter files: Hugging Face PEFT's layout, `adapter_config.json` + `adapter_model.safetensors`.

Tensors are named `base_model.model.<module path>.<suffix>` with peft's suffixes and layouts
(`lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]`, `ia3_l`, the `modules_to_save` copies as
`<path>.weight` / `.bias`), so peft's `PeftModel.from_pretrained` reads what tfft writes and tfft
reads what peft writes. Every expected tensor must be in the file and every tensor in the file
must belong to the model: a file for another architecture or with another prefix is an error
naming the tensor, never a silent partial load.
"""

import json
from pathlib import Path

from tfft.errors import CheckpointError
from tfft.peft.config import config_from_peft_json, peft_json_fields
from tfft.peft.methods import METHODS, method_for_peft_type

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PREFIX = "base_model.model."
PROMPT_LEARNING_PREFIX = "base_model."  # peft's prompt-learning PeftModel holds the transformers model there
# Extra copies peft writes for `modules_to_save` when bias="all" (its "bias" name filter catches
# them); the same values are also saved under the plain names.
_PEFT_DUPLICATES = (".modules_to_save.", ".original_module.")


def tensor_name(adapters, name, path, module, suffix):
    """The file's name of a module's tensor `suffix`."""
    if module.top_level_tensors:
        return suffix
    prefix = PROMPT_LEARNING_PREFIX if adapters.configs[name].is_prompt_learning else PREFIX
    return f"{prefix}{module.file_path or path}.{suffix}"


def _file_tensors(adapters, name):
    """`(file tensor name, path, module, suffix, array)` of every tensor of adapter `name`."""
    for path, wrapper in adapters.wrappers.items():
        module = wrapper.adapters.get(name)
        if module is not None:
            for suffix, array in module.hf_tensors(wrapper.base_layer).items():
                yield tensor_name(adapters, name, path, module, suffix), path, module, suffix, array


def adapter_tensors(adapters, name):
    """`{file tensor name: (path, module, suffix)}` of adapter `name`."""
    return {key: (path, module, suffix) for key, path, module, suffix, _ in _file_tensors(adapters, name)}


def save_adapter(adapters, directory, name, base_model_name_or_path=None):
    from tfft.weights import save_state_dict, write_json_atomic

    config = adapters.configs[name]
    directory = Path(directory)
    tensors = {key: array for key, *_, array in _file_tensors(adapters, name)}
    hf_config = {
        "peft_type": config.peft_type,
        "task_type": adapters.model.peft_task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "revision": None,
        **peft_json_fields(config),
        # What a file holds is trained (prompt learning: the prompts with any reparameterization folded in).
        "inference_mode": True,
    }
    directory.mkdir(parents=True, exist_ok=True)
    save_state_dict(tensors, directory / WEIGHTS_NAME)
    write_json_atomic(hf_config, directory / CONFIG_NAME)
    return directory


def read_adapter_config(directory):
    """The method config an adapter directory holds, and its raw adapter_config.json."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"no adapter at {directory}: {CONFIG_NAME} not found")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from None
    peft_type = values.get("peft_type")
    method = method_for_peft_type(peft_type, values.get("method"))
    if method is None:
        supported = ", ".join(dict.fromkeys(m.config_class.peft_type for m in METHODS.values()))
        raise CheckpointError(f"{path}: peft_type {peft_type!r} is not supported by tfft (supported: {supported})")
    try:
        config = config_from_peft_json(method.config_class, values, str(path))
    except TypeError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return config, values


def load_adapter_tensors(adapters, directory, name):
    """Assigns the file's tensors to adapter `name`, which `add` has just created from the same config."""
    from tfft.weights import load_safetensors

    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"no adapter weights at {directory}: {WEIGHTS_NAME} not found")
    state = load_safetensors(path)
    expected = adapter_tensors(adapters, name)
    unexpected = sorted(key for key in state if key not in expected and not any(d in key for d in _PEFT_DUPLICATES))
    missing = sorted(key for key in expected if key not in state)
    if unexpected or missing:
        example = next(iter(expected), "")
        problems = []
        if missing:
            problems.append(f"{len(missing)} tensors this model needs are missing ({', '.join(missing[:3])}, ...)")
        if unexpected:
            problems.append(f"{len(unexpected)} tensors do not belong to this model ({', '.join(unexpected[:3])}, ...)")
        raise CheckpointError(f"{path}: {'; '.join(problems)}. Tensor names here look like {example!r}")
    grouped = {}
    for key, (module_path, module, suffix) in expected.items():
        grouped.setdefault(module_path, (module, {}))[1][suffix] = state[key]
    for module_path, (module, tensors) in grouped.items():
        module.assign_hf(adapters.wrappers[module_path].base_layer, tensors,
                         tensor_name(adapters, name, module_path, module, ""))
