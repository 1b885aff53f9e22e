"""The bench's outputs: results.json (every row and the machine), results.md (the tables people quote), two plots.

Everything here reads only the results dictionary, so a report can be rebuilt from a saved results.json
without rerunning anything: ``write_report(json.loads(Path("results.json").read_text()), folder)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from statistics import mean, median
from typing import Any

from .apply import apply_summary, apply_table
from .stride import stride_line
from .tables import (
    BASELINE,
    NOT_AVAILABLE,
    _backends,
    _ks,
    _num,
    _pair_key,
    _select,
    _signed,
    dice_table,
    mean_metric,
)

STAGES = (("embed_s", "embed"), ("adapt_s", "adapt"), ("segment_s", "segment"))
WARM_STAGES = (("adapt_warm_s", "adapt"), ("segment_warm_s", "segment"))


def write_report(results: dict[str, Any], out: Path) -> list[Path]:
    """results.json, results.md, dice_vs_k.png and time_split.png in ``out``; returns their paths."""
    out, results = Path(out), _finite(results)
    paths = [out / "results.json", out / "results.md", out / "dice_vs_k.png", out / "time_split.png"]
    paths[0].write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    paths[1].write_text(render_markdown(results))
    plot_dice_vs_k(results, paths[2])
    plot_time_split(results, paths[3])
    return paths


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: an undefined number is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ----------------------------------------------------------------------------- aggregation


def run_stats(rows: Sequence[dict], backend: str) -> dict[str, float | None]:
    """Medians of each timing over the backend's successful runs (one per run, not per scored structure)."""
    every = list({r["run_id"]: r for r in rows if r["backend"] == backend}.values())
    runs = [r for r in every if r["status"] == "ok"]

    def med(key: str, among: Sequence[dict]) -> float | None:
        values = [r[key] for r in among if r.get(key) is not None]
        return median(values) if values else None

    stats = {key: med(key, runs) for key, _ in STAGES[1:] + WARM_STAGES}
    stats["readapt_s"] = med("readapt_s", runs)
    # embed is paid once per volume; a failed run may still have embedded (its adapt failed later)
    stats["embed_s"] = med("embed_s", [r for r in every if r["embed_first_for_volume"]])
    stats["embed_cached_s"] = med("embed_s", [r for r in every if not r["embed_first_for_volume"]])
    rss = [r["peak_rss_mib"] for r in runs if r.get("peak_rss_mib") is not None]
    rise = [r["peak_rss_mib"] - r["rss_start_mib"] for r in runs if r.get("peak_rss_mib") and r.get("rss_start_mib")]
    cuda = [r["peak_cuda_mib"] for r in runs if r.get("peak_cuda_mib") is not None]
    stats["peak_rss_mib"] = max(rss) if rss else None
    stats["rss_rise_mib"] = median(rise) if rise else None  # the max is the run that first loaded a library
    stats["peak_cuda_mib"] = max(cuda) if cuda else None
    stats["runs_ok"] = len(runs)
    stats["runs_failed"] = len({r["run_id"] for r in rows if r["backend"] == backend and r["status"] != "ok"})
    return stats


# ----------------------------------------------------------------------------- markdown


