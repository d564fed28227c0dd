"""Writes the report: every table and figure the inputs allow (tables as CSV, Markdown and LaTeX;
figures as PNG and PDF, each file atomically and without timestamps, so the same inputs give the
same bytes) and ``REPORT.md`` (protocol, environment, the claims' verdicts, then every artifact).

A figure these inputs draw exactly as another report already did (the zoo's report and the default one
share the synthetic sweep) can be linked instead of written again: ``link`` names it, ``link_from`` the
folder that holds it, and REPORT.md points there. The link is checked: the file there must be, byte for
byte, the PNG these inputs draw.
"""

from __future__ import annotations

import io
import os
import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd
from matplotlib.figure import Figure

from replication import figures
from replication.aggregate import check_protocol
from replication.compare import ALPHA
from replication.config import ConfigError
from replication.io import atomic_open, write_text
from replication.progress import log
from replication.provenance import git_commit, package_versions
from replication.report.claims import claims_table, judged, verdict_lines
from replication.report.drawings import (
    Drawing, curves_figure, experts_figure, fig7_figure, loss_figure, seesaw_figure, synthetic_experts_figure,
)
from replication.report.headline import headline_markdown
from replication.report.inputs import (
    OPTIONS, Inputs, count_range, load_inputs, metric_of, reference_model, seed_count, sweep_reference, tasks_of,
)
from replication.report.tables import Table, best_run_table, latex_table, markdown_table, table5
from replication.verdicts import Settings


DPI = 200

# Where an artifact a report leaves out is made instead (the default pipeline's report has no Table 2).
WHERE_ELSE = {"group2_records": " (`make reproduce-zoo` trains that task group and writes the table into "
                                "paper_figures/zoo/)"}


@dataclass(frozen=True)
class Artifact:
    """One table or figure: the input it needs (an ``Inputs`` field; without it the artifact is skipped)
    and how it is built from the inputs (from that one, and from any optional one it reads)."""

    name: str
    needs: str
    build: Callable[[Inputs], Table | Drawing]


