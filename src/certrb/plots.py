"""Figures of the round-off study (matplotlib, imported lazily)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = ["plot_greedy_report", "plot_roundoff_study", "plot_scattering_study"]

_STYLE = {
    "truth-extended": ("black", "-", "o"),
    "truth-double": ("gray", "--", "s"),
    "expanded": ("tab:red", "-", "v"),
    "point-basis": ("tab:purple", "-", "^"),
    "point-basis-square": ("tab:pink", ":", "<"),
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


_UNIT = float(np.finfo(np.float64).eps) / 2  # unit round-off u of double precision
_STOP_WORDS = {"tolerance": "tolerance reached", "max_basis": "basis size cap",
               "in_span": "next snapshot already in the span", "stagnation": "bound stagnated"}
_GREEDY_LINES = ("-", "--", ":", "-.")  # one per greedy, so that a curve under another stays visible


def _panel_residuals(ax, results: dict) -> None:
    """Median relative residual per estimator; ``expanded``: median over its non-negative forms only.

    A negative quadratic form ``x^H G x < 0`` is returned as 0 (``sqrt(max(., 0))``); those
    are left out of the median and their fraction is drawn on the right axis.
    """
    sizes = np.asarray(results["sizes"])
    for name, rows in results["rel_residual"].items():
        arr = _array(rows)
        color, ls, marker = _STYLE[name]
        label = name
        if name == "expanded":  # exact zeros are clipped negative forms: not part of the median
            arr = np.where(arr > 0, arr, np.nan)
            label = r"expanded (median over $\epsilon^2 \geq 0$)"
        ax.semilogy(sizes, _rowwise(np.nanmedian, arr), ls=ls, marker=marker, ms=3, color=color, label=label)
    ax.axhline(np.sqrt(_UNIT), color="tab:red", lw=0.8, ls=(0, (6, 3)),
               label=rf"$\sqrt{{u}}$ = {np.sqrt(_UNIT):.1e} (classical floor)")
    ax.axhline(_UNIT, color="gray", lw=0.8, ls=(0, (6, 3)), label=f"u = {_UNIT:.1e}")
    ax.set(xlabel="N", ylabel=r"median $\|r\|_{V'} / \|f\|_{V'}$", title="Residual norm per estimator")
    negative = results.get("expanded_negative")
    n_test = len(results["true_error"][0]) if results["true_error"] else 0
    if negative is not None and n_test:
        right = ax.twinx()
        frac = np.asarray(negative, dtype=float) / n_test
        right.bar(sizes, frac, width=0.6, color="tab:red", alpha=0.25,
                  label=r"expanded: fraction with $\epsilon^2 < 0$ (right axis)")
        right.set_ylim(0.0, 4.0)  # bars in the lower quarter, under the curves
        right.set_yticks([0.0, 0.5, 1.0])
        right.set_ylabel(r"fraction of test points with $\epsilon^2 < 0$", fontsize=8)
        lines, labels = ax.get_legend_handles_labels()
        bars, bar_labels = right.get_legend_handles_labels()
        ax.legend(lines + bars, labels + bar_labels, fontsize=7)


def _panel_scatter(ax, results: dict) -> None:
    ref = _array(results["rel_residual"]["truth-extended"]).ravel()
    for name, rows in results["deviation"].items():
        dev = _array(rows).ravel()
        color, _, marker = _STYLE[name]
        ok = np.isfinite(dev)
        floor = results["floors"][name]
        negative = np.zeros_like(ok)
        if name == "expanded":  # a negative form, returned as 0: deviation exactly 1
            negative = ok & (_array(results["rel_residual"][name]).ravel() == 0)
        shown = ok & ~negative
        ax.loglog(ref[shown], np.maximum(dev[shown], 1e-17), ls="none", marker=marker, ms=2, alpha=0.35,
                  color=color, label=f"{name} (floor {floor:.1e})")
        if np.any(negative):
            ax.loglog(ref[negative], dev[negative], ls="none", marker="x", ms=5, mew=1.2, color="darkred",
                      label=rf"expanded, $\epsilon^2 < 0$ returned as 0 ({int(np.sum(negative))})")
        ax.axvline(floor, color=color, lw=1, ls=":")
    ax.plot([], [], color="gray", lw=1, ls=":", label="floor (dotted, in the estimator's color)")
    ax.axhline(0.01, color="k", lw=1, label="1% deviation (accuracy threshold)")
    ax.invert_xaxis()
    ax.set(xlabel=r"reference $\|r\|_{V'} / \|f\|_{V'}$ (E0 extended)", ylabel="relative deviation from E0 extended",
           title="Where each estimator loses accuracy (dotted: floor)")


def _panel_greedy(ax, results: dict) -> None:
    for i, (name, rec) in enumerate(results["greedy"].items()):
        bounds = np.array([np.nan if b is None else b for b in rec["max_bound"]], dtype=float)
        color, _, marker = _STYLE[name]
        stop = rec.get("stop") or _STOP_WORDS.get(rec["reason"], rec["reason"])
        ax.semilogy(rec["n"], bounds, ls=_GREEDY_LINES[i % len(_GREEDY_LINES)], lw=1.5 + 0.8 * i, marker=marker,
                    ms=3 + 1.5 * i, mfc="none" if i else color, markevery=(i, 1), color=color, alpha=0.9,
                    label=f"greedy by {name}: {stop}")
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
    err = _array(results["true_error"])
    for name, rows in results.get("certified_bound", {}).items():  # round-off-certified bounds: lowest effectivity
        color, _, marker = _STYLE[name]
        lowest = _rowwise(np.nanmin, _array(rows) / err)
        ax.semilogy(sizes, lowest, color=color, lw=1.5, ls="--", marker=marker, ms=3,
                    label=f"{name} certified, min ({results['certified_violations'][name]} viol.)")
    ax.axhline(1.0, color="k", lw=1, label="bound = true error")
    ax.set_yscale("log")
    ax.set(xlabel="N", ylabel="bound / true error (min..max)",
           title="Effectivity (below 1 = violated; dashed: certified bounds)")


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
        if ax.get_legend() is None:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _bounds_array(rows: list, n_test: int) -> np.ndarray:
    """(n_sizes, n_test) floats from per-N rows, NaN rows where the estimator was not built."""
    return _array([[None] * n_test if r is None else r for r in rows])


def _scattering_bounds(ax, results: dict) -> None:
    sizes, n_test = results["sizes"], len(results["test_wavenumbers"])
    for name, rows in results["bound"].items():
        color, ls, marker = _STYLE[name]
        worst = _rowwise(np.nanmax, _bounds_array(rows, n_test))
        ax.semilogy(sizes, worst, ls=ls, marker=marker, ms=3, color=color, label=f"bound, {name}")
    ax.semilogy(sizes, _rowwise(np.nanmax, _array(results["true_error"])), color="black", lw=2,
                label="true error (vs non-interpolated truth)")
    ax.semilogy(sizes, _rowwise(np.nanmax, _array(results["interpolation_indicator"])), color="gray", ls=":",
                label="interpolation indicator (in the bound)")
    greedy = results["greedy"]
    bounds = np.array([np.nan if b is None else b for b in greedy["max_bound"]], dtype=float)
    ax.semilogy(greedy["n"], bounds, color="tab:cyan", ls="--", label="greedy: max training bound")
    ax.set(xlabel="N", ylabel="relative error / bound (max over test k)", title="Bounds and true errors")


def _scattering_effectivity(ax, results: dict) -> None:
    sizes = np.asarray(results["sizes"])
    err = _array(results["true_error"])
    for name, rows in results["bound"].items():
        color, _, _ = _STYLE[name]
        eff = _bounds_array(rows, err.shape[1]) / err
        lo, hi = _rowwise(np.nanmin, eff), _rowwise(np.nanmax, eff)
        ax.fill_between(sizes, lo, hi, color=color, alpha=0.25,
                        label=f"{name} ({results['violations'][name]} viol.)")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_yscale("log")
    ax.set(xlabel="N", ylabel="bound / true error (min..max)", title="Effectivity (below 1 = violated)")


def _scattering_eim(ax, results: dict) -> None:
    for (part, rec), color in zip(results["eim"].items(), ("tab:blue", "tab:orange"), strict=True):
        m = np.arange(1, len(rec["train_error"]) + 1)
        ax.semilogy(m, rec["train_error"], color=color, marker="o", ms=3, label=f"{part}, training")
        ax.semilogy(m, rec["test_error"], color=color, ls="--", marker="x", ms=4, label=f"{part}, test (max)")
        ax.axvline(rec["terms"], color=color, lw=1, ls=":")
    ax.set(xlabel="terms M", ylabel="max |entry error| / max |entry|",
           title="Matrix / vector EIM in k (dotted: terms kept)")


def _scattering_field(ax, results: dict) -> None:
    rec = results["mie_relative_error"]
    field = rec["field"]
    ax.plot(np.degrees(field["mie_theta"]), field["mie_abs"], color="black", lw=1.5, label="Mie series")
    ax.plot(np.degrees(field["theta"]), field["truth_abs"], ls="none", marker="o", ms=3, mfc="none",
            color="tab:blue", label=f"truth BEM ({rec['rb']['truth']:.2%})")
    ax.plot(np.degrees(field["theta"]), field["rb_abs"], ls="none", marker="x", ms=3, color="tab:red",
            label=f"RB, N = {rec['rb']['n']} ({rec['rb']['rb']:.2%})")
    ax.set(xlabel="angle from incidence (degrees)", ylabel=r"$|\partial u / \partial n|$",
           title=f"Surface field at k = {field['k']:.4f} (not a training point)")


def _scattering_mie(ax, results: dict) -> None:
    rec = results["mie_relative_error"]
    ax.plot(rec["wavenumbers"], rec["truth"], ls="none", marker="o", ms=4, color="tab:blue",
            label="truth BEM vs Mie")
    ax.plot([rec["rb"]["k"]], [rec["rb"]["rb"]], ls="none", marker="x", ms=8, color="tab:red", label="RB vs Mie")
    ax.set(xlabel="k", ylabel="relative L2 surface error", title="Validation against the Mie series")


def _scattering_stability(ax, results: dict) -> None:
    k = np.asarray(results["test_wavenumbers"])
    order = np.argsort(k)
    stab = results["stability"]
    ax.plot(k[order], np.asarray(stab["lower_bound"])[order], marker="v", ms=3, color="tab:green",
            label=f"SCM lower bound ({stab['scm_points']} points)")
    if stab["exact"] is not None:
        ax.plot(k[order], np.asarray(stab["exact"])[order], marker="o", ms=3, color="black", label="exact")
    speed = results["speedup"]
    ax.set(xlabel="k", ylabel="inf-sup constant (L2)",
           title=f"Stability; online speed-up {speed['speedup']:.0f}x over assembly + solve")


def _scattering_floor_scatter(ax, results: dict) -> None:
    """Deviation from E0 extended of the interpolated operator against it, floors dotted, indicator shaded."""
    _panel_scatter(ax, results)
    ind = results["indicator_rel_residual"]
    ax.axvspan(min(ind["min"]), max(ind["max"]), color="gray", alpha=0.15,
               label="interpolation indicator / ||f|| (range, all N)")
    ax.set(xlabel=r"E0 extended of the interpolated operator, $\|r_M\|_{V'} / \|f_M\|_{V'}$",
           title="Floors against the interpolated operator's truth residual")


def _scattering_floor_curves(ax, results: dict) -> None:
    """Median relative residual per estimator and N, the indicator's range per N shaded."""
    _panel_residuals(ax, results)
    ind = results["indicator_rel_residual"]
    ax.fill_between(results["sizes"], ind["min"], ind["max"], color="gray", alpha=0.25,
                    label="interpolation indicator / ||f|| (min..max)")
    ax.set(ylabel=r"median $\|r_M\|_{V'} / \|f_M\|_{V'}$", title="Residual norms of the interpolated operator")


