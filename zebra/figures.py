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
MAX_PIXELS = 60_000_000  # a figure above this (e.g. a 10,000-model Figure 10) is refused before drawing


def _save(fig, path: str | Path, dpi: int) -> Path:
    """Save as a 256-colour PNG: flat plots lose nothing visible and the files shrink ~3×."""
    import io

    from PIL import Image

    from zebra.analysis import AnalysisError

    width, height = fig.get_size_inches() * dpi
    if width * height > MAX_PIXELS:
        plt.close(fig)
        raise AnalysisError(f"{Path(path).name} would be {width:,.0f} × {height:,.0f} pixels at --dpi {dpi}, above "
                            f"{MAX_PIXELS // 1_000_000} megapixels; lower --dpi (or plot fewer models)")
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


def frequency_figure(freq: pd.DataFrame):
    """Figure 8: how often each model is chosen and rejected, one panel per strategy, one x-scale."""
    strategies = list(dict.fromkeys(freq["strategy"]))
    models = list(dict.fromkeys(freq["model"]))
    fig, axes = plt.subplots(1, len(strategies), figsize=(2.6 * len(strategies) + 1.6, 0.3 * len(models) + 1.5),
                             sharey=True, sharex=True, squeeze=False)  # one scale: panels compare at a glance
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
    return fig


def plot_frequency(freq: pd.DataFrame, path: str | Path, dpi: int = DPI) -> Path:
    return _save(frequency_figure(freq), path, dpi)


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


