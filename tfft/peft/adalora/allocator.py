"""AdaLoRA's rank allocation during `fit`: peft's budget schedule and `update_and_allocate`."""

import dataclasses
import logging

import keras
import tensorflow as tf
from keras import ops

logger = logging.getLogger("tfft")


def budget_schedule(config, step, init_budget, target_budget):
    """peft's `budget_schedule`: the total rank allowed at optimizer step `step` (counted from 0)
    and whether to mask to it then. Full rank up to `tinit`, then a cubic fall to the target at
    `total_step - tfinal`, applied every `deltaT` steps."""
    tinit, tfinal, total = config.tinit, config.tfinal, config.total_step
    if step <= tinit:
        return init_budget, False
    if step > total - tfinal:
        return target_budget, True
    remaining = 1 - (step - tinit) / (total - tfinal - tinit)
    return int((init_budget - target_budget) * remaining**3 + target_budget), step % config.deltaT == 0


class AdaLoraCallback(keras.callbacks.Callback):
    """AdaLoRA's rank allocation after every optimizer step, as peft's
    `update_and_allocate(global_step)` (the importance EMAs are updated in the train step).

    `TaskModel.fit` adds one, last, for an AdaLoRA adapter (pass one in `callbacks` to place it
    yourself). The global step counts optimizer updates from 0, so a micro-batch that only
    accumulates a gradient, or a step that mixed float16 skips, is no step. In the budgeting
    phase it masks, every `deltaT` steps, the singular values whose triplet score is at most the
    k-th smallest of all the adapter's (k = initial budget - budget: zeroing them in E, as peft);
    at step `total_step - tfinal` it masks to the target budget, freezes that rank pattern and
    clears the importance; after that it applies the pattern at every step. At the end of `fit` the
    pattern goes into the adapter's config (`rank_pattern`, which `save_adapter` writes) and the
    final rank of each module is logged.
    """

    def __init__(self, adapter_name="default"):
        super().__init__()
        self.adapter_name = adapter_name

    def on_train_begin(self, logs=None):
        from tfft.peft.adalora.layer import AdaLoraModule
        from tfft.peft.model import adapters_of

        adapters = adapters_of(self.model)
        if adapters.active != self.adapter_name or not adapters.enabled or adapters.merged:
            raise ValueError(f"AdaLoraCallback({self.adapter_name!r}): that adapter must be the active one, "
                             "enabled and not merged, during fit")
        self.config = adapters.configs[self.adapter_name]
        self.modules = {path: m for path, m in adapters.modules_of(self.adapter_name).items()
                        if isinstance(m, AdaLoraModule)}
        self.init_budget = self.config.init_r * len(self.modules)
        self.target_budget = self.config.target_r * len(self.modules)
        self._keep_top = tf.function(self._keep_top_fn)
        self._apply_pattern = tf.function(self._apply_pattern_fn)
        self._step = self._updates() - 1  # the last step allocated for

    def _updates(self):
        return int(ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        step = self._updates() - 1
        if step != self._step:
            previous, self._step = self._step, step
            self.update_and_allocate(step, previous)

    def update_and_allocate(self, step, previous):
        """peft's allocation after step `step`; `previous` is the step allocated for before it
        (several steps apart with `steps_per_execution`)."""
        final = self.config.total_step - self.config.tfinal
        if step < final:
            budget, mask = budget_schedule(self.config, step, self.init_budget, self.target_budget)
            if mask:
                self.mask_to_budget(budget)
        elif previous < final:
            self.mask_to_budget(self.target_budget)
            for module in self.modules.values():
                module.reset_importance()
        else:
            self._apply_pattern()

    def mask_to_budget(self, budget):
        k = self.init_budget - budget
        if k > 0:  # target_r == init_r: nothing to mask
            self._keep_top(tf.constant(k))

    def _keep_top_fn(self, k):
        modules = list(self.modules.values())
        scores = [m.triplet_scores() for m in modules]
        threshold = ops.sort(ops.concatenate(scores))[k - 1]  # torch.kthvalue(scores, k)
        for module, score in zip(modules, scores):
            module.keep(ops.logical_not(score <= threshold))

    def _apply_pattern_fn(self):
        for module in self.modules.values():
            module.keep(module.rank_mask > 0)

    def on_train_end(self, logs=None):
        from tfft.peft.model import adapters_of

        adapters = adapters_of(self.model)
        config = adapters.configs[self.adapter_name]
        pattern = {f"{path}.lora_E": m.kept().tolist() for path, m in self.modules.items()}
        if config.rank_pattern is not None or not all(all(kept) for kept in pattern.values()):
            adapters.configs[self.adapter_name] = dataclasses.replace(config, rank_pattern=pattern)
        ranks = {path: sum(kept) for path, kept in zip(self.modules, pattern.values())}
        width = max(map(len, ranks), default=0)
        lines = [f"  {path:<{width}}  {rank:>3} / {config.init_r}" for path, rank in ranks.items()]
        logger.info("AdaLoRA ranks of adapter %r: %d in all (target %d = target_r %d x %d modules)\n%s",
                    self.adapter_name, sum(ranks.values()), self.target_budget, config.target_r, len(ranks),
                    "\n".join(lines))
