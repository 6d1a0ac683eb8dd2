"""Every key of ``st.session_state`` the dashboard uses, in one place.

A page names its widgets and its stored values with these constants (a widget that exists once per
table, preset or upload round has a :class:`KeyFamily`), so that what belongs to a run can be
dropped by name when the run is replaced (:data:`RUN_VIEWS`), never by matching prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyFamily:
    """The keys of a widget that exists once per table, preset or upload round:
    ``KeyFamily("target")("sample:penguins.csv") == "target:sample:penguins.csv"``."""

    prefix: str

    def __call__(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])


# -- what the session holds ----------------------------------------------------------------------
TABLE = "table"  # the LoadedTable the pages work on
SCHEMA = "schema"  # (table source id, its TableSchema, or None when not ready to train)
DATA_PROBLEM = "data_problem"  # (table source id, why the Data page's choices cannot be trained)
INFERRED = "inferred"  # {(source id, target, task, roles): TableSchema}
SET_PREVIEWS = "set_preview"  # {(source id, target, task, SetOptions): SetPreview}
RUN = "run"  # the session's Run
EXPLANATION = "explanation"  # its Explanation or SetExplanation
RUN_ORIGIN = "run_origin"  # (run uid, RunOrigin) for a run opened rather than trained here
TRAIN_JOB = "job"  # the training Job
TRAIN_JOB_ADOPTED = "run_job"  # the training Job whose run became the session's run
OPEN_JOB = "open_job"  # the Job that records an opened run's attention
OPEN_JOB_ADOPTED = "open_job_adopted"  # the opening Job whose run became the session's run
LAST_SETTINGS = "last_settings"  # ((preset, per row), ModelConfig, TrainConfig) of the last run
CONTROL_JOB = "control_job"  # the Job training the control model of the session's run
CONTROL_FOR = "control_for"  # the uid of the run whose control was started (once per run)
CONTROL_CANCEL = "control_cancel"
VERDICTS = "verdicts"  # {(run uid, has a control): (Verdict, note)} of a run on sets
SEEN_RUNS = "seen_runs"  # [(run, its name in words)]: the runs this session had, newest last
SEEN_COUNT = "seen_count"  # how many runs the session has had: each one's number in its name

# -- Data page -----------------------------------------------------------------------------------
SOURCE = "source"
SAMPLE = "sample"
UPLOAD = "upload"
target = KeyFamily("target")  # (source id)
task = KeyFamily("task")  # (source id)
mode = KeyFamily("mode")  # (source id): per row or per group
group_by = KeyFamily("group_by")  # (source id)
order_by = KeyFamily("order_by")  # (source id)
max_set_size = KeyFamily("max_set_size")  # (source id)
roles = KeyFamily("roles")  # (source id, target, task, group key): the roles editor

# -- Train page ----------------------------------------------------------------------------------
PRESET = "preset"
TRAIN_FORM = "train_settings"
TRAIN_CANCEL = "cancel"
TRAIN_CURVES, TRAIN_PREDICTED, TRAIN_CONFUSION, TRAIN_ROC = "t_curves", "t_pred", "t_cm", "t_roc"
TRAIN_TEST = "t_test"  # {(run uid, "test" or "split"): the model's test predictions, targets}
layers = KeyFamily("layers")  # (preset)
budget = KeyFamily("budget")  # (preset)

# -- Open run page -------------------------------------------------------------------------------
OPEN_SOURCE = "o_source"
OPEN_SOURCE_KEPT = "o_source_kept"  # the radio's choice, kept while a job hides the radio
OPEN_ROUND = "o_round"  # bumped after a run is opened: new uploaders, their files freed
OPEN_UPLOADS = "o_uploads"  # file ids of this round's uploads
OPEN_DIR = "o_dir"
OPEN_PENDING = "o_pending"  # (where the run was read from, its OpenedRun or why it was refused)
OPEN_ROWS = "o_rows"
OPEN_CSV = "o_csv"  # (file id, the uploaded rows, their source keys)
OPEN_CHECKED = "o_checked"  # ((run, rows), (rows with a target, trained on them) or why not)
OPEN_RECOMPUTE = "o_recompute"
OPEN_REPLACE = "o_replace"
OPEN_BUTTON = "o_open"
OPEN_CANCEL = "o_cancel"
#: What the page keeps about the run being chosen, dropped once it is opened.
OPEN_CHOICE = (OPEN_PENDING, OPEN_CSV, OPEN_CHECKED, OPEN_REPLACE, OPEN_RECOMPUTE, OPEN_JOB)
open_zip = KeyFamily("o_zip")  # (upload round)
open_csv = KeyFamily("o_csv")  # (upload round)

# -- Explore page: rows ----------------------------------------------------------------------------
LAYER, MAP, ROWS, HEAD, FIT = "x_layer", "x_map", "x_rows", "x_head", "x_fit"
COHORT, COHORT_A, COHORT_B, ROLLOUT_COHORT = "x_cohort", "x_a", "x_b", "x_rcohort"
DIFFERENCE_Q = "x_q"  # the false discovery rate of a difference map
FILTER_COLUMN, FILTER_OP, FILTER_VALUE = "x_fcol", "x_fop", "x_fval"
FILTERS = "x_filters"  # {(run uid, filter name): (AttentionAtlas, cohort key)}
CHECKS = "x_checks"
FIRST_MAP = "x_first"  # (run uid, (layer, map id)): the map Explore opens on, chosen once per run
MAP_TABLE, AGREEMENT_TABLE = "x_maps", "x_agreement"
ABLATIONS = ("heads", "mean", "maps")  # heads zeroed, heads replaced by their mean, maps zeroed
ablation_table = KeyFamily("x_ablation")  # (one of ABLATIONS)
FIGURE, ROLLOUT_FIGURE, HEAD_TABLE = "x_fig", "x_rollout", "x_heads"
IMPORTANCE_FIGURE, DELETION_FIGURE, FAITHFULNESS_TABLE = "x_imp", "x_del", "x_faith"
LAYER_KEPT = "x_layer_kept"  # the layer chosen, kept while the rollout hides the layer menu
GRID_ROUND = "x_grid_round"  # bumped when a click on a small multiple enlarges its head
head_grid = KeyFamily("x_grid")  # (grid round): the small multiples, a click on which enlarges
HEADS_ALL = "x_heads_all"  # the heads table shows every layer and map, not only those in view
ROW_SHOW = "x_row_show"  # which rows the one-row picker lists: one of ROW_LISTS
#: The choices of which rows the one-row picker lists; each list has its own picker.
ROW_LISTS = ("every row", "wrong predictions only", "largest errors first")
row_picker = KeyFamily("x_row")  # (one of ROW_LISTS)
ROW_OUTCOMES = "x_row_outcomes"  # {(run uid, rows listed): the model's outcome on each}
#: The download buttons of the figures, each a standalone HTML page.
FIGURE_HTML, ROLLOUT_HTML = "x_fig_html", "x_rollout_html"
IMPORTANCE_HTML, DELETION_HTML = "x_imp_html", "x_del_html"

# -- Explore page: sets ----------------------------------------------------------------------------
SET_MEASURE, SET_COLUMN, SET_FILTER = "x_s_measure", "x_s_column", "x_s_filter"
SET_LAYER, SET_MAP, SET_HEAD, SET_LABEL = "x_s_layer", "x_s_map", "x_s_head", "x_s_label"
SET_ROWS, SET_FIT = "x_s_rows", "x_s_fit"
SET_SUMMARY_FIGURE, SET_MAP_FIGURE = "x_s_summary", "x_s_map_fig"
SET_BARS, SET_TABLE = "x_s_bars", "x_s_table"
CHOSEN_SET = "x_chosen_set"  # the set shown, kept across pages (the Export page offers it)
SET_MAPS = "x_set_maps"  # {(run uid, set key): SetMaps}, the last few sets recorded
#: The choices of which sets the set picker lists; each list has its own picker.
SET_FILTERS = ("every set", "wrong predictions", "right predictions", "largest errors first")
set_picker = KeyFamily("x_set")  # (one of SET_FILTERS): each list of sets has its picker

# -- Compare page ----------------------------------------------------------------------------------
COMPARE_WITH, COMPARE_Q, COMPARE_BUTTON, COMPARE_MAP = "c_with", "c_q", "c_go", "c_map"
COMPARISONS = "c_results"  # {(uid of the current run, uid of the other, q): Comparison}
COMPARE_METRICS, COMPARE_DIVERGENCE = "c_metrics", "c_divergence"
COMPARE_MAPS_FIGURE, COMPARE_DIFFERENCE_FIGURE = "c_maps_fig", "c_diff_fig"
COMPARE_DIFFERENCE_HTML = "c_diff_html"
COMPARE_IMPORTANCE_FIGURE, COMPARE_IMPORTANCE_TABLE = "c_imp_fig", "c_imp_table"

# -- Export page -----------------------------------------------------------------------------------
EXPORT_FILES = "e_files"  # ((maps, checks, control, stability), {file name: bytes})
EXPORT_SET_FILES = "e_set_files"  # (explanation, {file name: bytes})
EXPORT_SET = "e_set"
EXPORT_ROWS = "e_rows"  # whether the zipped run holds the table's rows
EXPORT_REPORT, EXPORT_RUN, EXPORT_FIGURE = "e_report", "e_run", "e_figure"
EXPORT_NPZ, EXPORT_JSON, EXPORT_CSV, EXPORT_SUMMARY = "e_npz", "e_json", "e_csv", "e_summary"
EXPORT_IMPORTANCE, EXPORT_FAITHFULNESS = "e_importance", "e_faithfulness"
EXPORT_STABILITY = "e_stability"
EXPORT_SETS_CSV, EXPORT_ROWS_CSV, EXPORT_SUMMARY_CSV = "e_sets", "e_srows", "e_ssum"
export_set_maps = KeyFamily("e")  # (file name)

#: What belongs to the session's run, dropped when another run replaces it: its cached views and
#: exports, and the Explore page's choices (the layers, cohorts and rows of one run may not exist
#: in another).
RUN_VIEWS = (
    LAYER,
    MAP,
    ROWS,
    HEAD,
    FIT,
    COHORT,
    COHORT_A,
    COHORT_B,
    DIFFERENCE_Q,
    ROLLOUT_COHORT,
    FILTER_COLUMN,
    FILTER_OP,
    FILTER_VALUE,
    FILTERS,
    CHECKS,
    FIRST_MAP,
    MAP_TABLE,
    *(ablation_table(kind) for kind in ABLATIONS),
    AGREEMENT_TABLE,
    VERDICTS,
    CONTROL_CANCEL,
    FIGURE,
    ROLLOUT_FIGURE,
    HEAD_TABLE,
    LAYER_KEPT,
    GRID_ROUND,
    HEADS_ALL,
    ROW_SHOW,
    *(row_picker(how) for how in ROW_LISTS),
    ROW_OUTCOMES,
    FIGURE_HTML,
    ROLLOUT_HTML,
    IMPORTANCE_HTML,
    DELETION_HTML,
    IMPORTANCE_FIGURE,
    DELETION_FIGURE,
    FAITHFULNESS_TABLE,
    SET_MEASURE,
    SET_COLUMN,
    SET_FILTER,
    SET_LAYER,
    SET_MAP,
    SET_HEAD,
    SET_LABEL,
    SET_ROWS,
    SET_FIT,
    SET_SUMMARY_FIGURE,
    SET_MAP_FIGURE,
    SET_BARS,
    SET_TABLE,
    CHOSEN_SET,
    SET_MAPS,
    *(set_picker(how) for how in SET_FILTERS),
    EXPORT_FILES,
    EXPORT_SET_FILES,
    EXPORT_SET,
    COMPARE_WITH,
    COMPARE_MAP,
)
