"""Checkpoint files of `BackupAndResume` and `BestCheckpoint`: the whole model, or with PEFT
adapters only the part that trains.

With adapters, the base model's weights never change during `fit`, so a backup or best
checkpoint holds only the variables the adapters own (and the dropout seeds) and the optimizer's
state: megabytes instead of the whole encoder.
"""

import h5py
import keras
import numpy as np

_MARK = "tfft_adapter_part"


def _adapter_part(model):
    """The model variables a PEFT run changes, or None for a model without adapters."""
    adapters = getattr(model, "_adapters", None)
    if adapters is None or not adapters.configs:
        return None
    frozen = {id(v) for v in adapters.frozen_variables()}
    return [v for v in model.variables if id(v) not in frozen]


def save_weights(model, path):
    """Writes `model.save_weights(path)`, or with adapters only their part and the optimizer state."""
    variables = _adapter_part(model)
    if variables is None:
        model.save_weights(path, overwrite=True)
        return
    optimizer = model.optimizer.variables if model.optimizer is not None and model.optimizer.built else []
    with h5py.File(path, "w") as f:
        f.attrs[_MARK] = 1
        for group, values in (("model", variables), ("optimizer", optimizer)):
            g = f.create_group(group)
            for i, variable in enumerate(values):
                data = g.create_dataset(str(i), data=keras.ops.convert_to_numpy(variable))
                data.attrs["path"] = variable.path


def load_weights(model, path, optimizer=True):
    """Reads what `save_weights` wrote; `optimizer=False` leaves the optimizer state as it is."""
    with h5py.File(path, "r") as f:
        if _MARK not in f.attrs:
            if optimizer:
                model.load_weights(path)
            else:
                state = [v.numpy() for v in model.optimizer.variables] if model.optimizer is not None else []
                model.load_weights(path)
                for variable, value in zip(model.optimizer.variables if state else [], state):
                    variable.assign(value)
            return
        groups = [("model", _adapter_part(model) or [])]
        if optimizer and model.optimizer is not None:
            groups.append(("optimizer", model.optimizer.variables))
        for group, variables in groups:
            stored = f[group]
            if len(stored) != len(variables):
                raise ValueError(f"{path}: holds {len(stored)} {group} variables, this model has {len(variables)}")
            for i, variable in enumerate(variables):
                data = stored[str(i)]
                if data.shape != tuple(variable.shape):
                    raise ValueError(f"{path}: variable {data.attrs['path']} has shape {data.shape}, "
                                     f"this model's {variable.path} has {tuple(variable.shape)}")
                variable.assign(np.asarray(data))
