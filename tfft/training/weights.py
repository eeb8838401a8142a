"""Checkpoint files of `BackupAndResume` and `BestCheckpoint`: the whole model, or with PEFT
adapters only the part that trains; with the optimizer's state only where resuming needs it.

With adapters, the base model's weights never change during `fit`, so a backup or best
checkpoint holds only the variables the adapters own (and the dropout seeds) and the optimizer's
state: megabytes instead of the whole encoder. A best checkpoint (`optimizer=False`) holds no
optimizer state: AdamW's two moments would triple its size, and restoring the best weights
leaves the optimizer as trained anyway.
"""

import contextlib

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


@contextlib.contextmanager
def without_optimizer(model):
    """`model` with its optimizer detached, so Keras saves (or loads) the model's variables only."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        yield model
        return
    model.optimizer = None
    try:
        yield model
    finally:
        model.optimizer = optimizer


def save_weights(model, path, optimizer=True):
    """Writes `model.save_weights(path)`, or with adapters only their part; with the optimizer's
    state unless `optimizer=False`."""
    variables = _adapter_part(model)
    if variables is None:
        with contextlib.nullcontext() if optimizer else without_optimizer(model):
            model.save_weights(path, overwrite=True)
        return
    built = optimizer and model.optimizer is not None and model.optimizer.built
    optimizer = model.optimizer.variables if built else []
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
            with contextlib.nullcontext() if optimizer else without_optimizer(model):
                model.load_weights(path)
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
