"""The papers' tables and figures, and a one-page report of their claims, from the results tables.

Split by job, and the imports point one way (inputs <- tables <- drawings; claims; writer uses all):

- :mod:`~replication.report.inputs`: reading and checking the input tables and run records;
- :mod:`~replication.report.tables`: PLE Table 5 and MMoE Tables 1-2, and their Markdown and LaTeX;
- :mod:`~replication.report.drawings`: what each figure shows and its caption (drawing is
  :mod:`replication.figures`);
- :mod:`~replication.report.claims`: the papers' claims and their verdicts (:func:`verdict_lines`);
- :mod:`~replication.report.writer`: the files and ``REPORT.md`` (:func:`write_report`, what the
  ``figures`` command runs).

The names below are re-exported so that ``from replication.report import write_report`` and
``report.<name>`` keep working.
"""

from replication.report.claims import claims_table, judged, verdict_lines
from replication.report.drawings import (
    CURVE_CORRELATIONS, CURVE_MODELS, PLE_SYNTHETIC_SIZE, SEESAW_SCATTER_MAX, Drawing, curves_figure, expert_usage,
    experts_figure, fig7_bars, fig7_figure, loss_by_correlation, loss_figure, mean_curves, seesaw_figure,
    seesaw_points, synthetic_experts_figure, training_curves,
)
from replication.report.inputs import (
    CENSUS_COLUMNS, COMPARISON_COLUMNS, OPTIONS, SWEEP_COLUMNS, TABLE_INPUTS, Inputs, SyntheticSize, TableInput,
    check_agree, load_inputs, load_synthetic_records, load_synthetic_size, read_table, reference_model,
)
from replication.report.tables import (
    Table, best_run_table, best_runs, latex_escape, latex_table, markdown_table, table5, wide,
)
from replication.report.writer import (
    ARTIFACTS, DPI, Artifact, figure_bytes, link_targets, report_markdown, save_drawing, save_figure, write_report,
    write_table,
)

__all__ = [
    "ARTIFACTS", "Artifact", "CENSUS_COLUMNS", "COMPARISON_COLUMNS", "CURVE_CORRELATIONS", "CURVE_MODELS", "DPI",
    "Drawing", "Inputs", "OPTIONS", "PLE_SYNTHETIC_SIZE", "SEESAW_SCATTER_MAX", "SWEEP_COLUMNS", "SyntheticSize",
    "TABLE_INPUTS", "Table", "TableInput", "best_run_table", "best_runs", "claims_table", "check_agree",
    "curves_figure", "expert_usage", "experts_figure", "fig7_bars", "fig7_figure", "figure_bytes", "latex_escape",
    "latex_table", "link_targets", "load_inputs", "load_synthetic_records", "load_synthetic_size",
    "loss_by_correlation", "loss_figure", "markdown_table", "mean_curves", "read_table", "reference_model",
    "report_markdown", "save_drawing", "save_figure", "seesaw_figure", "seesaw_points", "synthetic_experts_figure",
    "table5", "training_curves", "judged", "verdict_lines", "wide", "write_report", "write_table",
]
