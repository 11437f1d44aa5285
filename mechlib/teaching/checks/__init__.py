"""One module of checks per exercise notebook; every ``check_*`` function is exported here.

An exercise notebook calls ``checks.check_<function>(<function>)`` after the learner's
code (``from mechlib.teaching import checks``).
"""
from mechlib.teaching.checks.circuit_forms import check_formation_step, check_onset_order
from mechlib.teaching.checks.combinatorial_richness import (
    check_count_chains,
    check_count_pairs,
    check_count_paths,
    check_enumerate_pairs,
)
from mechlib.teaching.checks.k_composition import (
    check_all_composition_scores,
    check_k_composition_score,
    check_remove_sender_from_keys,
)
from mechlib.teaching.checks.q_composition import (
    check_q_composition_score,
    check_remove_from_input,
    check_sender_qk,
)
from mechlib.teaching.checks.real_transformer import (
    check_pattern_without_sender_in_keys,
    check_prev_token_head,
    check_strongest_receivers,
)
from mechlib.teaching.checks.transformerlens_vocabulary import (
    check_attention_pattern,
    check_capture_activation,
    check_get_weight,
    check_head_outputs,
)
from mechlib.teaching.checks.two_layer_expansion import (
    check_direct_path_logits,
    check_expanded_logits,
    check_single_head_logits,
    check_virtual_head_logits,
)
from mechlib.teaching.checks.v_composition import (
    check_composed_ov,
    check_composition_score,
    check_numerical_rank,
    check_ov_matrix,
    check_random_baseline,
)
from mechlib.teaching.checks.virtual_attention_heads import (
    check_ablated_repeat_loss,
    check_induction_score,
    check_mean_ablation_hook,
    check_prev_token_score,
    check_zero_ablation_hook,
)

__all__ = [
    "check_count_pairs",
    "check_enumerate_pairs",
    "check_count_chains",
    "check_count_paths",
    "check_k_composition_score",
    "check_all_composition_scores",
    "check_remove_sender_from_keys",
    "check_q_composition_score",
    "check_sender_qk",
    "check_remove_from_input",
    "check_get_weight",
    "check_attention_pattern",
    "check_capture_activation",
    "check_head_outputs",
    "check_direct_path_logits",
    "check_single_head_logits",
    "check_virtual_head_logits",
    "check_expanded_logits",
    "check_ov_matrix",
    "check_composed_ov",
    "check_numerical_rank",
    "check_composition_score",
    "check_random_baseline",
    "check_prev_token_score",
    "check_induction_score",
    "check_zero_ablation_hook",
    "check_mean_ablation_hook",
    "check_ablated_repeat_loss",
    "check_formation_step",
    "check_onset_order",
    "check_prev_token_head",
    "check_strongest_receivers",
    "check_pattern_without_sender_in_keys",
]
