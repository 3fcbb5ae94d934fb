"""Figures of the study (seaborn / matplotlib). Each function returns its ``Figure``."""
from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from asc_lib.data import audio, dcase

sns.set_theme(style="whitegrid", context="notebook")


def split_devices(summary: pd.DataFrame) -> plt.Figure:
    """Clips per device in each split: absolute counts (left) and each device's share (right)."""
    devices = [d for d in dcase.DEVICES if d in summary.columns]
    counts = summary[devices]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    counts.plot.bar(stacked=True, ax=axes[0], colormap="tab10", width=0.75, legend=False)
    axes[0].set_ylabel("clips")
    axes[0].set_title("Clips per device")
    (counts.div(counts.sum(axis=1), axis=0) * 100).plot.bar(stacked=True, ax=axes[1], colormap="tab10", width=0.75)
    axes[1].set_ylabel("% of the split")
    axes[1].set_title("Device share")
    axes[1].legend(title="device", ncol=1, fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    for ax in axes:
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=0)
    fig.tight_layout()
    return fig


def scene_device_heatmap(table: pd.DataFrame, title: str) -> plt.Figure:
    """Heatmap of clips per scene and device."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * table.shape[1], 4.5))
    sns.heatmap(table, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("device")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig


def city_counts(splits: dict, split) -> plt.Figure:
    """Clips per city in a training split and the test split."""
    frame = pd.concat([splits[split].assign(part=f"split{split}"), splits["test"].assign(part="test")])
    fig, ax = plt.subplots(figsize=(8, 3.2))
    sns.countplot(data=frame, x="city", hue="part", ax=ax, order=sorted(frame["city"].unique()))
    ax.set_title("Clips per city")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def location_histogram(per_location: pd.DataFrame, title: str) -> plt.Figure:
    """Histogram of clips per recording location."""
    fig, ax = plt.subplots(figsize=(6, 3))
    sns.histplot(per_location["clips"], bins=20, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("clips per location")
    fig.tight_layout()
    return fig


def waveforms(examples, sample_rate: int = 32000, seconds: float = 1.0) -> plt.Figure:
    """The first ``seconds`` of each (title, path) example."""
    fig, axes = plt.subplots(len(examples), 1, figsize=(8, 1.6 * len(examples)), squeeze=False)
    for ax, (title, path) in zip(axes[:, 0], examples):
        wave = audio.load_clip(path, sample_rate, int(sample_rate * seconds)).numpy()
        ax.plot(np.arange(len(wave)) / sample_rate, wave, lw=0.5)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("amplitude")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def frontend_gallery(views: dict, title: str) -> plt.Figure:
    """One log-mel image per front-end preset, with its shape."""
    fig, axes = plt.subplots(1, len(views), figsize=(4 * len(views), 3.4))
    for ax, (name, mel) in zip(np.atleast_1d(axes), views.items()):
        im = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma")
        ax.grid(False)
        ax.set_title(f"{name}: {mel.shape[0]}×{mel.shape[1]}")
        ax.set_xlabel("frame")
        ax.set_ylabel("mel bin")
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def probe_accuracy(table: pd.DataFrame) -> plt.Figure:
    """Bar chart of the linear probe's accuracy per device group."""
    fig, ax = plt.subplots(figsize=(5, 3))
    sns.barplot(x=table.index, y=table["accuracy"], ax=ax, color="tab:blue")
    ax.axhline(0.1, ls="--", c="grey", lw=1, label="chance")
    ax.set_ylim(0, 1)
    ax.set_xlabel("")
    ax.legend()
    ax.set_title("Linear probe on log-mel statistics")
    fig.tight_layout()
    return fig


