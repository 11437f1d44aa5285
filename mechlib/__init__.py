"""mechlib: the library behind *Composition & Virtual Attention Heads*."""
from mechlib.data import repeated_tokens, repeat_mask
from mechlib.models import (
    BUNDLED_MODEL,
    InductionConfig,
    ModelUnavailableError,
    load_checkpoint,
    load_model,
    save_model,
    train_induction_model,
)
from mechlib.scores import (
    attention_patterns,
    duplicate_token_scores,
    induction_scores,
    induction_scores_from_patterns,
    per_token_loss,
    prev_token_scores,
    repeat_loss,
)
from mechlib.circuits import (
    full_ov_circuit,
    full_qk_circuit,
    ov_circuit,
    qk_circuit,
    receiver_circuit,
    virtual_ov,
)
from mechlib.composition import (
    composition_baseline,
    composition_score,
    composition_scores,
    pair_composition_score,
)
from mechlib.ablation import (
    ablation_hooks,
    head_output,
    mean_ablation_hook,
    path_ablation,
    path_ablation_hooks,
    run_with_ablation,
    zero_ablation_hook,
)
from mechlib.expansion import PathExpansion, check_expandable, path_expansion
from mechlib.counting import count_virtual_heads, enumerate_virtual_heads
from mechlib.attribution import composition_from_cache, correct_token_attribution
from mechlib.toggle import HeadToggleState, precompute_head_toggle
