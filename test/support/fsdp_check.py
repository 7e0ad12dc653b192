"""The FSDP check of `make verify-policy` (test/integration/real-policy.test.ts): one batch, the same
parent, one full update in this process and the same update sharded over 2 processes under torchrun
(the trainer worker's SEGFLOW_TRAINER_NPROC path, update_cli.py); prints the largest absolute weight
difference as JSON. Reads {"batch": ArtifactRef, "policy": PolicyRef, "hyperparameters": {...},
"workDir": str} on stdin; the two runs get runIds <runId>-1proc and <runId>-2proc."""

import asyncio
import json
import sys
from pathlib import Path

from safetensors.torch import load_file

from segflow_trainer.settings import load_settings
from segflow_trainer.store import Store
from segflow_trainer.update import fetch_policy, update_policy
from segflow_trainer.update_cli import run_sharded_update

args = json.load(sys.stdin)
store = Store(load_settings().s3)
work = Path(args["workDir"])
hp = args["hyperparameters"]
one = update_policy(store, args["batch"], args["policy"], {**hp, "runId": hp["runId"] + "-1proc"}, work / "one")
two = asyncio.run(run_sharded_update(2, args["batch"], args["policy"], {**hp, "runId": hp["runId"] + "-2proc"}, work / "two"))
a = load_file(fetch_policy(store, one["policy"]["uri"], work / "read") / "model.safetensors")
b = load_file(fetch_policy(store, two["policy"]["uri"], work / "read") / "model.safetensors")
assert a.keys() == b.keys(), "the two versions hold different tensors"
diff = max(float((a[k] - b[k]).abs().max()) for k in a)
print(json.dumps({"fsdpMaxWeightDiff": diff, "tensors": len(a), "updates": one["metrics"]["updates"]}))