def _hd95_table(results: dict[str, Any]) -> str:
    rows = [r for r in results["rows"] if r["slices"] == "protocol"]
    ks = _ks(rows)
    lines = ["| backend | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for backend in _backends(results):
        cells = []
        for k in ks:
            values = [
                r["hd95_mm"] for r in _select(rows, backend, k) if r["status"] == "ok" and r["hd95_mm"] is not None
            ]
            cells.append(_num(median(values), 1) if values else NOT_AVAILABLE)
        lines.append(f"| {backend} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _time_table(results: dict[str, Any]) -> str:
    rows = results["rows"]
    cuda = any(r.get("peak_cuda_mib") is not None for r in rows)
    header = (
        "| backend | embed cold (per volume) | embed cached | adapt cold | segment cold | adapt warm | segment warm"
        " | re-adapt after a correction"
    )
    header += " | peak RSS MiB (max) | RSS rise in a run MiB (median) |" + (" peak CUDA MiB (max) |" if cuda else "")
    header += " runs ok / failed |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for backend in _backends(results):
        s = run_stats(rows, backend)
        cells = [_num(s[key], 2) for key in ("embed_s", "embed_cached_s", "adapt_s", "segment_s")]
        cells += [_num(s[key], 2) for key in ("adapt_warm_s", "segment_warm_s", "readapt_s")]
        cells += [_num(s["peak_rss_mib"], 0), _num(s["rss_rise_mib"], 0)]
        cells += [_num(s["peak_cuda_mib"], 0)] if cuda else []
        cells.append(f"{s['runs_ok']} / {s['runs_failed']}")
        lines.append(f"| {backend} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scribble_gap(rows: Sequence[dict], backend: str, k: int, metric: str = "dice") -> float | None:
    """Mean of (scribbles − complete slices) for one backend over the case × structure pairs where both succeeded:
    what painting strokes instead of whole slices costs."""
    whole = {_pair_key(r)[:3]: r.get(metric) for r in _select(rows, backend, k) if r["status"] == "ok"}
    gaps = [
        r[metric] - whole[_pair_key(r)[:3]]
        for r in _select(rows, backend, k, "scribbles")
        if r["status"] == "ok" and r.get(metric) is not None and whole.get(_pair_key(r)[:3]) is not None
    ]
    return mean(gaps) if gaps else None


def _scribble_section(results: dict[str, Any]) -> list[str]:
    rows = results["rows"]
    ks = _ks([r for r in rows if r["slices"] == "scribbles"])
    gaps = ["| backend | " + " | ".join(f"k={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    gaps += [f"| {b} | " + " | ".join(_signed(scribble_gap(rows, b, k)) for k in ks) + " |" for b in _backends(results)]
    return [
        "## Scribbles\n",
        "The same protocol slices painted as strokes (bench/strokes.py: one thinned stroke inside each structure, "
        "arcs on a ring 1 cm around it covering half of it, the rest of the slice unpainted); the engine completes "
        "each scribbled slice before any backend learns. Whole volume:\n",
        dice_table(results, "dice", "scribbles") + "\n",
        "Unpainted slices:\n",
        dice_table(results, "dice_unpainted", "scribbles") + "\n",
        "After one correction (a complete slice):\n",
        dice_table(results, "dice_corrected", "scribbles") + "\n",
        "Scribbles − complete slices (whole-volume Dice, mean over the same pairs):\n",
        "\n".join(gaps) + "\n",
        "Per structure, scribbles:\n",
        _per_structure_table(results, "scribbles") + "\n",
    ]


def _per_structure_table(results: dict[str, Any], slices: str = "protocol") -> str:
    """Dice whole volume / unpainted per case, structure, backend and k; below each structure, which backend was
    best at each k (whole-volume Dice) and by how much over the runner-up."""
    rows = [r for r in results["rows"] if r["slices"] == slices]
    ks = _ks(rows)
    lines = [
        "| case | structure | backend | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|---|---|" + "---|" * len(ks),
    ]
    keys = dict.fromkeys((r["case"], r["structure"]) for r in rows)
    for case, structure in keys:
        ok = {}
        for backend in _backends(results):
            by_k = {r["k"]: r for r in rows if (r["case"], r["structure"], r["backend"]) == (case, structure, backend)}
            cells = []
            for k in ks:
                r = by_k.get(k)
                if r is not None and r["status"] == "ok":
                    ok[backend, k] = r["dice"]
                    cells.append(f"{_num(r['dice'])} / {_num(r['dice_unpainted'])}")
                else:
                    cells.append(NOT_AVAILABLE)
            lines.append(f"| {case} | {structure} | {backend} | " + " | ".join(cells) + " |")
        best = [_best_of({b: d for (b, kk), d in ok.items() if kk == k}) for k in ks]
        lines.append(f"| {case} | {structure} | **best of** | " + " | ".join(best) + " |")
    return "\n".join(lines)


def _best_of(dice_by_backend: dict[str, float]) -> str:
    if not dice_by_backend:
        return NOT_AVAILABLE
    ranked = sorted(dice_by_backend.items(), key=lambda item: -item[1])
    name, value = ranked[0]
    margin = f" (+{value - ranked[1][1]:.3f})" if len(ranked) > 1 else ""
    return f"{name} {value:.3f}{margin}"


def summary(results: dict[str, Any]) -> str:
    """The two Dice tables, for the terminal."""
    return (
        "Dice over the whole volume (mean over case × structure):\n"
        + dice_table(results, "dice")
        + "\n\nDice on unpainted slices:\n"
        + dice_table(results, "dice_unpainted")
        + "\n"
        + apply_summary(results.get("apply_rows", []))
    )


def render_markdown(results: dict[str, Any]) -> str:
    """results.md: the setting in one paragraph, then the tables, then every note a reader needs."""
    m, rows, config = results["machine"], results["rows"], results["config"]
    runs = len({r["run_id"] for r in rows})
    failed = len({r["run_id"] for r in rows if r["status"] != "ok"})
    pairs = len({(r["case"], r["structure"]) for r in rows})
    mode = "all structures of a case painted together (multiclass)" if config["multiclass"] else "one structure per run"
    parts = [
        "# fewshot3d bench\n",
        f"`{m['command_line']}` — {m['date']}\n",
        f"{m['platform']}, {m['usable_cpus']} of {m['cpu_count']} CPUs, Python {m['python']}, torch {m['torch']}, "
        f"device **{m['device']}**. {runs} runs ({failed} failed) in {results['elapsed_s'] / 60:.1f} min. "
        f"Cases: {', '.join(config['cases'])}; {pairs} case × structure pairs; {config['axis']} slices painted by "
        f"the GUIDE §5 protocol, {mode}. Dice and HD95 by MONAI.\n",
        "## Dice over the whole volume\n",
        "Mean over case × structure; a gain is the mean of (backend − peer) over the same pairs. Peers: "
        "interpolate (Fill between slices) and pixel-classifier (ilastik's recipe: 3D filter bank and random "
        "forest), in the same run.\n",
        dice_table(results, "dice") + "\n",
        "## Dice on unpainted slices\n",
        dice_table(results, "dice_unpainted") + "\n",
        "## Dice after one correction\n",
        "The unpainted slice where the prediction was most wrong is painted from the reference (as a user "
        "would correct it) and the model re-adapted: whole-volume Dice after that one correction.\n",
        dice_table(results, "dice_corrected") + "\n",
        "## HD95 (mm, median over case × structure)\n",
        _hd95_table(results) + "\n",
        "## Time (s, median over runs) and memory\n",
        "Cold: embed → adapt → segment on a fresh backend; embed is paid once per volume (later runs on the "
        "same volume find it cached). Warm: adapt → segment again with everything cached. Re-adapt: adapt → "
        "segment after one corrected slice (wall time, new encoding included). Cold times include "
        "one-time library loading (ITK's first import takes ~20 s on 2 cores) in the first run only.\n",
        _time_table(results) + "\n",
        encoder_line(results.get("encoder")),
        stride_line(results.get("stride")),
    ]
    if any(r["slices"] == "random" for r in rows):
        seeds = ", ".join(str(s) for s in config["random_seeds"])
        parts += [f"## Random painted slices (seeds {seeds}; mean over seeds too)\n", "Whole volume:\n"]
        parts += [dice_table(results, "dice", "random") + "\n", "Unpainted slices:\n"]
        parts += [dice_table(results, "dice_unpainted", "random") + "\n"]
    if any(r["slices"] == "scribbles" for r in rows):
        parts += _scribble_section(results)
    parts += ["## Per structure (Dice whole volume / unpainted slices)\n", _per_structure_table(results) + "\n"]
    parts += [apply_table(results.get("apply_rows", []))]
    parts += ["## Notes\n", "\n".join(f"- {note}" for note in _notes(results)) + "\n"]
    return "\n".join(parts)


def encoder_line(record: dict[str, Any] | None) -> str:
    """The encoder's runtime against plain fp32, measured on the same slices in this run (none: no encoder)."""
    if not record:
        return ""
    return (
        f"Image encoder ({record['backend']}, {record['device']}): **{record['runtime']} "
        f"{record['seconds_per_slice']:.2f} s per slice** against {record['reference']} "
        f"{record['reference_seconds_per_slice']:.2f} s (**{record['speedup']:.2f}x**), decoded masks Dice "
        f"{record['mask_dice_vs_reference']:.3f} against the reference's, on {len(record['slices'])} slices of "
        f"{record['case']}.\n"
    )


def _notes(results: dict[str, Any]) -> list[str]:
    rows = results["rows"]
    notes = [f"{NOT_AVAILABLE} = not available: every run of that cell failed; its error is in results.json."]
    if any(r["backend"] == BASELINE and r["status"] != "ok" and r["k"] == 1 for r in rows):
        notes.append(
            f"{BASELINE} needs 2 painted slices per structure, so at k=1 it fails and is shown as {NOT_AVAILABLE}: "
            "with one slice there is nothing to fill between, its output would be that painted slice alone."
        )
    failures: dict[tuple, list[str]] = {}
    for r in rows:
        if r["status"] != "ok":
            failures.setdefault((r["backend"], r["k"], r["slices"]), []).append(r["error"])
    for (backend, k, slices), errors in failures.items():
        notes.append(f"{backend} k={k} ({slices} slices): {len(errors)} failed, e.g. {errors[0]}")
    empty = [r for r in rows if r["status"] == "ok" and r["hd95_mm"] is None]
    if empty:
        notes.append(f"{len(empty)} successful runs predicted nothing for a structure: HD95 undefined, null in JSON.")
    if any(r.get("warm_matches_cold") is False for r in rows):
        notes.append("some warm runs gave a different mask from their cold run (nondeterministic backend).")
    methods = {r["rss_method"] for r in rows if r.get("rss_method")}
    notes.append(
        f"peak RSS: whole process during one run (libraries included), measured by {', '.join(sorted(methods))}; "
        "the rise is that peak minus the RSS when the run began."
    )
    return notes + list(results["notes"])


# ----------------------------------------------------------------------------- plots


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend, Agg for PNG

    return Figure(figsize=(width, height), layout="constrained")


def plot_dice_vs_k(results: dict[str, Any], path: Path) -> None:
    """Mean Dice against k per backend (whole volume and unpainted slices), each case × structure faint."""
    rows = [r for r in results["rows"] if r["slices"] == "protocol"]
    ks = _ks(rows)
    fig = _figure(10, 4.2)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, metric, title in zip(axes, ("dice", "dice_unpainted"), ("whole volume", "unpainted slices"), strict=True):
        for i, backend in enumerate(_backends(results)):
            color = f"C{i}"
            points = [
                (r["k"], r[metric]) for r in _select(rows, backend) if r["status"] == "ok" and r[metric] is not None
            ]
            if points:
                offset = (i - (len(_backends(results)) - 1) / 2) * 0.08
                ax.scatter([k + offset for k, _ in points], [d for _, d in points], color=color, alpha=0.25, s=12)
            means = [(k, mean_metric(rows, backend, k, metric)[0]) for k in ks]
            means = [(k, d) for k, d in means if d is not None]
            if means:
                ax.plot(*zip(*means, strict=True), marker="o", color=color, label=backend)
            failed = [k for k in ks if mean_metric(rows, backend, k, metric)[0] is None and _select(rows, backend, k)]
            if failed:  # a cell with no result is shown as such, not silently left out
                ax.scatter(failed, [0.01] * len(failed), marker="x", color=color, s=40, clip_on=False)
                for k in failed:
                    offset = (4, 4 + 10 * i)
                    ax.annotate(
                        f"{backend}: failed", (k, 0.01), offset, textcoords="offset points", fontsize=7, color=color
                    )
        ax.set(title=f"Dice, {title}", xlabel="painted slices per structure (k)", xticks=ks, ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice (mean line; dots: case × structure)")
    axes[0].legend(loc="lower right")
    fig.savefig(path, dpi=110)


def plot_time_split(results: dict[str, Any], path: Path) -> None:
    """Median seconds per stage and backend, cold (embed + adapt + segment) and warm (adapt + segment)."""
    backends = _backends(results)
    fig = _figure(9, 1.4 + 1.1 * len(backends))
    ax = fig.subplots()
    labels, y = [], 0
    colors = {"embed": "C0", "adapt": "C1", "segment": "C2"}
    used: set[str] = set()
    for backend in backends:
        stats = run_stats(results["rows"], backend)
        for phase, stages in (("cold", STAGES), ("warm", WARM_STAGES)):
            left = 0.0
            for key, stage in stages:
                width = stats[key] or 0.0
                ax.barh(y, width, left=left, height=0.6, color=colors[stage], label=None if stage in used else stage)
                used.add(stage)
                left += width
            ax.text(left, y, f" {left:.2f} s", va="center", fontsize=8)
            labels.append(f"{backend} ({phase})")
            y += 1
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(xlabel="seconds (median over runs; embed: first run on each volume)", title="Where the time goes")
    ax.margins(x=0.15)
    fig.legend(loc="outside right upper")
    fig.savefig(path, dpi=110)
