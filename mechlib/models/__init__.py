"""Models: building, training, saving and loading them.

* :mod:`~mechlib.models.load`: :func:`load_model`, every model by name, ready for analysis;
* :mod:`~mechlib.models.bundled`: the recipes of ``induction-2l`` and ``relay-2l`` and building a model from one;
* :mod:`~mechlib.models.training`: the training loop;
* :mod:`~mechlib.models.checkpoints`: checkpoint files and the shipped training snapshots;
* :mod:`~mechlib.models.hub`: Hugging Face folders, MiniLM-L6 and the hub;
* :mod:`~mechlib.models.info`: what mechlib records about a model (:class:`ModelInfo`).
"""
from mechlib.models.bundled import (BUNDLED_MODEL, RELAY_MODEL, InductionConfig, RelayConfig, build_model,
                                    random_model, sinusoidal_positions)
from mechlib.models.checkpoints import (
    CHECKPOINT_STEPS,
    bundled_checkpoint,
    bundled_snapshots,
    checkpoint_steps,
    load_checkpoint,
    save_model,
    save_snapshots,
)
from mechlib.models.hub import MINILM, MINILM_PACKAGE, ModelUnavailableError, minilm_folder
from mechlib.models.info import ModelInfo, check_next_token_model, is_causal, lm_head_trained, model_info
from mechlib.models.load import load_model
from mechlib.models.training import train_induction_model, train_relay_model

__all__ = [
    "BUNDLED_MODEL", "CHECKPOINT_STEPS", "MINILM", "MINILM_PACKAGE", "RELAY_MODEL", "InductionConfig", "ModelInfo",
    "RelayConfig", "train_relay_model",
    "ModelUnavailableError", "build_model", "bundled_checkpoint", "bundled_snapshots", "check_next_token_model",
    "checkpoint_steps", "is_causal", "lm_head_trained", "load_checkpoint", "load_model", "minilm_folder",
    "model_info", "random_model", "save_model", "save_snapshots", "sinusoidal_positions", "train_induction_model",
]
