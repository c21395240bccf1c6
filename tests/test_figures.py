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


# ----------------------------------------------------------------------------- issue 24's figures


@pytest.fixture
def drawn(monkeypatch):
    """Capture the figure a plot_* function would save, rendered, instead of writing a PNG."""
    figs = []

    def keep(fig, path, dpi):
        fig.canvas.draw()
        figs.append(fig)
        return path

    monkeypatch.setattr(figures, "_save", keep)
    yield figs
    import matplotlib.pyplot as plt

    for fig in figs:
        plt.close(fig)


def _boxes(fig, artists):
    renderer = fig.canvas.get_renderer()
    return [a.get_window_extent(renderer) for a in artists]


def test_figure8_panels_share_one_x_scale(drawn, tmp_path):
    import pandas as pd

    freq = pd.DataFrame({"strategy": ["SUP", "SUP", "SIM", "SIM"], "model": ["gpt-4", "bard", "gpt-4", "bard"],
                         "chosen": [143, 10, 3, 2], "rejected": [0, 153, 2, 3]})
    figures.plot_frequency(freq, tmp_path / "f8.png")
    axes = drawn[0].axes
    assert len(axes) == 2 and axes[0].get_xlim() == axes[1].get_xlim()


def test_tfidf_legend_covers_no_bar(drawn, tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    per = pd.DataFrame({"pairing": ["most"] * 400 + ["least"] * 400,
                        "cosine": np.r_[rng.normal(0.55, 0.1, 400), rng.normal(0.45, 0.1, 400)].clip(0, 1)})
    stat = {"n": 400, "mean": 0.5, "ci_low": 0.49, "ci_high": 0.51}
    result = {"most": stat, "least": stat, "paired_gap": {"n": 400, "mean": 0.1, "ci_low": 0.08, "ci_high": 0.12}}
    figures.plot_tfidf(per, result, tmp_path / "t.png")
    fig = drawn[0]
    ax = fig.axes[0]
    legend = _boxes(fig, [ax.get_legend()])[0]
    bars = _boxes(fig, [p for p in ax.patches if p.get_height() > 0])
    assert bars and not any(_overlap(legend, b) for b in bars)


def _summary():
    import pandas as pd

    from zebra.agreement import LABELS, agreement_summary

    out = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(20)], "chosen_model": "a", "rejected_model": "b",
                        **{lab: "missing" for lab in LABELS}, "not_found": False})
    base = out.copy()
    out["overall_score"] = ["agree"] * 15 + ["disagree"] * 5
    base["overall_score"] = "agree"  # the judge-labelled baseline: 1.0, its interval's cap at 1.0
    return agreement_summary({"SUP": out, "Baseline": base}, n_boot=100)


def test_agreement_figure_draws_only_labels_with_data_and_the_cap_at_one(drawn, tmp_path):
    """issue 24: five empty label groups on the shipped pool, and the baseline's cap clipped at 1.0."""
    summary = _summary()
    figures.plot_agreement(summary, tmp_path / "a.png")
    ax = drawn[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["overall_score"]
    assert ax.get_ylim()[1] > summary["ci_high"].max() + 0.02


def test_agreement_study_legend_hides_no_label_and_every_n_shows(drawn, tmp_path):
    """issue 24: the legend hid the K=all baseline bar's n."""
    import pandas as pd

    rows = []
    for k in ("4", "all"):
        for s, n in (("SUP", 99), ("SIM", 124), ("Random (MB-SUP)", 144), ("Baseline (judge-labelled)", 267)):
            rows.append({"models_per_prompt": k, "strategy": s, "decided": n, "agreement": 0.8, "ci_low": 0.7,
                         "ci_high": 0.9, "lc_agreement": 0.75, "lc_ci_low": 0.6, "lc_ci_high": 0.85})
    study = pd.DataFrame(rows)
    rules = study[["models_per_prompt", "strategy"]].assign(rule="longer (characters)", agreement=0.7)
    figures.plot_agreement_study(study, rules, tmp_path / "s.png")
    fig = drawn[0]
    texts = [t for ax in fig.axes for t in ax.texts + ax.get_xticklabels() if t.get_text()]
    assert all(any(f"n={n}" in t.get_text() for t in texts) for n in (99, 124, 144))
    legends = [*fig.legends, *[ax.get_legend() for ax in fig.axes if ax.get_legend()]]
    boxes = _boxes(fig, texts)
    assert legends and not any(_overlap(b, box) for b in _boxes(fig, legends) for box in boxes)
    assert not any(_overlap(b, a) for b in _boxes(fig, legends) for a in _boxes(fig, fig.axes))


def test_an_interval_that_misses_its_point_draws_instead_of_crashing(tmp_path):
    """A prompt-bootstrap percentile interval of a pooled ratio can miss the ratio itself on a few
    prompts (analyze.py agreement on 60 made-up rows did): matplotlib refuses a negative error bar,
    which stopped the whole analysis at its figure. The side the interval does not reach has no bar."""
    import pandas as pd

    calibration = pd.DataFrame({"models_per_prompt": [4, 4], "variable": ["mb_sup_gap", "mb_sim"], "pairs": ["all", "all"],
                                "decided": [3, 3], "mean_value": [0.1, 0.5], "agreement": [0.5, 0.7],
                                "ci_low": [0.55, 0.6], "ci_high": [0.9, 0.65]})
    assert figures.plot_calibration(calibration, tmp_path / "c.png").is_file()
    assert figures._err(calibration).tolist() == [[0.0, pytest.approx(0.1)], [pytest.approx(0.4), 0.0]]
