"""The NLU model lifecycle: train -> evaluate -> versioned artifact -> publish -> hot switch.

Public API (import from the submodules): ``training.train_model``, ``training.evaluate_model``,
``artifacts.read_artifact``/``load_engine``, ``evaluation.EvaluationReport``,
``registry.DirectoryRegistry``/``NatsRegistry``, ``manager.ModelManager``,
``settings.NLUSettings``/``open_engine``.
"""
