"""The warm-up's candidates (nano/policy_sft.py `train_candidates`): each trained once per code, data,
steps and threads, so `make demo`'s two are reused by `make test`'s four; anything else is trained
again. The child process that trains a candidate is replaced by one that writes its warmup.json."""
import argparse
import json
import os

import pytest

from nano import policy_sft as sft

SCORES = {0: 0.28, 1000: 0.29, 2000: 0.27, 3000: 0.31}


@pytest.fixture
def trained(monkeypatch, tmp_path):
    """A data dir with a nano-setup stamp, and the seeds each call trained (fake children)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.json").write_text("{}")
    (data / ".stamp").write_text("world-hash-seed0")
    calls: list[list[int]] = []

    def child(cmd, log_path):
        seed, out = int(cmd[cmd.index("--seed") + 1]), cmd[cmd.index("--out") + 1]
        calls[-1].append(seed)
        os.makedirs(out)
        json.dump({"seed": seed, "validation": {"score": SCORES[seed]}}, open(f"{out}/warmup.json", "w"))
        open(f"{out}/weights.bin", "w").write(f"seed {seed}")
        open(log_path, "w").write("trained")
        return 0

    monkeypatch.setattr(sft, "run_candidate", child)

    def run(candidates: int, steps: int = 2000, threads: int = 1) -> dict:
        calls.append([])
        a = argparse.Namespace(data=str(data), out=str(tmp_path / "v0"), seed=0, steps=steps,
                               candidates=candidates, jobs=2, threads=threads)
        return sft.train_candidates(a)

    return run, calls, tmp_path, data


def test_two_candidates_then_four_train_each_seed_once(trained):
    run, calls, tmp, _ = trained
    r = run(2)
    assert sorted(calls[-1]) == [0, 1000] and r["kept"] == 1000
    assert open(tmp / "v0" / "weights.bin").read() == "seed 1000"
    assert not (tmp / "v0" / ".key").exists()
    r = run(4)
    assert sorted(calls[-1]) == [2000, 3000], "seeds 0 and 1000 were trained again"
    assert r["kept"] == 3000 and set(r["scores"]) == {"0", "1000", "2000", "3000"}
    assert open(tmp / "v0" / "weights.bin").read() == "seed 3000"
    sel = json.load(open(tmp / "v0.candidates" / "selection.json"))
    assert sel["kept"] == 3000 and len(sel["candidates"]) == 4
    r = run(2)
    assert calls[-1] == [] and r["kept"] == 1000, "going back to two chooses among those two only"


def test_other_steps_threads_data_kernels_or_code_train_again(trained, monkeypatch):
    run, calls, _, data = trained
    run(2)
    run(2, steps=1000)
    assert sorted(calls[-1]) == [0, 1000]
    run(2, steps=1000, threads=2)
    assert sorted(calls[-1]) == [0, 1000]
    (data / ".stamp").write_text("world-hash-seed1")
    run(2, steps=1000, threads=2)
    assert sorted(calls[-1]) == [0, 1000]
    run(2, steps=1000, threads=2)
    assert calls[-1] == []
    # another machine's kernels sum in another order (a setting other than the one this run has:
    # the portability runs set AVX2 themselves)
    other = "SSE41" if os.environ.get("ONEDNN_MAX_CPU_ISA") == "AVX2" else "AVX2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", other)
    run(2, steps=1000, threads=2)
    assert sorted(calls[-1]) == [0, 1000]
    monkeypatch.setattr(sft, "CANDIDATE_INPUTS", ("policy_model.py", "policy_sft.py", "world.py"))
    run(2, steps=1000, threads=2)
    assert sorted(calls[-1]) == [0, 1000], "a change in the code a candidate comes from must train it again"


def test_an_unfinished_or_unstamped_candidate_is_trained_again(trained):
    run, calls, tmp, data = trained
    run(2)
    os.remove(tmp / "v0.candidates" / "seed0" / "warmup.json")  # killed before it finished
    run(2)
    assert calls[-1] == [0]
    os.remove(data / ".stamp")  # data made by hand: nothing is known about it, nothing is reused
    run(2)
    assert sorted(calls[-1]) == [0, 1000]


def test_a_failed_candidate_stops_with_its_log(trained, monkeypatch):
    run, _, tmp, _ = trained

    def failing(cmd, log_path):
        open(log_path, "w").write("RuntimeError: out of memory")
        return 137

    monkeypatch.setattr(sft, "run_candidate", failing)
    with pytest.raises(SystemExit, match=r"(?s)candidate seed 0 failed \(exit 137\).*out of memory"):
        run(2)
