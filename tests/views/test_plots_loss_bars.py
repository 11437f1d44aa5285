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