def training_curves(history: list[dict], title: str = "") -> plt.Figure:
    """Training loss and learning rate per epoch, and test accuracy (overall and per device group)
    where it was evaluated."""
    frame = pd.DataFrame(history)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    axes[0].plot(frame["epoch"], frame["loss"], color="C0")
    axes[0].set_title("training loss")
    axes[1].plot(frame["epoch"], frame["lr"], color="C1")
    axes[1].set_title("learning rate")
    axes[1].ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    evaluated = frame.dropna(subset=["accuracy"]) if "accuracy" in frame else frame.iloc[0:0]
    student = "student_accuracy" in evaluated  # a mean teacher's history: the teacher's columns, and its student's
    for col, style in [("accuracy", "-o"), ("student_accuracy", ":s"), ("acc_real", "--"), ("acc_seen", "--"),
                       ("acc_unseen", "--")]:
        if col in evaluated and len(evaluated):
            name = {"accuracy": "teacher" if student else "accuracy", "student_accuracy": "student"}.get(
                col, col.replace("acc_", ("teacher " if student else "")))
            axes[2].plot(evaluated["epoch"], evaluated[col] * 100, style, label=name, ms=4)
    axes[2].set_title("test accuracy (%)")
    if len(evaluated):  # beside the panel, never over its curves
        axes[2].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    for ax in axes:
        ax.set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(confusion, title: str = "Confusion matrix (test split, % of each true scene)") -> plt.Figure:
    """Row-normalised confusion matrix over the ten scenes."""
    counts = np.asarray(confusion, dtype=float)
    share = counts / counts.sum(axis=1, keepdims=True).clip(min=1) * 100
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    sns.heatmap(pd.DataFrame(share, index=dcase.SCENES, columns=dcase.SCENES), annot=True, fmt=".0f",
                cmap="Blues", vmin=0, vmax=100, cbar=False, ax=ax, annot_kws={"size": 8})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def device_accuracy(per_device: dict, title: str = "Accuracy per recording device (test split)") -> plt.Figure:
    """Bar chart of accuracy per device, coloured by device group (real / seen / unseen)."""
    frame = pd.DataFrame({"device": list(per_device), "accuracy": [v * 100 for v in per_device.values()]})
    frame["group"] = frame["device"].map(dcase.GROUP_OF_DEVICE)
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    sns.barplot(frame, x="device", y="accuracy", hue="group", dodge=False, ax=ax,
                palette={"real": "C0", "seen": "C2", "unseen": "C3"})
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(title="", fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # off the bars
    fig.tight_layout()
    return fig


def label_counts(table: pd.DataFrame, title: str = "Segments selected per Table-1 label") -> plt.Figure:
    """Horizontal bars: segments per label in each segment list (the union and list sizes left out)."""
    rows = table.drop(index=[i for i in ("any of them (union)", "all segments") if i in table.index])
    long = rows.reset_index().melt(id_vars="label", var_name="list", value_name="segments")
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) * max(1, len(table.columns)) / 1.5 + 1.5))
    sns.barplot(long, y="label", x="segments", hue="list", ax=ax, orient="h")
    ax.set_ylabel("")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # off the bars
    fig.tight_layout()
    return fig


def loss_curve(losses, title: str = "") -> plt.Figure:
    """A loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(np.arange(1, len(losses) + 1), losses)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def score_distributions(scores: dict, threshold: float, truth: pd.Series | None = None,
                        pool: pd.DataFrame | None = None) -> plt.Figure:
    """Domain-classifier scores per set (challenge split, AudioSet eval, pool), the threshold marked;
    with the mini generator's truth, the pool split into in-domain and other clips."""
    groups = {"challenge split": scores["challenge"], "AudioSet eval (negatives)": scores["negatives"]}
    if truth is not None and pool is not None:
        inside = truth.reindex(pool["YTID"]).fillna(False).to_numpy(bool)
        groups["pool: in-domain (generator truth)"] = scores["pool"][inside]
        groups["pool: other"] = scores["pool"][~inside]
    else:
        groups["AudioSet pool"] = scores["pool"]
    frame = pd.concat([pd.DataFrame({"score": v, "set": k}) for k, v in groups.items()], ignore_index=True)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.histplot(frame, x="score", hue="set", bins=40, stat="density", common_norm=False, element="step",
                 fill=False, ax=ax)
    ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.text(threshold, ax.get_ylim()[1] * 0.95, f" threshold {threshold:g}", va="top")
    ax.set_title("Domain-classifier scores")
    fig.tight_layout()
    return fig


