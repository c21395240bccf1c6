"""The figures stay readable: PCA labels do not cover each other or another model's point, and the
heatmaps' printed values are large enough at the README's display width."""

from pathlib import Path

import numpy as np
import pytest

from zebra import figures
from zebra.analysis import behaviour_pca
from zebra.behaviour import read_benchmark

ROOT = Path(__file__).resolve().parent.parent
README_WIDTH_PX = 880  # GitHub's README column: a wider PNG is scaled down to it


@pytest.fixture(scope="module")
def table():
    return read_benchmark(ROOT / "model_aware" / "benchmark.csv")


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_pca_labels_cover_no_label_and_no_other_point(table):
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    pca = behaviour_pca(table)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    ax.scatter(pca.coords[:, 0], pca.coords[:, 1], s=figures.PCA_MARKER_SIZE)
    ax.margins(0.15)
    labels = figures._label_points(ax, pca.coords[:, :2], pca.models)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in labels]
    points = ax.transData.transform(pca.coords[:, :2])
    r = figures.marker_radius_px(figures.PCA_MARKER_SIZE, fig.dpi)
    discs = [Bbox([[x - r, y - r], [x + r, y + r]]) for x, y in points]
    plt.close(fig)
    assert [t.get_text() for t in labels] == list(pca.models)
    for i, box in enumerate(boxes):
        for j in range(len(boxes)):
            if i != j:
                assert not _overlap(box, boxes[j]), (pca.models[i], pca.models[j])
                assert not _overlap(box, discs[j]), f"{pca.models[i]}'s label covers {pca.models[j]}'s point"
        # a label nearer another point than its own points to its own with a leader line
        gap = np.hypot(np.clip(points[:, 0], box.x0, box.x1) - points[:, 0],
                       np.clip(points[:, 1], box.y0, box.y1) - points[:, 1])
        if int(np.argmin(gap)) != i:
            assert labels[i].arrow_patch is not None, pca.models[i]
    # the two near-coincident models of the issue are told apart by leader lines
    for name in ("wizardlm-13b", "llama-2-13b-chat"):
        assert labels[list(pca.models).index(name)].arrow_patch is not None, name


def test_figure10_values_readable_at_readme_width(table, tmp_path):
    from PIL import Image

    path = figures.plot_figure10(table, tmp_path / "f10.png")
    width = Image.open(path).size[0]
    scale = min(1.0, README_WIDTH_PX / width)
    # pixels of a printed value's font at 100 dpi, as the README shows it
    for size in (figures.FIG10_TABLE_FONT, figures.FIG10_SIM_FONT):
        assert size / 72 * figures.DPI * scale >= 8.0, (size, width)
