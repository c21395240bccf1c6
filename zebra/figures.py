"""Matplotlib drawings of the analyses in `zebra.analysis`; each takes computed numbers and a
path, draws one figure with the Agg backend and saves it. No computation happens here."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from zebra.analysis import ClusterResult, PCAResult, short_label  # noqa: E402
from zebra.behaviour import BehaviourTable  # noqa: E402

DPI = 100  # small PNGs: they are committed and shown in the README
CMAP = "YlGnBu"


def _save(fig, path: str | Path, dpi: int) -> Path:
    """Save as a 256-colour PNG: flat plots lose nothing visible and the files shrink ~3×."""
    import io

    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def _annotated_heatmap(ax, values: np.ndarray, rows: Sequence[str], cols: Sequence[str], fmt: str, size: float) -> None:
    im = ax.imshow(values, cmap=CMAP, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        # dark cells get white text so every value stays readable
        ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=size, color="white" if v > 0.6 else "black")
    return im


# Printed values of Figure 10, in points. The README shows the PNG scaled to its column (~880 px),
# so the figure is kept narrow enough that these stay >= 8 px there (tests/test_figures.py);
# MB-SIM prints two decimals to fit 16 columns (all three are in fig10_mb_sim.csv).
FIG10_TABLE_FONT = 8.0
FIG10_SIM_FONT = 8.0


def plot_figure10(table: BehaviourTable, path: str | Path, dpi: int = DPI) -> Path:
    """Figure 10: the min–max normalised table with MB-SUP, and the MB-SIM matrix, values printed."""
    n, b = len(table.models), len(table.benchmarks)
    # ~0.42 in a table column ("0.939"), ~0.36 in an MB-SIM column ("0.98"), 0.3 in a row
    fig, (left, right) = plt.subplots(1, 2, figsize=(0.42 * (b + 1) + 0.36 * n + 2.6, 0.3 * n + 1.4),
                                      gridspec_kw={"width_ratios": [0.42 * (b + 1), 0.36 * n], "wspace": 0.04})
    norm = np.column_stack([table.normalised, table.mb_sup])
    _annotated_heatmap(left, norm, table.models, [short_label(b) for b in table.benchmarks] + ["MB-SUP"], ".3f",
                       FIG10_TABLE_FONT)
    left.axvline(len(table.benchmarks) - 0.5, color="black", lw=1.5)
    left.set_title("Normalised (min–max) and MB-SUP", fontsize=10)
    im = _annotated_heatmap(right, table.mb_sim, table.models, table.models, ".2f", FIG10_SIM_FONT)
    right.set_yticklabels([])
    right.set_title("MB-SIM (cosine of normalised vectors)", fontsize=10)
    fig.colorbar(im, ax=right, fraction=0.04, pad=0.02)
    return _save(fig, path, dpi)


def plot_radar(table: BehaviourTable, pairs: Mapping[str, tuple[str, str, float]], path: str | Path, dpi: int = DPI) -> Path:
    """Figure 4: radar profiles of a similar and a different pair of models."""
    labels = [short_label(b) for b in table.benchmarks]
    angles = np.linspace(0, 2 * np.pi, len(labels), endpoint=False)
    closed = np.append(angles, angles[0])
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.8), subplot_kw={"projection": "polar"})
    fig.subplots_adjust(wspace=0.45)
    for ax, (kind, (a, b, sim)) in zip(np.atleast_1d(axes), pairs.items()):
        ax.set_theta_offset(np.pi / 2)  # first benchmark at the top, clockwise: the paper's hexagon
        ax.set_theta_direction(-1)
        for model, colour in ((a, "tab:blue"), (b, "tab:red")):
            v = table.normalised[table.index[model]]
            ax.plot(closed, np.append(v, v[0]), color=colour, lw=2, label=model)
            ax.fill(closed, np.append(v, v[0]), color=colour, alpha=0.15)
        ax.set_xticks(angles, labels, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_yticks([0.25, 0.5, 0.75], ["", "", ""])
        ax.set_title(f"{kind}: MB-SIM = {sim:.3f}", fontsize=10, pad=14)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    return _save(fig, path, dpi)


PCA_MARKER_SIZE = 70  # scatter `s`, points²


def marker_radius_px(size: float, dpi: float) -> float:
    """Pixel radius of a scatter marker of area `size` points² (its edge line included)."""
    return (np.sqrt(size) / 2 + 0.5) * dpi / 72


def plot_pca(pca: PCAResult, clusters: ClusterResult, path: str | Path, dpi: int = DPI) -> Path:
    """Figure 6: models on the first two principal components, coloured by cluster."""
    fig, ax = plt.subplots(figsize=(7.5, 6))
    colours = plt.get_cmap("tab10")
    for c, members in enumerate(clusters.clusters, start=1):
        idx = [pca.models.index(m) for m in members]
        ax.scatter(pca.coords[idx, 0], pca.coords[idx, 1], s=PCA_MARKER_SIZE, color=colours((c - 1) % 10),
                   label=f"cluster {c}", edgecolor="black", lw=0.5, zorder=3)
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6)
    ev = pca.explained_variance_ratio
    ax.set_xlabel(f"PC1 ({ev[0]:.1%} of variance; higher MB-SUP to the left, as in the paper)")
    ax.set_ylabel(f"PC2 ({ev[1]:.1%} of variance)")
    ax.set_title(f"PCA of behaviour vectors; colours: {clusters.method}-linkage {clusters.metric} clusters at {clusters.cut:g}",
                 fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.margins(0.15)
    _label_points(ax, pca.coords[:, :2], pca.models)  # last: the limits and legend are final
    return _save(fig, path, dpi)


def _label_points(ax, xy: np.ndarray, names: Sequence[str], size: float = 7.5) -> list:
    """Name each point without covering another label or another point, deterministically.

    Each label tries spots around its point, nearest first (right, left, above, below, then the
    diagonals), at growing distances; the first spot clear of every placed label, every marker
    and the legend wins (in the first ring, also no nearer to another point than to its own). A label set further out than the first ring gets a thin leader line, and
    so does every point whose marker overlaps another's, so near-coincident models (wizardlm-13b
    and llama-2-13b-chat sit ~4 px apart) are still told apart. Returns the annotations, in the
    order of `names`.
    """
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(xy)
    r = marker_radius_px(PCA_MARKER_SIZE, fig.dpi)
    blocked = [Bbox([[x - r, y - r], [x + r, y + r]]) for x, y in points]
    legend = ax.get_legend()
    if legend is not None:
        blocked.append(legend.get_window_extent(renderer))
    frame = ax.get_window_extent(renderer)
    pad = 2.0
    out = []
    for (x, y), (px, py), name in zip(xy, points, names):
        probe = ax.text(0, 0, name, fontsize=size)
        bb = probe.get_window_extent(renderer)
        probe.remove()
        w, h = bb.width + 2 * pad, bb.height + 2 * pad
        chosen = None
        # a point whose marker overlaps another's gets a leader line whatever the room
        crowded = int((np.hypot(*(points - (px, py)).T) < 2 * r).sum() > 1)
        for ring, gap in list(enumerate((r + 1, r + 9, r + 19, r + 31, r + 45, r + 62)))[crowded:]:
            # (dx, dy) of the box's lower-left corner from the point, per direction
            spots = ((gap, -h / 2), (-gap - w, -h / 2), (-w / 2, gap), (-w / 2, -gap - h),
                     (gap * 0.7, gap * 0.7), (-gap * 0.7 - w, gap * 0.7), (gap * 0.7, -gap * 0.7 - h),
                     (-gap * 0.7 - w, -gap * 0.7 - h))
            for dx, dy in spots:
                box = Bbox([[px + dx, py + dy], [px + dx + w, py + dy + h]])
                inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                if not inside or any(box.overlaps(b) for b in blocked):
                    continue
                # without a leader line the label must sit nearer its own point than any other
                gap = np.hypot(np.clip(points[:, 0], box.x0, box.x1) - points[:, 0],
                               np.clip(points[:, 1], box.y0, box.y1) - points[:, 1])
                if ring > 0 or gap.min() >= np.hypot(np.clip(px, box.x0, box.x1) - px, np.clip(py, box.y0, box.y1) - py):
                    chosen = (ring, dx, dy, box)
                    break
            if chosen:
                break
        if chosen is None:  # nowhere clear: beside the point, as before
            chosen = (0, r + 1, -h / 2, Bbox([[px + r + 1, py - h / 2], [px + r + 1 + w, py + h / 2]]))
        ring, dx, dy, box = chosen
        blocked.append(box)
        leader = {"arrowstyle": "-", "color": "grey", "lw": 0.6, "shrinkA": 0, "shrinkB": r} if ring > 0 else None
        out.append(ax.annotate(name, (x, y), xytext=(dx + pad, dy + pad), textcoords="offset pixels", fontsize=size,
                               ha="left", va="bottom", arrowprops=leader))
    return out


def plot_dendrograms(results: Sequence[ClusterResult], path: str | Path, dpi: int = DPI) -> Path:
    """Figure 11: one dendrogram per benchmark group, coloured below the cut, cut drawn dotted."""
    from scipy.cluster.hierarchy import dendrogram

    fig, axes = plt.subplots(1, len(results), figsize=(5.6 * len(results), 5.2))
    fig.subplots_adjust(wspace=0.75)  # leaf labels sit between the panels
    for ax, res in zip(np.atleast_1d(axes), results):
        dendrogram(res.linkage, labels=list(res.models), orientation="left", color_threshold=res.cut,
                   above_threshold_color="grey", ax=ax, leaf_font_size=8)
        ax.axvline(res.cut, color="red", ls=":", lw=1.5)
        bench = ", ".join(short_label(b) for b in res.benchmarks)
        ax.set_title(f"{res.name} ({bench})\n{len(res.clusters)} clusters at {res.cut:g}", fontsize=9)
        ax.set_xlabel(f"{res.metric} distance, {res.method} linkage", fontsize=8)
    return _save(fig, path, dpi)


def plot_frequency(freq: pd.DataFrame, path: str | Path, dpi: int = DPI) -> Path:
    """Figure 8: how often each model is chosen and rejected, one panel per strategy."""
    strategies = list(dict.fromkeys(freq["strategy"]))
    models = list(dict.fromkeys(freq["model"]))
    fig, axes = plt.subplots(1, len(strategies), figsize=(2.6 * len(strategies) + 1.6, 0.3 * len(models) + 1.5),
                             sharey=True, squeeze=False)
    y = np.arange(len(models))
    for ax, strategy in zip(axes[0], strategies):
        part = freq[freq["strategy"] == strategy].set_index("model").reindex(models).fillna(0)
        ax.barh(y - 0.2, part["chosen"], height=0.4, color="tab:blue", label="chosen")
        ax.barh(y + 0.2, part["rejected"], height=0.4, color="tab:orange", label="rejected")
        ax.set_title(strategy, fontsize=10)
        ax.set_xlabel("records", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0][0].set_yticks(y, models)
    axes[0][0].invert_yaxis()
    axes[0][0].legend(fontsize=8, loc="lower right")
    return _save(fig, path, dpi)


def plot_kinship(dist: pd.DataFrame, stats: Mapping[str, Mapping], path: str | Path, dpi: int = DPI) -> Path:
    """kinship_rank distribution per strategy (share of records at each rank)."""
    strategies = [s for s in stats if stats[s]["n"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ranks = sorted(dist["kinship_rank"].unique()) if len(dist) else []
    width = 0.8 / max(len(strategies), 1)
    for k, strategy in enumerate(strategies):
        part = dist[dist["strategy"] == strategy].set_index("kinship_rank")["count"].reindex(ranks).fillna(0)
        ax.bar(np.arange(len(ranks)) + (k - (len(strategies) - 1) / 2) * width, part / part.sum(), width,
               label=f"{strategy} (mean {stats[strategy]['mean']:.2f}, n={stats[strategy]['n']})")
    ax.set_xticks(range(len(ranks)), [str(r) for r in ranks])
    ax.set_xlabel("kinship_rank of the rejected model (1 = most MB-similar to the chosen)")
    ax.set_ylabel("share of records")
    ax.legend(fontsize=8)
    return _save(fig, path, dpi)


def plot_tfidf(per_record: pd.DataFrame, result: Mapping, path: str | Path, dpi: int = DPI) -> Path:
    """TF–IDF cosine of the two responses, most- vs least-MB-SIM pairs, with the means and CIs."""
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 26)
    for name, colour in (("most", "tab:blue"), ("least", "tab:orange")):
        r = result[name]
        ax.hist(per_record.loc[per_record["pairing"] == name, "cosine"], bins=bins, alpha=0.5, color=colour,
                label=f"{name}-similar pair: mean {r['mean']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
        ax.axvline(r["mean"], color=colour, lw=2)
    g = result["paired_gap"]
    ax.set_title(f"paired gap {g['mean']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}] over {g['n']} prompts "
                 "(paper: 0.4623 vs 0.4129)", fontsize=9)
    ax.set_xlabel("TF–IDF cosine(chosen, rejected)")
    ax.set_ylabel("records")
    ax.legend(fontsize=8)
    return _save(fig, path, dpi)


def plot_agreement(summary: pd.DataFrame, path: str | Path, dpi: int = DPI) -> Path:
    """Agreement with GPT-4 per strategy and label (ties apart), with Wilson 95% intervals, and
    the full outcome split for overall_score."""
    strategies = list(dict.fromkeys(summary["strategy"]))
    labels = list(dict.fromkeys(summary["label"]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.3), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / len(strategies)
    x = np.arange(len(labels))
    for k, strategy in enumerate(strategies):
        part = summary[summary["strategy"] == strategy].set_index("label").reindex(labels)
        err = np.vstack([part["agreement"] - part["ci_low"], part["ci_high"] - part["agreement"]])
        ax.bar(x + (k - (len(strategies) - 1) / 2) * width, part["agreement"], width, yerr=np.nan_to_num(err),
               capsize=2, label=strategy)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xticks(x, labels, rotation=15, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("agree / (agree + disagree)")
    ax.set_title("GPT-4 prefers the chosen response (ties excluded)", fontsize=10)
    ax.legend(fontsize=8, ncol=len(strategies), loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    overall = summary[summary["label"] == "overall_score"].set_index("strategy").reindex(strategies)
    left = np.zeros(len(strategies))
    for outcome, colour in (("agree", "tab:green"), ("tie", "tab:grey"), ("disagree", "tab:red"), ("missing", "white")):
        share = overall[outcome] / overall["records"]
        ax2.barh(strategies, share, left=left, color=colour, edgecolor="black", lw=0.4, label=outcome)
        left += share.to_numpy()
    ax2.invert_yaxis()
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("share of records")
    ax2.set_title("overall_score outcomes", fontsize=10)
    ax2.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    return _save(fig, path, dpi)


def plot_agreement_study(study: pd.DataFrame, path: str | Path, dpi: int = DPI) -> Path:
    """The agreement study (zebra.analysis.agreement_study): per strategy and --models-per-prompt,
    the share of decided pairs on which the judge prefers the chosen response, bootstrap 95% CI,
    and how many pairs the judge decides (bar labels)."""
    ks = list(dict.fromkeys(study["models_per_prompt"].astype(str)))
    strategies = list(dict.fromkeys(study["strategy"]))
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / max(len(ks), 1)
    x = np.arange(len(strategies))
    for j, k in enumerate(ks):
        part = study[study["models_per_prompt"].astype(str) == k].set_index("strategy").reindex(strategies)
        err = np.vstack([part["agreement"] - part["ci_low"], part["ci_high"] - part["agreement"]])
        pos = x + (j - (len(ks) - 1) / 2) * width
        ax.bar(pos, part["agreement"], width, yerr=np.nan_to_num(err), capsize=3, label=f"K = {k}")
        for p, a, n in zip(pos, part["agreement"], part["decided"]):
            if np.isfinite(a):
                ax.text(p, 0.02, f"n={int(n)}", ha="center", va="bottom", fontsize=7, rotation=90, color="white")
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xticks(x, strategies, rotation=12, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("judge agrees / decided pairs")
    ax.set_title("Does the judge prefer ZEBRA's chosen response? (95% bootstrap CI; n = decided pairs)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path, dpi)
