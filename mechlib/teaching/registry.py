"""The exercise registry: every exercise, where it lives, what the learner writes, and its check.

``ALL_EXERCISES`` lists them in book order; ``EXERCISES`` groups them by notebook
(``"02_v_composition"`` ...). The exercise notebooks print :meth:`Exercise.header` under
each title, and :mod:`mechlib.teaching.grading` grades submitted notebooks with the
checks listed here. To add an exercise: write its check in the notebook's module of
:mod:`mechlib.teaching.checks` and add one line below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from mechlib.teaching import checks
from mechlib.teaching.checking import CheckResult


@dataclass(frozen=True)
class Exercise:
    """One exercise: where it lives, what the learner writes, how hard, how important, how long."""

    id: str
    notebook: str
    function: str
    title: str
    difficulty: int  # 1 (easy) .. 5
    importance: int  # 1 (optional) .. 5 (core idea)
    minutes: int
    check: Callable[..., CheckResult]
    points: int = 1  # what passing it is worth in mechlib-grade's CSV

    @property
    def column(self) -> str:
        """Column name in the grades CSV."""
        return f"{self.id} {self.function}"

    def header(self) -> str:
        """The ratings line printed under the exercise's title in the notebooks."""
        return (
            f"**Difficulty** {self.difficulty} of 5 · **Importance** {self.importance} of 5 · "
            f"**Time** about {self.minutes} minutes"
        )


_E = Exercise
ALL_EXERCISES: tuple[Exercise, ...] = (
    _E("02.1", "02_v_composition", "ov_matrix", "The OV circuit as one matrix", 1, 4, 5, checks.check_ov_matrix),
    _E("02.2", "02_v_composition", "composed_ov", "The composed OV circuit of a virtual head", 1, 5, 5, checks.check_composed_ov),
    _E("02.3", "02_v_composition", "numerical_rank", "Numerical rank", 2, 3, 10, checks.check_numerical_rank),
    _E("02.4", "02_v_composition", "composition_score", "The composition score of one pair", 1, 5, 5, checks.check_composition_score),
    _E("02.5", "02_v_composition", "random_baseline", "The random baseline", 2, 4, 15, checks.check_random_baseline),
    _E("03.1", "03_k_composition", "k_composition_score", "K-composition score of one pair", 2, 5, 10, checks.check_k_composition_score),
    _E("03.2", "03_k_composition", "all_composition_scores", "All pairs at once, batched", 3, 3, 20, checks.check_all_composition_scores),
    _E("03.3", "03_k_composition", "remove_sender_from_keys", "Path ablation through the keys only", 4, 4, 25, checks.check_remove_sender_from_keys),
    _E("04.1", "04_q_composition", "q_composition_score", "Q-composition score of one pair", 1, 4, 5, checks.check_q_composition_score),
    _E("04.2", "04_q_composition", "sender_qk", "Which side of the bilinear form?", 2, 3, 10, checks.check_sender_qk),
    _E("04.3", "04_q_composition", "remove_from_input", "Path ablation through Q, K or V", 3, 4, 20, checks.check_remove_from_input),
    _E("05.1", "05_virtual_attention_heads", "prev_token_score", "Detecting previous-token heads", 1, 4, 5, checks.check_prev_token_score),
    _E("05.2", "05_virtual_attention_heads", "induction_score", "Detecting induction heads", 2, 5, 10, checks.check_induction_score),
    _E("05.3", "05_virtual_attention_heads", "zero_ablation_hook", "Zero ablation as a hook", 1, 4, 5, checks.check_zero_ablation_hook),
    _E("05.4", "05_virtual_attention_heads", "mean_ablation_hook", "Mean ablation as a hook", 2, 3, 5, checks.check_mean_ablation_hook),
    _E("05.5", "05_virtual_attention_heads", "ablated_repeat_loss", "Breaking the virtual head", 2, 5, 15, checks.check_ablated_repeat_loss),
    _E("05b.1", "05b_circuit_forms", "formation_step", "When does a curve change? Your criterion", 2, 5, 15, checks.check_formation_step),
    _E("05b.2", "05b_circuit_forms", "onset_order", "Before, with or after?", 2, 4, 15, checks.check_onset_order),
    _E("06.1", "06_two_layer_expansion", "direct_path_logits", "The direct path", 1, 4, 5, checks.check_direct_path_logits),
    _E("06.2", "06_two_layer_expansion", "single_head_logits", "Single-head terms", 2, 5, 15, checks.check_single_head_logits),
    _E("06.3", "06_two_layer_expansion", "virtual_head_logits", "Virtual-head terms", 3, 5, 15, checks.check_virtual_head_logits),
    _E("06.4", "06_two_layer_expansion", "expanded_logits", "The expansion adds up to the logits", 2, 4, 10, checks.check_expanded_logits),
    _E("07.1", "07_combinatorial_richness", "count_pairs", "Counting virtual heads", 1, 4, 5, checks.check_count_pairs),
    _E("07.2", "07_combinatorial_richness", "enumerate_pairs", "Listing virtual heads", 1, 3, 5, checks.check_enumerate_pairs),
    _E("07.3", "07_combinatorial_richness", "count_chains", "Longer chains", 2, 3, 10, checks.check_count_chains),
    _E("07.4", "07_combinatorial_richness", "count_paths", "Every path of the expansion", 2, 3, 10, checks.check_count_paths),
    _E("08.1", "08_transformerlens_vocabulary", "get_weight", "Weights by name", 1, 3, 5, checks.check_get_weight),
    _E("08.2", "08_transformerlens_vocabulary", "attention_pattern", "Reading the cache", 1, 4, 5, checks.check_attention_pattern),
    _E("08.3", "08_transformerlens_vocabulary", "capture_activation", "A hook that records", 2, 4, 10, checks.check_capture_activation),
    _E("08.4", "08_transformerlens_vocabulary", "head_outputs", "What each head writes", 2, 4, 10, checks.check_head_outputs),
    _E("A1.1", "A1_real_transformer", "prev_token_head", "A previous-token head, by its attention", 1, 4, 5, checks.check_prev_token_head),
    _E("A1.2", "A1_real_transformer", "strongest_receivers", "Its strongest K-receivers, by weights", 2, 4, 10, checks.check_strongest_receivers),
    _E("A1.3", "A1_real_transformer", "pattern_without_sender_in_keys", "One receiver, checked causally", 3, 5, 20, checks.check_pattern_without_sender_in_keys),
)

EXERCISES: dict[str, list[Exercise]] = {}
for _ex in ALL_EXERCISES:
    EXERCISES.setdefault(_ex.notebook, []).append(_ex)
NOTEBOOKS: tuple[str, ...] = tuple(EXERCISES)
EXERCISE_BY_ID: dict[str, Exercise] = {ex.id: ex for ex in ALL_EXERCISES}
MAX_POINTS: int = sum(ex.points for ex in ALL_EXERCISES)
