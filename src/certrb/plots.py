"""Figures of the round-off study (matplotlib, imported lazily)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = ["plot_roundoff_study"]

_STYLE = {
    "truth-extended": ("black", "-", "o"),
    "truth-double": ("gray", "--", "s"),
    "expanded": ("tab:red", "-", "v"),
    "point-basis": ("tab:purple", "-", "^"),
    "eim": ("tab:orange", "-", "D"),
    "eim-stabilized": ("tab:green", "-", "P"),
    "orthonormal": ("tab:blue", "-", "x"),
}


def _array(rows) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def _rowwise(func, arr: np.ndarray) -> np.ndarray:
    """Apply a nan-aware reduction per row; all-NaN rows (estimator not built) give NaN silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(arr, axis=1)


def _panel_residuals(ax, results: dict) -> None:
    sizes = results["sizes"]
    for name, rows in results["rel_residual"].items():
        arr = _array(rows)
        color, ls, marker = _STYLE[name]
        ax.semilogy(sizes, _rowwise(np.nanmedian, arr), ls=ls, marker=marker, ms=3, color=color, label=name)
    ax.set(xlabel="N", ylabel=r"median $\|r\|_{V'} / \|f\|_{V'}$", title="Residual norm per estimator")


def _panel_scatter(ax, results: dict) -> None:
    ref = _array(results["rel_residual"]["truth-extended"]).ravel()
    for name, rows in results["deviation"].items():
        dev = _array(rows).ravel()
        color, _, marker = _STYLE[name]
        ok = np.isfinite(dev)
        floor = results["floors"][name]
        ax.loglog(ref[ok], np.maximum(dev[ok], 1e-17), ls="none", marker=marker, ms=2, alpha=0.35, color=color,
                  label=f"{name} (floor {floor:.1e})")
        ax.axvline(floor, color=color, lw=1, ls=":")
    ax.axhline(0.01, color="k", lw=1)
    ax.invert_xaxis()
    ax.set(xlabel=r"reference $\|r\|_{V'} / \|f\|_{V'}$ (E0 extended)", ylabel="relative deviation from E0 extended",
           title="Where each estimator loses accuracy (dotted: floor)")


def _panel_greedy(ax, results: dict) -> None:
    for name, rec in results["greedy"].items():
        bounds = np.array([np.nan if b is None else b for b in rec["max_bound"]], dtype=float)
        color, _, marker = _STYLE[name]
        ax.semilogy(rec["n"], bounds, marker=marker, ms=3, color=color, label=f"greedy by {name} ({rec['reason']})")
    err = _array(results["true_error"])
    ax.semilogy(results["sizes"], _rowwise(np.nanmax, err), color="black", lw=2, label="max true error (test)")
    ax.set(xlabel="N", ylabel="max relative bound over training set", title="Greedies: who stalls")


def _panel_effectivity(ax, results: dict) -> None:
    sizes = np.asarray(results["sizes"])
    for name, rows in results["effectivity"].items():
        eff = _array(rows)
        color, _, _ = _STYLE[name]
        lo, hi = _rowwise(np.nanmin, eff), _rowwise(np.nanmax, eff)
        ax.fill_between(sizes, lo, hi, color=color, alpha=0.25, label=f"{name} ({results['violations'][name]} viol.)")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_yscale("log")
    ax.set(xlabel="N", ylabel="bound / true error (min..max)", title="Effectivity (below 1 = violated)")


def plot_roundoff_study(results: dict, path: str | Path, *, title: str = "") -> Path:
    """Draw the four-panel round-off study figure and save it.

    Parameters
    ----------
    results : dict
        Output of :func:`certrb.study.roundoff_study` (or its JSON).
    path : str or Path
        Image file to write (format from the suffix, e.g. ``.png``).
    title : str
        Figure title.

    Returns
    -------
    Path
        The written file.

    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 10), constrained_layout=True)
    _panel_residuals(axes[0, 0], results)
    _panel_scatter(axes[0, 1], results)
    _panel_greedy(axes[1, 0], results)
    _panel_effectivity(axes[1, 1], results)
    for ax in axes.ravel():
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
