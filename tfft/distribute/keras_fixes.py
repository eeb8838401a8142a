"""Two fixes that make Keras 3's `fit` run under a multi-worker `MultiWorkerMirroredStrategy`.

Keras 3 (3.15 here, keras-team/keras#20585, tensorflow/tensorflow#72388) fails there twice:
`fit` reduces its first input batch with `strategy.reduce("MEAN", batch)` to build the model
symbolically, which the collective strategy rejects for a structure of per-replica values; and
every train step reduces the scalar logs with `strategy.reduce("MEAN", value, axis=0)`, invalid
for a scalar. The build only needs shapes and dtypes, so it gets the dataset's element spec
(which also keeps it from drawing a batch: that started a second pass over the data, so a
seeded shuffle gave epoch 1 another order than without a strategy); a scalar log is averaged
over the replicas of all workers (what single-machine `fit` reports). `apply()` is idempotent.
"""

import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as tf_trainer


def in_multi_worker_mode(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    if iterator is not None and self._distribute_strategy is not None:
        dataset = iterator.data_adapter.get_tf_dataset()
        if isinstance(dataset, tf.data.Dataset):  # specs have the .shape and .dtype the build reads
            data_batch, iterator = dataset.element_spec, None
    return _original_symbolic_build(self, iterator=iterator, data_batch=data_batch)


def _reduce_per_replica(values, strategy, reduction):
    if reduction not in ("auto", "mean") or not in_multi_worker_mode(strategy):
        return _original_reduce(values, strategy, reduction)

    def reduce(value):
        first = value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value
        if first.shape.rank == 0:
            return strategy.reduce("MEAN", value, axis=None)
        return _original_reduce(value, strategy, reduction)

    return tree.map_structure(reduce, values)


_original_symbolic_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
_original_reduce = tf_trainer.reduce_per_replica


def apply():
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = _reduce_per_replica
