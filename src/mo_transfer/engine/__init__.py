"""The evaluation engine every study calls: plan runs -> train through the executor -> evaluate -> baselines ->
intervals -> cache.

A study (``iid``, ``lodo``, ``unseen``) holds only its protocol (which splits, which rows) and its prose; it hands
the engine an :class:`~mo_transfer.engine.run.Experiment` and gets back per-frame errors, baselines and
intervals. Models come through a backend (:mod:`mo_transfer.engine.backend`): MACE (``mace-torch``) or CHGNet.
"""