def accuracy_vs_split(curve: pd.DataFrame, paper_series: dict[str, list], splits, label: Callable[[str], str],
                      methods=None) -> plt.Figure:
    """Test accuracy against the training split size: this study's runs (``curve``: method, split,
    accuracy, low, high; bars = the 95 % bootstrap interval over test recordings and seeds) on the left, the
    papers' reported numbers on the right. A method has the same colour and label in both panels and in the
    tables; one legend below the panels keeps the curves clear."""
    methods = list(methods or dict.fromkeys([*curve["method"], *paper_series]))
    colours = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharey=True)
    for i, method in enumerate(methods):
        mine = curve[curve["method"] == method].sort_values("split")
        dodge = 1 + 0.04 * (i - (len(methods) - 1) / 2)  # side by side on the log axis, so bars do not hide each other
        if len(mine):
            axes[0].errorbar(mine["split"] * dodge, mine["accuracy"], yerr=[mine["accuracy"] - mine["low"], mine["high"] - mine["accuracy"]],
                             marker="o", capsize=3, color=colours[method], label=label(method))
        if method in paper_series:
            axes[1].plot(splits, paper_series[method], marker="o", color=colours[method], label=label(method))
    axes[0].set_title("This study (bars: 95 % interval)")
    axes[1].set_title("As reported in the papers")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(list(splits), [f"{s} %" for s in splits])
        ax.minorticks_off()
        ax.set_xlabel("training split")
        ax.set_ylabel("accuracy (%)")
    found = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            found.setdefault(name, handle)
    handles = {label(m): found[label(m)] for m in methods if label(m) in found}  # legend in the methods' order
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(3, len(handles)), fontsize=8,
                   frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.045 * ((len(handles) - 1) // 3), 1, 1))
    return fig


def ablation_points(runs: pd.DataFrame, order, title: str) -> plt.Figure:
    """Accuracy of each ablation variant (``runs``: variant, seed, model): mean ± std over seeds and every seed."""
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(order) + 1))
    sns.pointplot(data=runs, y="variant", x="model", order=list(order), errorbar="sd", linestyle="none", capsize=0.2,
                  ax=ax)
    sns.stripplot(data=runs, y="variant", x="model", order=list(order), color="0.5", size=4, ax=ax)
    ax.set(xlabel="test accuracy (%): mean ± std over seeds, and each seed", ylabel="", title=title)
    fig.tight_layout()
    return fig


def group_accuracy(table: pd.DataFrame, title: str) -> plt.Figure:
    """Accuracy per device group (real / seen / unseen) of each model (``table``: rows = models)."""
    if table.empty:
        return _no_runs(title)
    frame = table.reset_index().melt(id_vars=table.index.name or "index", var_name="device group",
                                     value_name="accuracy")
    fig, ax = plt.subplots(figsize=(9, max(2.2, 0.5 + 0.45 * len(table) * 1.2)))
    sns.barplot(frame, y=table.index.name or "index", x="accuracy", hue="device group", ax=ax,
                palette={"real": "C0", "seen": "C2", "unseen": "C3"})
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)")
    ax.set_ylabel("")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)  # off the bars
    fig.tight_layout()
    return fig


def _no_runs(title: str) -> plt.Figure:
    """A small figure that says there is nothing to draw (instead of an empty axis)."""
    fig, ax = plt.subplots(figsize=(9, 1.2))
    ax.text(0.5, 0.5, "no runs to show", ha="center", va="center", fontsize=11, color="0.4")
    ax.set_axis_off()
    ax.set_title(title)
    return fig


def confusion_grid(confusions: dict, title: str, columns: int = 3) -> plt.Figure:
    """Row-normalised confusion matrices (% of each true scene) of several models, side by side."""
    if not confusions:
        return _no_runs(title)
    n = max(len(confusions), 1)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 4.6 * rows), squeeze=False)
    short = [s.replace("_", " ") for s in dcase.SCENES]
    for ax, (name, confusion) in zip(axes.flat, confusions.items()):
        counts = np.asarray(confusion, dtype=float)
        share = counts / counts.sum(axis=1, keepdims=True).clip(min=1) * 100
        sns.heatmap(pd.DataFrame(share, index=short, columns=short), cmap="Blues", vmin=0, vmax=100,
                    cbar=False, ax=ax, square=True)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    for ax in list(axes.flat)[len(confusions):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def throughput_bars(table: pd.DataFrame, title: str = "CP-Mobile training throughput") -> plt.Figure:
    """Samples/s of each data path (``table`` from :func:`asc_lib.study.benchmark.training_comparison`)."""
    fig, ax = plt.subplots(figsize=(9, 1.6))
    names = [n.split(":")[0] for n in table.index]
    ax.barh(names, table["samples/s"], color=["0.6", "C0"][:len(table)])
    for y, (rate, rel) in enumerate(zip(table["samples/s"], table["relative"])):
        ax.text(rate, y, f" {rate:,.0f}/s (×{rel:.1f})", va="center", fontsize=9)
    ax.set_xlim(0, table["samples/s"].max() * 1.35)
    ax.set_xlabel("samples per second")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def scaling_curves(table: pd.DataFrame, title: str = "Cost against work (each size in a fresh process)") -> plt.Figure:
    """Seconds and peak memory against items, log-log, one line per task."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for task, rows in table.groupby("task", sort=False):
        axes[0].plot(rows["items"], rows["seconds"], "o-", label=task)
        axes[1].plot(rows["items"], rows["peak MB"].clip(lower=0.1), "o-", label=task)
    for ax, label in zip(axes, ["seconds", "peak memory above idle (MB)"]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items (segments or clips)")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
