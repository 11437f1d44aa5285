"""The diagrams name the model's heads by what they do, and draw the tokens they are given.

Roles and attention weights are recomputed here by hand from ``run_with_cache`` patterns
(mean attention by offset, attention to the induction target), not with
:func:`mechlib.head_roles` or the diagrams' own code.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import mechlib  # noqa: E402
from mechlib.views import diagrams  # noqa: E402

OFFSET_ROLES = {0: "self", 1: "previous-token", 2: "two-back", 3: "3-back", 4: "4-back"}


@pytest.fixture(scope="module")
def batch(model):
    return mechlib.repeated_batch(model)


@pytest.fixture(scope="module")
def patterns(model, batch):
    """``[layer, batch, head, dest, src]`` straight from the cache."""
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.tokens)
    return torch.stack([cache[f"blocks.{l}.attn.hook_pattern"] for l in range(model.cfg.n_layers)]).double()


@pytest.fixture(scope="module")
def roles_by_hand(model, batch, patterns):
    """Each head's role: the largest of its mean attention at offsets 0..4 and its attention to the
    induction target (one after the first copy of the current token), if at least 0.3."""
    n_pos, half = batch.tokens.shape[1], batch.half_len
    second = range(batch.prefix_len + half, n_pos)
    roles = {}
    for l in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            A = patterns[l, :, h]
            candidates = {}
            for k in range(5):
                candidates[OFFSET_ROLES[k]] = sum(A[:, q, q - k].mean().item() for q in range(k, n_pos)) / (n_pos - k)
            candidates["induction"] = sum(A[:, q, q - half + 1].mean().item() for q in second) / len(second)
            role, score = max(candidates.items(), key=lambda kv: kv[1])
            roles[f"{l}.{h}"] = role if score >= 0.3 else "other"
    return roles


def texts_by_gid(ax):
    return {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}


def test_residual_stream_names_every_sender_layer_head_and_the_receiver_by_role(model, roles_by_hand):
    ax = diagrams.draw_residual_stream(model, (0, 3), (1, 1))
    texts = texts_by_gid(ax)
    for h in range(model.cfg.n_heads):
        assert texts[f"head-0.{h}"] == f"0.{h} · {roles_by_hand[f'0.{h}']}"
    assert texts["head-1.1"] == f"1.1 · {roles_by_hand['1.1']}"
    plt.close(ax.figure)


def test_residual_stream_marks_the_three_inputs(model):
    ax = diagrams.draw_residual_stream(model, (0, 0), (1, 2))
    all_text = " ".join(t.get_text() for t in ax.texts)
    for kind in ("Q", "K", "V"):
        assert f"{kind}-comp." in all_text
    plt.close(ax.figure)


def test_residual_stream_uses_the_roles_it_is_given(model):
    roles = mechlib.head_roles(model)
    ax = diagrams.draw_residual_stream(model, (0, 1), (1, 0), roles=roles)
    assert texts_by_gid(ax)["head-0.1"] == f"0.1 · {roles[(0, 1)].role}"
    plt.close(ax.figure)


def test_induction_row_shows_the_given_tokens_and_the_models_prediction(model, batch, patterns):
    tokens = batch.tokens[0]
    q = batch.boundaries[1]  # first token of the second copy
    a = batch.prefix_len  # its first occurrence
    ax = diagrams.draw_induction_circuit(model, tokens, query=q, prev_head=(0, 3), induction_head=(1, 1))
    texts = texts_by_gid(ax)
    shown = sorted(int(g.split("-")[1]) for g in texts if g.startswith("token-"))
    assert {a, a + 1, q} <= set(shown) and shown[-1] == q
    assert all(texts[f"token-{p}"] == str(int(tokens[p])) for p in shown)
    with torch.no_grad():
        expected = int(model(tokens[None])[0, q].argmax())
    assert texts["prediction"] == str(expected)
    # the weights written on the arrows, from the cache
    assert f"{patterns[0, 0, 3, a + 1, a].item():.2f}" in texts["prev-head"]
    assert f"{patterns[1, 0, 1, q, a + 1].item():.2f}" in texts["induction-head"]
    plt.close(ax.figure)


def test_induction_default_heads_are_the_strongest_of_each_role(model, batch, patterns, roles_by_hand):
    n_pos = batch.tokens.shape[1]
    prev_score = [patterns[0, :, h].diagonal(offset=-1, dim1=-2, dim2=-1).mean().item()
                  for h in range(model.cfg.n_heads)]
    prev = max((h for h in range(model.cfg.n_heads) if roles_by_hand[f"0.{h}"] == "previous-token"),
               key=lambda h: prev_score[h])
    half, second = batch.half_len, range(batch.prefix_len + batch.half_len, n_pos)
    ind_score = [sum(patterns[1, :, h, q, q - half + 1].mean().item() for q in second) for h in range(model.cfg.n_heads)]
    ind = max(range(model.cfg.n_heads), key=lambda h: ind_score[h])
    ax = diagrams.draw_induction_circuit(model, batch.tokens[0], query=batch.boundaries[1])
    texts = texts_by_gid(ax)
    assert texts["prev-head"].startswith(f"0.{prev} (previous-token head)")
    assert texts["induction-head"].startswith(f"1.{ind} (induction head)")
    plt.close(ax.figure)


def test_induction_positions_finds_the_single_earlier_occurrence():
    #         0  1  2  3  4  5  6  7
    tokens = [5, 1, 2, 9, 5, 1, 2, 1]
    assert diagrams.induction_positions(tokens, query=6) == (2, 6)
    # default: the first query inside a repeated stretch (5 1 at 4..5 repeats 0..1), not position 4
    assert diagrams.induction_positions(tokens) == (1, 5)
    with pytest.raises(ValueError, match="query"):
        diagrams.induction_positions(tokens, query=7)  # token 1 occurs twice before
    with pytest.raises(ValueError, match="query"):
        diagrams.induction_positions(tokens, query=3)  # token 9 never occurs before
    with pytest.raises(ValueError, match="query"):
        diagrams.induction_positions(tokens, query=8)
    with pytest.raises(ValueError, match="tokens"):
        diagrams.induction_positions([1, 2, 3])


@pytest.mark.parametrize("sender, receiver, named", [
    ((0, 9), (1, 1), "sender"),     # no such head
    ((0, 3), (1, 4), "receiver"),   # no such head
    ((3, 0), (1, 1), "sender"),     # no such layer
    ((1, 0), (1, 1), "sender"),     # not before its receiver
    ((1, 0), (0, 3), "sender"),
])
def test_residual_stream_rejects_bad_heads_naming_the_argument(model, sender, receiver, named):
    with pytest.raises(ValueError, match=named):
        diagrams.draw_residual_stream(model, sender, receiver)


@pytest.mark.parametrize("kwargs, named", [
    ({"prev_head": (0, 9)}, "prev_head"),
    ({"induction_head": (1, 7)}, "induction_head"),
    ({"prev_head": (1, 0), "induction_head": (1, 1)}, "prev_head"),
    ({"query": 2}, "query"),
])
def test_induction_circuit_rejects_bad_input_naming_the_argument(model, batch, kwargs, named):
    with pytest.raises(ValueError, match=named):
        diagrams.draw_induction_circuit(model, batch.tokens[0], **kwargs)


def test_induction_circuit_wants_one_sequence(model, batch):
    with pytest.raises(ValueError, match="tokens"):
        diagrams.draw_induction_circuit(model, batch.tokens[:2])
