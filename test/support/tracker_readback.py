"""Reads what the experiment tracker wrote back through each tracker's own reader, as JSON on stdout
(run with .venv/trackers/bin/python, scripts/setup-trackers.sh):

  tracker_readback.py mlflow URI EXPERIMENT RUN_ID   → {"runs": n, "metrics": {key: [[step, value], …]}}
      MlflowClient: the runs tagged segflow.run_id = RUN_ID, and the full history of every metric of
      the first one (every logged value, duplicates included).
  tracker_readback.py tensorboard LOGDIR             → {"metrics": {key: [[step, value], …]}}
      TensorBoard's EventAccumulator over the run's log dir (every event file in it).
"""

import json
import sys


def mlflow_history(uri: str, experiment: str, run_id: str) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {"runs": 0, "metrics": {}}
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`segflow.run_id` = '{run_id}'")
    if not runs:
        return {"runs": 0, "metrics": {}}
    run = runs[0]
    metrics = {
        key: sorted([m.step, m.value] for m in client.get_metric_history(run.info.run_id, key))
        for key in run.data.metrics
    }
    return {"runs": len(runs), "name": run.info.run_name, "tags": run.data.tags, "metrics": metrics}


def tensorboard_scalars(logdir: str) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    return {
        "metrics": {
            tag: sorted([e.step, e.value] for e in acc.Scalars(tag)) for tag in acc.Tags().get("scalars", [])
        }
    }


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    out = mlflow_history(*args) if kind == "mlflow" else tensorboard_scalars(*args)
    json.dump(out, sys.stdout)