ARTIFACTS = (
    Artifact("PLE Table 5 (census)", "census", lambda i: table5(i.census)),
    Artifact("MMoE Table 1/2 (best run)", "records", lambda i: best_run_table(i.records)),
    Artifact("MMoE Table 2 (best run, education-marital)", "group2_records", lambda i: best_run_table(i.group2_records)),
    Artifact("PLE Fig. 3 (seesaw)", "census", lambda i: seesaw_figure(i.census)),
    Artifact("PLE Fig. 7 (MTL gain by correlation)", "sweep", lambda i: fig7_figure(i.sweep, i.synthetic_size)),
    Artifact("MMoE Figs. 3-4 (loss by correlation)", "sweep", lambda i: loss_figure(i.sweep)),
    Artifact("MMoE Fig. 4 (training curves)", "synthetic_records", lambda i: curves_figure(i.synthetic_records)),
    Artifact("PLE Fig. 8 (expert utilization)", "experts", lambda i: experts_figure(i.experts)),
    Artifact("PLE Fig. 8 (expert utilization, synthetic)", "synthetic_experts",
             lambda i: synthetic_experts_figure(i.synthetic_experts)),
)
SAVE_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """The figure as a ``fmt`` file (``png`` at ``DPI``, or ``pdf``), without timestamps: the same
    figure gives the same bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=DPI, metadata=SAVE_METADATA[fmt])
    return buffer.getvalue()


def save_figure(figure: Figure, out_dir: Path, stem: str) -> list[Path]:
    """``stem.png`` (at ``DPI``) and ``stem.pdf``, each written to a temporary file and renamed into place."""
    paths = []
    for fmt in SAVE_METADATA:
        path = Path(out_dir) / f"{stem}.{fmt}"
        with atomic_open(path, "wb") as handle:
            handle.write(figure_bytes(figure, fmt))
        paths.append(path)
    return paths


def drawing_files(drawing: Drawing) -> list[str]:
    """The names of the files :func:`save_drawing` writes for ``drawing``."""
    return [f"{drawing.stem}.{fmt}" for fmt in SAVE_METADATA] + ([] if drawing.data is None else [f"{drawing.stem}.csv"])


def link_targets(made: Sequence[Table | Drawing], out_dir: Path, link_from: Path | None,
                 link: Sequence[str]) -> dict[str, str]:
    """For each figure stem in ``link``: the folder, relative to ``out_dir``, whose files REPORT.md links
    to instead of writing copies. Refused unless ``link_from`` holds every file of the figure and its
    PNG is byte for byte the one these inputs draw (a link never shows another figure than ours)."""
    if not link:
        return {}
    if link_from is None:
        raise ConfigError("--link names figures to link from another report's folder; name that folder with --link-from")
    drawings = {item.stem: item for item in made if isinstance(item, Drawing)}
    unknown = [stem for stem in link if stem not in drawings]
    if unknown:
        raise ConfigError(f"--link {', '.join(unknown)}: not a figure these inputs draw (they draw "
                          f"{', '.join(drawings) or 'none'})")
    for stem in link:
        missing = [name for name in drawing_files(drawings[stem]) if not (Path(link_from) / name).is_file()]
        if missing or (Path(link_from) / f"{stem}.png").read_bytes() != figure_bytes(drawings[stem].figure, "png"):
            what = f"lacks {', '.join(missing)}" if missing else f"holds another {stem}.png than these inputs draw"
            raise ConfigError(f"--link-from {link_from} {what}; write that report first from the same inputs "
                              f"(`dvc repro figures`) or leave --link {stem} out")
    folder = Path(os.path.relpath(Path(link_from).resolve(), Path(out_dir).resolve())).as_posix()
    return dict.fromkeys(link, folder + "/")


def save_drawing(drawing: Drawing, out_dir: Path) -> list[Path]:
    """The figure (PNG and PDF) and, if the drawing has one, its data as ``stem.csv``."""
    paths = save_figure(drawing.figure, out_dir, drawing.stem)
    if drawing.data is not None:
        paths.append(Path(out_dir) / drawing_files(drawing)[-1])
        write_text(paths[-1], drawing.data.to_csv(index=False, float_format="%.6g"))
    return paths


def write_table(table: Table, out_dir: Path) -> list[Path]:
    """``stem.csv`` (the numbers), ``stem.md`` and ``stem.tex`` (the display)."""
    texts = {
        "csv": table.values.to_csv(index=False, float_format="%.6g"),
        "md": f"# {table.caption}\n\nGenerated by `python -m replication figures`; do not edit.\n\n{markdown_table(table)}",
        "tex": latex_table(table),
    }
    for suffix, text in texts.items():
        write_text(Path(out_dir) / f"{table.stem}.{suffix}", text)
    return [Path(out_dir) / f"{table.stem}.{suffix}" for suffix in texts]


def protocol_lines(inputs: Inputs) -> list[str]:
    """What the runs were: seeds, split seed and data hash, from the tables and (if given) the records."""
    lines = []
    if inputs.census is not None:
        census = inputs.census
        lines.append(f"- Census ({inputs.paths['census']}): {census['model'].nunique()} models, "
                     f"{seed_count(census)} seeds each (seeds {_seed_lists(census)}), tasks {', '.join(tasks_of(census))}, "
                     f"test {metric_of(census)}; MTL gain against {reference_model(census)}, paired by seed.")
    if inputs.records is not None:
        p = check_protocol(inputs.records)
        lines.append(f"- Run records ({inputs.paths['records']}): {len(inputs.records)} runs of {p['dataset']} "
                     f"{p['task_group']}, split seed {p['split_seed']}, processed data {p['data_hash'][:12]}.")
    elif inputs.census is not None:
        lines.append("- Split seed and processed-data hash: in the run records, not in the census table (pass --runs).")
    if inputs.group2_records is not None:
        p = check_protocol(inputs.group2_records)
        lines.append(f"- Second task group's run records ({inputs.paths['group2_records']}): {len(inputs.group2_records)} "
                     f"runs of {p['dataset']} {p['task_group']}, {count_range(pd.DataFrame(inputs.group2_records).groupby('model')['seed'].nunique())} seeds "
                     f"each, split seed {p['split_seed']}, processed data {p['data_hash'][:12]}.")
    if inputs.sweep is not None:
        sweep = inputs.sweep
        lines.append(f"- Synthetic sweep ({inputs.paths['sweep']}): correlations "
                     f"{', '.join(f'{p:g}' for p in sorted(set(sweep['correlation'])))}; models "
                     f"{', '.join(figures.ordered_models(sweep['model']))}; {seed_count(sweep)} seeds "
                     f"(seeds {_seed_lists(sweep)}); test {metric_of(sweep)}, gains against {sweep_reference(sweep)}.")
    if inputs.synthetic_records is not None:
        runs = inputs.synthetic_records
        epochs = [len(r.get("history") or ()) for r in runs]
        lines.append(f"- Synthetic run records ({inputs.paths['synthetic_records']}): {len(runs)} runs, correlations "
                     f"{', '.join(f'{p:g}' for p in sorted({r['correlation'] for r in runs}))}; models "
                     f"{', '.join(figures.ordered_models([r['model'] for r in runs]))}; epochs trained "
                     f"{min(epochs)}-{max(epochs)} (early stopping on validation MSE).")
    if inputs.synthetic_size is not None:
        lines.append(f"- Synthetic data ({inputs.paths['synthetic_size']}): {inputs.synthetic_size} in every data set "
                     "(their schema.json; the runs' data hashes among them).")
    for name, what in (("experts", "Expert utilization"), ("synthetic_experts", "Expert utilization on synthetic data")):
        experts = getattr(inputs, name)
        if experts is not None:
            lines.append(f"- {what} ({inputs.paths[name]}): models {', '.join(figures.ordered_models(experts['model']))}, "
                         f"seeds {' '.join(map(str, sorted(set(experts['seed']))))}.")
    lines.append(f"- Model selection on validation only; `significant` = Holm-adjusted paired t-test p < {ALPHA}.")
    return lines


def _seed_lists(table: pd.DataFrame) -> str:
    return "; ".join(sorted(set(table["seeds"].astype(str))))


def environment_lines(records: list[dict] | None) -> list[str]:
    """The hardware and commit of the runs (from their records), else of the machine writing the report."""
    if records:
        def count(key: Callable[[dict], str]) -> str:
            return "; ".join(f"{value} ({n} runs)" for value, n in Counter(key(r) for r in records).most_common())
        return [f"- Runs trained on: {count(lambda r: r['environment']['device'])}.",
                f"- Commit of the runs: {count(lambda r: r['environment']['git_commit'])}.",
                f"- Software of the runs: {count(lambda r: _versions(r['environment']['versions']))}."]
    return ["- The runs' hardware and commit are in their records (pass --runs); this report was written on "
            f"{platform.platform()} ({platform.machine()}), commit {git_commit()}, {_versions(package_versions())}."]


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {versions[k]}" for k in ("python", "torch", "numpy", "pandas") if k in versions)


def report_markdown(inputs: Inputs, made: list[tuple[str, Table | Drawing]], skipped: list[str],
                    links: Mapping[str, str] | None = None, settings: Settings = Settings(),
                    claims: tuple[list, pd.DataFrame] | None = None) -> str:
    """REPORT.md: protocol, environment, the claims' verdicts, then every table and figure (``made``:
    title and item) and what was not produced. ``links``: figure stem -> the folder (relative, ending
    in ``/``) whose files are linked instead of this folder's (:func:`link_targets`). ``claims``: the
    judged claims and flagged runs (:func:`replication.report.claims.judged`), judged here if None."""
    links = links or {}
    results, flagged = claims if claims is not None else judged(inputs, settings)
    sources = ", ".join(f"`{path}`" for path in inputs.paths.values())
    lines = [
        "# Replication report: PLE (RecSys 2020) and its baselines",
        "",
        f"Generated by `python -m replication figures` from {sources}; do not edit. Every number below is read "
        "from those files; the papers' values appear only where labelled as the paper's.",
        "",
        "## Protocol",
        "",
        *protocol_lines(inputs),
        "",
        "## Environment",
        "",
        *environment_lines(inputs.records),
        "",
        "## The papers' claims",
        "",
        *verdict_lines(inputs, settings, results, flagged),
        "",
        "Every claim as a table: [claims.csv](claims.csv).",
    ]
    for title, item in made:
        lines += ["", f"## {title}", "", item.caption, ""]
        if isinstance(item, Table):
            lines += [markdown_table(item), f"Files: [{item.stem}.csv]({item.stem}.csv), [{item.stem}.md]({item.stem}.md), "
                      f"[{item.stem}.tex]({item.stem}.tex)."]
        else:
            where = links.get(item.stem, "")
            data = "" if item.data is None else f", [{item.stem}.csv]({where}{item.stem}.csv) (the numbers drawn)"
            linked = (f" Linked, not copied: these inputs draw the same figure as `{where}{item.stem}.png` "
                      "(checked byte for byte).") if where else ""
            lines += [f"![{item.stem}]({where}{item.stem}.png)", "", f"Files: [{item.stem}.png]({where}{item.stem}.png), "
                      f"[{item.stem}.pdf]({where}{item.stem}.pdf){data}.{linked}"]
    if skipped:
        lines += ["", "## Not produced", "", *[f"- {s}" for s in skipped]]
    return "\n".join(lines).rstrip() + "\n"


def write_report(out_dir: Path, census: Path | None = None, census_stats: Path | None = None,
                 experts: Path | None = None, sweep: Path | None = None, runs: Sequence[Path] = (),
                 synthetic_runs: Path | None = None, group2_runs: Sequence[Path] = (),
                 synthetic_experts: Path | None = None, synthetic_data: Path | None = None,
                 link_from: Path | None = None, link: Sequence[str] = (), settings: Settings = Settings()) -> list[Path]:
    """Every table and figure the given inputs allow, and ``REPORT.md``, into ``out_dir``; returns the
    paths written. The figures named in ``link`` are not written but linked from ``link_from``
    (:func:`link_targets`). Inputs and links are all checked before anything is written."""
    inputs = load_inputs(census, census_stats, experts, sweep, runs, synthetic_runs, group2_runs, synthetic_experts,
                         synthetic_data)
    made, skipped, written = [], [], []
    for artifact in ARTIFACTS:
        if getattr(inputs, artifact.needs) is None:
            skipped.append(f"{artifact.name}: {OPTIONS[artifact.needs]} not given{WHERE_ELSE.get(artifact.needs, '')}")
            log(f"skipping {skipped[-1]}")
            continue
        made.append((artifact.name, artifact.build(inputs)))
    links = link_targets([item for _, item in made], out_dir, link_from, link)
    for _, item in made:
        if item.stem in links:
            continue
        written += write_table(item, out_dir) if isinstance(item, Table) else save_drawing(item, out_dir)
    claims = judged(inputs, settings)
    claims_file = Path(out_dir) / "claims.csv"
    claims_csv = claims_table(claims[0]).to_csv(index=False, float_format="%.6g")
    write_text(claims_file, claims_csv)
    report = Path(out_dir) / "REPORT.md"
    write_text(report, report_markdown(inputs, made, skipped, links, settings, claims))
    headline = Path(out_dir) / "HEADLINE.md"
    # From the CSV as written, so that the headline is exactly what the committed claims.csv gives.
    write_text(headline, headline_markdown(inputs.census, pd.read_csv(io.StringIO(claims_csv))))
    written += [claims_file, report, headline]
    log(f"wrote {len(written)} files to {out_dir}: {', '.join(p.name for p in written)}"
        + (f"; linked {', '.join(links)} from {link_from}" if links else ""))
    return written
