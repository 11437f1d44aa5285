"""plot_loss_bars draws exactly the losses it is given, in order, with the chance line."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mechlib.views import plots  # noqa: E402


def test_loss_bars_heights_and_labels_match_input():
    losses = {"clean": 0.05, "K path ablated": 3.7, "Q path ablated": 0.4}
    ax = plots.plot_loss_bars(losses, chance=math.log(32))
    heights = [p.get_height() for p in ax.patches]
    assert heights == list(losses.values())
    assert [t.get_text() for t in ax.get_xticklabels()] == list(losses)
    chance_lines = [l for l in ax.get_lines() if l.get_ydata()[0] == math.log(32)]
    assert len(chance_lines) == 1
    plt.close(ax.figure)


def test_path_ablation_bars_keep_one_colour_per_input():
    from matplotlib.colors import to_rgba

    cut = {"K": 3.2, "Q": 0.46, "V": 0.07}
    ax = plots.plot_path_ablation(cut, clean=0.05, ablated=("0.3 ablated", 4.4), chance=math.log(32))
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["clean", "K path ablated", "Q path ablated", "V path ablated", "0.3 ablated"]
    assert [p.get_height() for p in ax.patches] == [0.05, 3.2, 0.46, 0.07, 4.4]
    expected = ["0.5", "tab:red", "tab:blue", "tab:green", "0.2"]
    assert [p.get_facecolor() for p in ax.patches] == [to_rgba(c) for c in expected]
    plt.close(ax.figure)
    ax = plots.plot_path_ablation({"Q": 0.4, "K": 3.0}, clean=0.05)
    assert [p.get_facecolor() for p in ax.patches] == [to_rgba(c) for c in ["0.5", "tab:blue", "tab:red"]]
    plt.close(ax.figure)
    try:
        plots.plot_path_ablation({"X": 1.0}, clean=0.05)
    except ValueError as exc:
        assert "'Q', 'K' or 'V'" in str(exc)
    else:
        raise AssertionError("a bad key must be refused")