def tfidf_figure(per_record: pd.DataFrame, result: Mapping):
    """TF–IDF cosine of the two responses, most- vs least-MB-SIM pairs, with the means and CIs;
    the legend sits below the axes, clear of the bars."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
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
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    return fig


def plot_tfidf(per_record: pd.DataFrame, result: Mapping, path: str | Path, dpi: int = DPI) -> Path:
    return _save(tfidf_figure(per_record, result), path, dpi)


def _err(part: pd.DataFrame, mid: str = "agreement", lo: str = "ci_low", hi: str = "ci_high") -> np.ndarray:
    """Error bars below and above `mid` (matplotlib's yerr). A percentile interval of a pooled ratio
    can miss the ratio on a few prompts: the side it does not reach gets no bar (the CSVs keep it)."""
    return np.clip(np.nan_to_num(np.vstack([part[mid] - part[lo], part[hi] - part[mid]]).astype(float)), 0, None)


def agreement_figure(summary: pd.DataFrame):
    """Agreement with the judge per strategy and label (ties apart), with the analyses' 95%
    bootstrap intervals, and the full outcome split for overall_score. Only labels the data has
    are drawn; the axis leaves room above 1 so a cap at 1.0 shows."""
    strategies = list(dict.fromkeys(summary["strategy"]))
    labels = list(dict.fromkeys(summary["label"]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(4 + 1.6 * len(labels) + 4, 4.3),
                                  gridspec_kw={"width_ratios": [1.2 + 0.8 * len(labels), 2]})
    width = 0.8 / len(strategies)
    x = np.arange(len(labels))
    for k, strategy in enumerate(strategies):
        part = summary[summary["strategy"] == strategy].set_index("label").reindex(labels)
        ax.bar(x + (k - (len(strategies) - 1) / 2) * width, part["agreement"], width, yerr=_err(part), capsize=2,
               label=strategy)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("agree / (agree + disagree)")
    ax.set_title("The judge prefers the chosen response (ties excluded; 95% CI)", fontsize=10)
    ax.legend(fontsize=8, ncol=min(len(strategies), 3), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    overall = summary[summary["label"] == labels[0]].set_index("strategy").reindex(strategies)
    left = np.zeros(len(strategies))
    for outcome, colour in (("agree", "tab:green"), ("tie", "tab:grey"), ("disagree", "tab:red"), ("missing", "white")):
        share = overall[outcome] / overall["records"]
        ax2.barh(strategies, share, left=left, color=colour, edgecolor="black", lw=0.4, label=outcome)
        left += share.to_numpy()
    ax2.invert_yaxis()
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("share of records")
    ax2.set_title(f"{labels[0]} outcomes", fontsize=10)
    ax2.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    return fig


def plot_agreement(summary: pd.DataFrame, path: str | Path, dpi: int = DPI) -> Path:
    return _save(agreement_figure(summary), path, dpi)


LONGER = "longer (characters)"


def agreement_study_figure(study: pd.DataFrame, rules: pd.DataFrame, judge: str = "the judge"):
    """The agreement study at a glance (zebra.agreement.study): per --models-per-prompt K, each
    strategy's raw and length-controlled agreement with 95% intervals, the "longer response wins"
    rule on the same pairs (black tick) and a coin (dashed line at 0.5); n = decided pairs under
    each name. The judge-labelled baseline (1.0 by construction) is left out."""
    from zebra.agreement import JUDGE_LABELLED

    study = study[study["strategy"] != JUDGE_LABELLED]
    ks = list(dict.fromkeys(study["models_per_prompt"].astype(str)))
    fig, axes = plt.subplots(1, len(ks), figsize=(1.5 + 5.2 * len(ks), 4.4), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], ks):
        part = study[study["models_per_prompt"].astype(str) == k]
        strategies = list(part["strategy"])
        x = np.arange(len(strategies))
        ax.bar(x - 0.2, part["agreement"], 0.4, yerr=_err(part), capsize=3, color="tab:blue", label="raw agreement")
        ax.bar(x + 0.2, part["lc_agreement"], 0.4, yerr=_err(part, "lc_agreement", "lc_ci_low", "lc_ci_high"), capsize=3,
               color="tab:cyan", hatch="//", edgecolor="white", label="length-controlled (Δ length = 0)")
        for xi, strategy in zip(x, strategies):
            hit = rules[(rules["models_per_prompt"].astype(str) == k) & (rules["strategy"] == strategy) & (rules["rule"] == LONGER)]
            if len(hit) and np.isfinite(hit["agreement"].iloc[0]):
                ax.plot([xi - 0.42, xi + 0.42], [hit["agreement"].iloc[0]] * 2, color="black", lw=2.2,
                        label="longer response wins, same pairs" if xi == 0 else None)
        ax.axhline(0.5, color="grey", ls="--", lw=1, label="coin (0.5)")
        names = [s.replace(" (", "\n(") for s in strategies]
        ax.set_xticks(x, [f"{s}\nn={int(n)}" for s, n in zip(names, part["decided"])], fontsize=8)
        ax.set_ylim(0, 1.1)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_title(f"K = {k} responses per prompt", fontsize=10)
    axes[0][0].set_ylabel("judge agrees / decided pairs")
    # the legend sits between the title and the panels: below them it met the multi-line tick labels
    fig.subplots_adjust(top=0.78)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.85))
    fig.suptitle(f"Does {judge} prefer ZEBRA's chosen response? (95% bootstrap CI over prompts; n = decided pairs)",
                 fontsize=10, y=0.97)
    return fig


def plot_agreement_study(study: pd.DataFrame, rules: pd.DataFrame, path: str | Path, dpi: int = DPI,
                         judge: str = "the judge") -> Path:
    return _save(agreement_study_figure(study, rules, judge), path, dpi)


def calibration_figure(calibration: pd.DataFrame, judge: str = "the judge"):
    """P(the judge prefers the higher-MB-SUP response) against the MB-SUP gap and against MB-SIM,
    over every pair of a prompt's judged responses (zebra.agreement.calibration): one line per
    --models-per-prompt K, solid over all pairs, dashed over length-matched ones, 95% intervals."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = plt.get_cmap("tab10")
    ks = list(dict.fromkeys(calibration["models_per_prompt"].astype(str)))
    for ax, variable, xlabel in ((axes[0], "mb_sup_gap", "MB-SUP(chosen) − MB-SUP(rejected), bin mean"),
                                 (axes[1], "mb_sim", "MB-SIM of the pair, bin mean")):
        for j, k in enumerate(ks):
            for subset, style in (("all", "-"), ("length-matched", "--")):
                part = calibration[(calibration["models_per_prompt"].astype(str) == k) & (calibration["variable"] == variable)
                                   & (calibration["pairs"] == subset) & (calibration["decided"] > 0)]
                if not len(part):
                    continue
                ax.errorbar(part["mean_value"] + 0.004 * j, part["agreement"], yerr=_err(part), fmt="o" + style,
                            color=colours(j), ms=4, capsize=2, lw=1.2, alpha=1.0 if subset == "all" else 0.7,
                            label=f"K = {k}, {'all pairs' if subset == 'all' else 'length-matched pairs'}")
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("P(judge prefers the higher-MB-SUP side)")
    axes[0].set_title("against the MB-SUP gap", fontsize=10)
    axes[1].set_title("against MB-SIM", fontsize=10)
    fig.subplots_adjust(top=0.78)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.85))
    fig.suptitle(f"When can a ZEBRA label be trusted? {judge}: every pair of judged responses per prompt "
                 "(counts: agreement_calibration.csv)", fontsize=10, y=0.97)
    return fig


def plot_calibration(calibration: pd.DataFrame, path: str | Path, dpi: int = DPI, judge: str = "the judge") -> Path:
    return _save(calibration_figure(calibration, judge), path, dpi)