def plot_scattering_study(results: dict, path: str | Path, *, title: str = "") -> Path:
    """Draw the eight-panel figure of the 3D scattering study and save it.

    Parameters
    ----------
    results : dict
        Output of :func:`certrb.study.scattering_study` (or its JSON).
    path : str or Path
        Image file to write (format from the suffix).
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

    fig, axes = plt.subplots(2, 4, figsize=(25, 10), constrained_layout=True)
    panels = (_scattering_bounds, _scattering_effectivity, _scattering_floor_curves, _scattering_eim,
              _scattering_field, _scattering_mie, _scattering_stability, _scattering_floor_scatter)
    for panel, ax in zip(panels, axes.ravel(), strict=True):
        panel(ax, results)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_greedy_report(report: dict, path: str | Path, *, title: str = "") -> Path:
    """Draw the convergence of a ``certrb build`` greedy (largest training bound and time per N) and save it.

    Parameters
    ----------
    report : dict
        The build report: ``history`` (records with ``n``, ``max_bound`` (None where
        infinite), ``seconds``) and ``reduction`` (with ``tol``).
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

    steps = [s for s in report["history"] if s["max_bound"] is not None]
    n = [s["n"] for s in steps]
    fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    ax.semilogy(n, [s["max_bound"] for s in steps], marker="o", ms=3, color="tab:blue",
                label="largest training bound")
    ax.axhline(report["reduction"]["tol"], color="black", ls="--", lw=1, label="tolerance")
    ax.set(xlabel="N", ylabel="bound" + (" / ||u_N||" if report["reduction"].get("relative") else ""),
           title="Weak greedy convergence")
    ax_time.plot([s["n"] for s in report["history"]], np.cumsum([s["seconds"] for s in report["history"]]),
                 marker="o", ms=3, color="tab:green")
    ax_time.set(xlabel="N", ylabel="seconds (cumulative)", title="Build time")
    ax.legend(fontsize=8)
    for a in (ax, ax_time):
        a.grid(True, which="major", alpha=0.3)
    if title:
        fig.suptitle(title)
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
