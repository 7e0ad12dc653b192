"""One `update_policy` call outside Temporal, for the real-vLLM test (test/integration/real-policy.test.ts):
reads {"batch": ArtifactRef, "policy": PolicyRef, "hyperparameters": {...}, "workDir": str} as JSON on
stdin, prints update_policy's result as JSON on stdout. Same code path as the trainer worker's activity."""

import json
import sys
from pathlib import Path

from segflow_trainer.settings import load_settings
from segflow_trainer.store import Store
from segflow_trainer.update import update_policy

args = json.load(sys.stdin)
result = update_policy(Store(load_settings().s3), args["batch"], args["policy"], args["hyperparameters"], Path(args["workDir"]))
print(json.dumps(result))
