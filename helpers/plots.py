"""Plots the lessons show inline: loss curves and before/after bars.

Introduced in 01_tokenizer_and_pretraining.ipynb (loss curves) and 03_sft.ipynb (before/after bars).
"""

from __future__ import annotations


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_losses(curves: dict[str, list[float]], title: str = "training loss", smooth: int = 10,
                xlabel: str = "step", logy: bool = False, ylabel: str = "loss") -> None:
    """One line per named curve (moving average over ``smooth`` steps), shown once: nothing is returned, so a
    call ending a cell does not display the figure a second time. Introduced in 01_tokenizer_and_pretraining.ipynb."""
    _show_lines({name: (range(1, len(values) + 1), _smooth(list(values), smooth)) for name, values in curves.items()},
                title, xlabel, ylabel, logy)


def _show_lines(lines: dict, title: str, xlabel: str, ylabel: str, logy: bool, marker: str | None = None,
                logx: bool = False) -> None:
    """Draw ``{name: (xs, ys)}`` as one figure and show it."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for name, (xs, ys) in lines.items():
        ax.plot(list(xs), ys, marker=marker, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plt.show()


def plot_before_after(before: dict[str, float], after: dict[str, float], title: str = "held-out accuracy",
                      ylabel: str = "accuracy", labels: tuple[str, str] = ("before", "after")) -> None:
    """Grouped bars of a metric per category, before vs after. Introduced in 03_sft.ipynb."""
    plot_bars({labels[0]: before, labels[1]: after}, title=title, ylabel=ylabel)


def plot_bars(series: dict[str, dict[str, float]], title: str, ylabel: str,
              intervals: dict[str, dict[str, tuple[float, float]]] | None = None) -> None:
    """Grouped bars: one group per category, one bar per series (shown, not returned). ``intervals``: the same
    keys with ``(low, high)`` per bar, drawn as error bars (12_evaluation.ipynb's confidence intervals).
    Introduced in 04_lora_qlora.ipynb."""
    import matplotlib.pyplot as plt
    import numpy as np

    categories = list(next(iter(series.values())))
    x = np.arange(len(categories))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(categories) + 2), 3.5))
    for i, (name, values) in enumerate(series.items()):
        heights = [values.get(c, 0.0) for c in categories]
        errors = None
        if intervals is not None:
            low_high = [intervals[name].get(c, (h, h)) for c, h in zip(categories, heights)]
            errors = [[h - lo for h, (lo, _) in zip(heights, low_high)], [hi - h for h, (_, hi) in zip(heights, low_high)]]
        bars = ax.bar(x + i * width - 0.4 + width / 2, heights, width, label=name, yerr=errors, capsize=3)
        ax.bar_label(bars, fmt="%.2g", fontsize=8, padding=0 if errors is None else 12)  # above the error bar
    ax.set_xticks(x, categories)
    ax.set(title=title, ylabel=ylabel)
    ax.legend()
    fig.tight_layout()
    plt.show()


def plot_lines(x: list[float] | dict[str, list[float]], curves: dict[str, list[float]], xlabel: str, ylabel: str,
               title: str, logy: bool = False, logx: bool = False) -> None:
    """One line with markers per named curve over shared ``x`` values, or each curve over its own (``x`` a dict with
    the curves' names, e.g. 11_reasoning.ipynb's accuracy against tokens spent) (shown, not returned).

    Introduced in 13_decoding_kv_cache.ipynb."""
    _show_lines({name: (x[name] if isinstance(x, dict) else x, values) for name, values in curves.items()},
                title, xlabel, ylabel, logy, marker="o", logx=logx)


def plot_scatter(points: dict[str, tuple[float, float]], xlabel: str, ylabel: str, title: str) -> None:
    """One labelled point per name, e.g. each format's (size, tokens/s) (shown, not returned).

    Introduced in 14_quantization.ipynb."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, (x, y) in points.items():
        ax.scatter([x], [y], s=40)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.show()


def plot_matrices(matrices: dict[str, object], xlabel: str, ylabel: str, title: str = "",
                  ticks: tuple[list[str], list[str]] | None = None) -> None:
    """Heatmaps side by side, one per named 2-D array, on one colour scale (the lowest and highest value of them
    all), so the panels compare; shown, not returned: dependence masks, similarity matrices. ``ticks``: (x labels,
    y labels) shared by all. Introduced in 02_embeddings_retrieval_rag.ipynb."""
    import matplotlib.pyplot as plt
    import numpy as np

    arrays = {name: np.asarray(matrix, dtype=float) for name, matrix in matrices.items()}
    low, high = min(a.min() for a in arrays.values()), max(a.max() for a in arrays.values())
    fig, axes = plt.subplots(1, len(arrays), figsize=(4.2 * len(arrays), 3.6), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], arrays.items()):
        image = ax.imshow(matrix, cmap="viridis", vmin=low, vmax=high)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel)
        if ticks is not None:
            ax.set_xticks(range(len(ticks[0])), ticks[0], rotation=60, ha="right", fontsize=7)
            ax.set_yticks(range(len(ticks[1])), ticks[1], fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()
