"""MLflow tracking and registry for the workbench: one experiment, one registered model.

Runs of the experiment ``pos-recommendations`` carry the tag ``workbench.kind``:

* ``pipeline``: the parent run of one `workbench run` (created by the runner or by 03_train);
* ``algorithm``: one trained algorithm (nested under the pipeline run; 04_evaluate adds its
  metrics, named ``<scenario>.<metric>_at_<k>``, e.g. ``customer.ndcg_at_10``);
* ``champion-refit``: the chosen algorithm refitted on all data, the registered champion.

The registered model ``pos-recommender`` has its serving version under the alias ``champion``.

Tracking records runs and registers the chosen model; it never chooses (that is
`workbench.evaluation`'s). By role: `runs` (the experiment, pipeline runs, their owners),
`training` (fitting and logging each algorithm), `metrics` (evaluation metrics on runs, and the
comparison of a pipeline run's algorithms), `registry` (the champion's versions and what is read
back about them), `records` (the files one stage hands the next).
"""

from workbench.tracking.metrics import (
    METRICS,
    SCENARIO_ORDER,
    comparison_table,
    describe_metrics,
    evaluation_metrics,
    last_pipeline_comparison,
    log_evaluation,
    metric_key,
    metrics_by_scenario,
)
from workbench.tracking.records import read_training_runs, write_champion_record, write_training_runs, write_validation_cases
from workbench.tracking.registry import (
    CHAMPION_ALIAS,
    REFIT_TAG,
    REGISTERED_MODEL_NAME,
    TEST_UNCERTAINTY_TAG,
    TEST_WINDOW_TAG,
    NoChampionError,
    champion_figure_tags,
    champion_info,
    legal_entity_alias,
    load_champion,
    load_recommender,
    register_champion,
)
from workbench.tracking.runs import (
    EXPERIMENT_NAME,
    KIND_TAG,
    OWNER_ENV,
    OWNER_TAGS,
    SETTINGS_TAGS,
    configure,
    end_pipeline_run,
    experiment_id,
    mlflow_client,
    owner_tags,
    settle_orphaned_runs,
    start_pipeline_run,
)
from workbench.tracking.training import MODEL_ARTIFACT_NAME, data_snapshot, file_sha256, log_recommender, param_value, train_all, train_and_log

__all__ = [
    "CHAMPION_ALIAS", "EXPERIMENT_NAME", "KIND_TAG", "METRICS", "MODEL_ARTIFACT_NAME", "OWNER_ENV", "OWNER_TAGS",
    "REFIT_TAG", "REGISTERED_MODEL_NAME", "SCENARIO_ORDER", "SETTINGS_TAGS", "TEST_UNCERTAINTY_TAG", "TEST_WINDOW_TAG",
    "NoChampionError", "champion_figure_tags", "champion_info", "comparison_table", "configure",
    "data_snapshot", "describe_metrics", "end_pipeline_run", "evaluation_metrics", "experiment_id", "file_sha256",
    "last_pipeline_comparison", "legal_entity_alias", "load_champion", "load_recommender", "log_evaluation",
    "log_recommender", "metric_key", "metrics_by_scenario", "mlflow_client", "owner_tags", "param_value",
    "read_training_runs", "register_champion", "settle_orphaned_runs", "start_pipeline_run", "train_all",
    "train_and_log", "write_champion_record", "write_training_runs", "write_validation_cases",
]
