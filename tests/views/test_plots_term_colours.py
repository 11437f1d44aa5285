"""One colour per kind of path-expansion term, shared by plot_term_sizes and the chapters."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from mechlib.expansion import TERM_KINDS  # noqa: E402
from mechlib.views import plots  # noqa: E402


def test_term_colours_cover_every_kind_with_distinct_colours():
    assert set(plots.TERM_COLOURS) == set(TERM_KINDS)
    assert len({to_rgba(c) for c in plots.TERM_COLOURS.values()}) == len(TERM_KINDS)


def test_plot_term_sizes_colours_bars_and_legend_by_kind():
    sizes = {"direct": 1.0, "0.1": 3.0, "0.1->1.0": 2.0, "bias 0": 0.5}
    kinds = {"direct": "direct", "0.1": "single", "0.1->1.0": "virtual", "bias 0": "bias"}
    ax = plots.plot_term_sizes(sizes, kinds)
    names = [t.get_text() for t in ax.get_yticklabels()]
    colours = [p.get_facecolor() for p in ax.patches]
    assert colours == [to_rgba(plots.TERM_COLOURS[kinds[n]]) for n in names]
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert legend == set(plots.TERM_COLOURS)
    plt.close(ax.figure)
