"""What mechlib knows about a model besides its weights, kept in one place.

TransformerLens's ``model.cfg`` says what a model *is* (its shape, its attention
direction). What mechlib learned when it built, trained or loaded the model -- the recipe
it was built from, its training log and snapshots, the training step of a checkpoint,
whether its unembedding was trained -- is one :class:`ModelInfo`, attached to the model
once under the attribute ``mechlib_info`` and read with :func:`model_info`. Being an
attribute of the model, it follows the model through ``.to(device)``, ``copy.deepcopy``
and pickling.

The bundled model's recipe and training log are shown in Chapter 5 (The Circuit Forms) and
Chapter 8 (TransformerLens Vocabulary); the LM-head flag in the appendix, Composition in a
Real Transformer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from mechlib.models.bundled import InductionConfig, RelayConfig

#: the one attribute mechlib sets on a model: its :class:`ModelInfo`
INFO_ATTRIBUTE = "mechlib_info"


@dataclass
class ModelInfo:
    """mechlib's record of one model.

    * ``config``: the recipe (:class:`mechlib.InductionConfig`, :class:`mechlib.RelayConfig`) of a model mechlib built,
      trained or loaded from its own checkpoint; None for any other model.
    * ``training_log``: ``(step, loss)`` for every training step (:func:`mechlib.train_induction_model`).
    * ``snapshots``: ``{step: state_dict}`` kept during training (``save_steps``).
    * ``step``: the training step of a checkpoint loaded with ``load_model(..., step=N)``, else None.
    * ``lm_head_trained``: whether the unembedding was trained, so that logits mean anything
      (read it with :func:`lm_head_trained`).
    """

    config: InductionConfig | RelayConfig | None = None
    training_log: list[tuple[int, float]] = field(default_factory=list)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    step: int | None = None
    lm_head_trained: bool = True


def model_info(model: Any) -> ModelInfo:
    """``model``'s :class:`ModelInfo`; a model mechlib has not seen gets a fresh default one, attached."""
    info = getattr(model, INFO_ATTRIBUTE, None)
    if not isinstance(info, ModelInfo):
        info = ModelInfo()
        setattr(model, INFO_ATTRIBUTE, info)
    return info


def lm_head_trained(model: Any) -> bool:
    """Whether ``model``'s logits mean anything: False when its unembedding was never trained.

    :func:`mechlib.load_model` records this in every model's :class:`ModelInfo`. A model
    mechlib built or trained itself, or one it did not load, counts as trained. A Hugging
    Face folder that holds only the base model (MiniLM-L6 holds a BERT encoder without its
    masked-LM head) gets a head that TransformerLens fills with random weights: its logits
    are noise, and every mechlib function that reads logits refuses such a model. Shown in
    the appendix, Composition in a Real Transformer.
    """
    info = getattr(model, INFO_ATTRIBUTE, None)
    return info.lm_head_trained if isinstance(info, ModelInfo) else True


def is_causal(model: Any) -> bool:
    """Whether each position attends only to itself and earlier positions (a left-to-right model).

    False for an encoder such as BERT or MiniLM (``cfg.attention_dir == "bidirectional"``),
    whose heads also attend to later positions, so that a next-token loss does not apply.
    """
    return getattr(model.cfg, "attention_dir", "causal") != "bidirectional"


def check_next_token_model(model: Any, what: str) -> None:
    """Raise unless ``model``'s logits are next-token predictions: a trained unembedding, causal attention.

    ``what`` names the caller's result in the message (e.g. "path_ablation_losses").
    """
    if not lm_head_trained(model):
        raise ValueError(
            f"{what} reads the model's logits, but this model's unembedding is not trained "
            "(its folder holds no language-model head, so TransformerLens filled one with random "
            "weights): its logits are noise. Use what does not read logits -- weights "
            "(composition_scores, qk_circuit, ov_circuit) and attention (attention_patterns, "
            "prev_token_scores, path_ablation_hooks with attention_patterns)"
        )
    if not is_causal(model):
        raise ValueError(
            f"{what} measures next-token predictions, which assume a left-to-right (causal) model; "
            "this model's attention is bidirectional (every position sees the whole sequence, "
            "the next token included), so a next-token loss does not measure anything"
        )
