"""The research notebooks' figure of gains per page (`workbench.plots.plot_gains_per_page`)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from workbench.plots import plot_gains_per_page  # noqa: E402


def test_gains_per_page_draws_each_label_once_per_page_coloured_by_sign_with_its_interval():
    table = pd.DataFrame({
        "page": ["customer NDCG@10", "product HR@10", "customer NDCG@10"],
        "variant": ["a", "a", "b"],
        "gain": [0.01, -0.02, 0.005],
        "standard error": [0.002, 0.004, 0.001],
    })
    fig = plot_gains_per_page(table, table["variant"], pages=["customer NDCG@10", "product HR@10"],
                              xlabel="gain", title="variants")
    try:
        customer, product = fig.axes
        assert [t.get_text() for t in customer.get_yticklabels()] == ["a", "b"]
        widths = [[bar.get_width() for bar in ax.patches] for ax in (customer, product)]
        assert widths[0] == [0.01, 0.005]
        # "b" has no row on the product page: no bar there, not a zero one
        assert widths[1][0] == -0.02 and np.isnan(widths[1][1])
        assert customer.patches[0].get_facecolor() == to_rgba("tab:green")
        assert product.patches[0].get_facecolor() == to_rgba("tab:red")
        # the whisker is the 95% interval: 1.96 standard errors each side
        segments = customer.collections[0].get_segments()
        assert np.allclose([s[1][0] - s[0][0] for s in segments], [2 * 1.96 * 0.002, 2 * 1.96 * 0.001])
        assert customer.get_title() == "validation customer NDCG@10" and fig._suptitle.get_text() == "variants"
    finally:
        plt.close(fig)


def test_gains_per_page_names_the_columns_it_misses():
    with pytest.raises(ValueError, match=r"\['standard error'\]"):
        plot_gains_per_page(pd.DataFrame({"page": ["x"], "gain": [0.1]}), ["a"], pages=["x"], xlabel="", title="")
