"""plot_term_sizes ranks terms by absolute value, so signed per-term credits plot too."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from mechlib.views import plots  # noqa: E402

KINDS = {"direct": "direct", "0.1": "single", "1.0": "single", "0.1->1.0": "virtual", "bias 0": "bias"}


def _bars(ax):
    names = [t.get_text() for t in ax.get_yticklabels()]
    return names, [p.get_width() for p in ax.patches]


def test_sizes_keep_their_order_label_and_no_zero_line():
    sizes = {"direct": 1.0, "0.1": 3.0, "1.0": 0.2, "0.1->1.0": 2.0, "bias 0": 0.5}
    ax = plots.plot_term_sizes(sizes, KINDS, top=3)
    names, widths = _bars(ax)
    assert names == ["direct", "0.1->1.0", "0.1"]  # largest at the top
    assert widths == [1.0, 2.0, 3.0]
    assert ax.get_xlabel() == "size of term (RMS logit)"
    assert ax.get_lines() == []
    plt.close(ax.figure)


def test_signed_values_rank_by_magnitude_with_a_zero_line():
    credit = {"direct": 0.1, "0.1": 2.5, "1.0": -1.5, "0.1->1.0": 0.4, "bias 0": -0.05}
    ax = plots.plot_term_sizes(credit, KINDS, top=4, xlabel="credit (logits)")
    names, widths = _bars(ax)
    assert names == ["direct", "0.1->1.0", "1.0", "0.1"]
    assert widths == [0.1, 0.4, -1.5, 2.5]
    assert [p.get_facecolor() for p in ax.patches] == [to_rgba(plots.TERM_COLOURS[KINDS[n]]) for n in names]
    assert ax.get_xlabel() == "credit (logits)"
    zero = [line for line in ax.get_lines() if list(line.get_xdata()) == [0, 0]]
    assert len(zero) == 1
    plt.close(ax.figure)
