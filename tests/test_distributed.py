"""Several processes on torch.distributed (gloo, 2 processes on this CPU) compute what
one does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import distributed_worker as worker
import pytest
import torch
from safetensors.torch import load_file

from steerlib import cores, distributed

pytestmark = pytest.mark.slow  # every test here starts torchrun or other processes

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "distributed_worker.py")


LAUNCHERS = {
    "torchrun": lambda n: [
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
    ],
    "workers": lambda n: [  # what --workers runs (steerlib.launch)
        "-c",
        (
            f"import sys; from steerlib import launch; "
            f"sys.exit(launch.run_workers({n}, sys.argv[1:]))"
        ),
    ],
}
"""Two ways to start n processes: the torchrun a user types, and steerlib's own."""


def _torchrun_cmd(args, n=2, env=None, launcher="torchrun"):
    cmd = [sys.executable, *LAUNCHERS[launcher](n), *args]
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    return cmd, env


def torchrun(args, n=2, env=None, timeout=600, launcher="torchrun"):
    """``torchrun --standalone --nproc_per_node n ...`` (or ``launch.run_workers``) from
    the repository root; its output on failure."""
    cmd, env = _torchrun_cmd(args, n, env, launcher)
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_shard_and_gather_without_a_process_group():
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.shard([1, 2, 3]) == [1, 2, 3] and distributed.gather([1, 2]) == [
        1,
        2,
    ]


def test_two_processes_train_the_vector_one_process_trains(tmp_path):
    """Each rank takes half of every batch of 4 (answers of different lengths, so its
    share of the mean differs from a half); the summed gradients give the same steps."""
    single, single_losses = worker.train()
    torchrun([WORKER, "train", str(tmp_path / "two.safetensors"), "-", "-"])
    two = load_file(tmp_path / "two.safetensors")
    assert torch.allclose(two["vector"], single, atol=1e-5)
    assert torch.allclose(two["losses"].float(), torch.tensor(single_losses), rtol=1e-4)
    assert not torch.equal(single, torch.zeros_like(single))


def test_two_processes_share_a_validation_score(tmp_path):
    """Each rank answers its half of enough validation questions (not all of them, as
    before: under --workers every rank repeated the whole score), and both get the
    score one process computes."""
    rounds = 3  # 36 jobs: 18 a rank, at least distributed.FEW_ROWS
    single = worker.validate(rounds)
    torchrun([WORKER, "validate", str(tmp_path), str(rounds)])
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["answered"] for r in ranks] == [single["jobs"] // 2] * 2
    assert single["answered"] == single["jobs"]
    assert [r["rate"] for r in ranks] == [single["rate"]] * 2
    assert [r["threads_answering"] for r in ranks] == [1, 1]


def test_a_few_validation_questions_are_answered_by_rank_0_with_both_threads(
    tmp_path,
):
    """12 jobs, 6 a rank (under distributed.FEW_ROWS): rank 0 answers all of them with
    the threads of both one-thread workers (on a machine of at least two cores), rank 1
    none, both get the one-process score, and rank 0 is back to one thread after."""
    single = worker.validate(1)
    torchrun([WORKER, "validate", str(tmp_path), "1"])
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["answered"] for r in ranks] == [single["jobs"], 0]
    assert [r["rate"] for r in ranks] == [single["rate"]] * 2
    assert ranks[0]["threads_answering"] == min(2, cores.usable_cores())
    assert [r["threads_after"] for r in ranks] == [1, 1]


def test_checkpoint_of_two_processes_resumes_in_one(tmp_path):
    """Rank 0's checkpoint after 3 steps of 2 processes; one process finishes the
    run."""
    ckpt = tmp_path / "v.ckpt.safetensors"
    torchrun([WORKER, "train", str(tmp_path / "part.safetensors"), str(ckpt), "3"])
    resumed, losses = worker.train(ckpt)
    single, _single_losses = worker.train()
    assert len(losses) == worker.CONFIG.steps
    assert torch.allclose(resumed, single, atol=1e-5)


def _lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _targets_file(artifacts):
    found = list(Path(artifacts).rglob("targets/both-*.jsonl"))
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """Targets and records made by one process (the reference of the sharded runs)."""
    folder = tmp_path_factory.mktemp("single")
    env = {"STEERLIB_ARTIFACTS": str(folder / "artifacts")}
    subprocess.run(
        [sys.executable, WORKER, "generate", str(folder / "records.jsonl")],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
    )
    return _lines(folder / "records.jsonl"), _lines(_targets_file(folder / "artifacts"))


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_processes_generate_the_files_one_process_makes(
    tmp_path, single_run, launcher
):
    records, targets = single_run
    assert len(records) == 160
    torchrun(
        [WORKER, "generate", str(tmp_path / "records.jsonl")],
        env={"STEERLIB_ARTIFACTS": str(tmp_path / "artifacts")},
        launcher=launcher,
    )
    assert _lines(_targets_file(tmp_path / "artifacts")) == targets
    assert _lines(tmp_path / "records.jsonl") == records


@pytest.mark.parametrize(
    "victim, launcher", [(0, "torchrun"), (1, "torchrun"), (1, "workers")]
)
def test_generation_resumes_after_a_rank_is_killed(
    tmp_path, single_run, victim, launcher
):
    """kill -9 of one rank mid-evaluation (torchrun then stops the other), then the same
    command: the records end equal to one process's, without duplicates or losses.
    Started by steerlib's launcher, the run ends with one line naming the worker."""
    records_file = tmp_path / "records.jsonl"
    env = {"STEERLIB_ARTIFACTS": str(tmp_path / "artifacts")}
    cmd, full_env = _torchrun_cmd(
        [WORKER, "generate", str(records_file)], env=env, launcher=launcher
    )
    run = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not (
        records_file.is_file() and records_file.read_text().count("\n") >= 32
    ):  # a method's records
        assert run.poll() is None and time.time() < deadline, (
            "the run ended before it could be killed"
        )
        time.sleep(0.05)
    os.kill(int((tmp_path / f"pid{victim}").read_text()), signal.SIGKILL)
    _, err = run.communicate(timeout=120)
    assert run.returncode != 0
    if launcher == "workers":
        assert run.returncode == 2
        assert err.splitlines()[-1].startswith(
            f"error: worker {victim} of 2 was killed by SIGKILL"
        ), err[-2000:]
        assert "Traceback" not in err, err[-2000:]  # rank 0's: a consequence
    partial = records_file.read_text().count("\n")
    assert 32 <= partial < 160, partial
    torchrun([WORKER, "generate", str(records_file)], env=env, launcher=launcher)
    assert _lines(records_file) == single_run[0]


def _reproduce_outputs(folder):
    """What `reproduce --preset smoke` wrote under ``folder`` (its artifacts root)."""
    out = Path(folder) / "results" / "smoke"
    records = [
        {k: v for k, v in r.items() if k != "tokens"}
        for r in _lines(out / "records.jsonl")
    ]
    return {
        "records": records,
        "composition": (out / "composition.csv").read_text(),
        "single": (out / "single_behavior.md").read_text(),
        "tokens": load_file(out / "tokens.safetensors"),
    }


REPRODUCE = [sys.executable, "-m", "steerlib", "reproduce", "--preset", "smoke"]


def test_reproduce_smoke_in_two_processes_equals_one(tmp_path):
    """``python -m steerlib reproduce --preset smoke --workers 2`` end to end against
    ``--workers 1``: the same tables and records (records stamp the digest of the
    vectors they used, which differ in the last float bits, so the stamps are left
    out) and the same tokens."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "STEERLIB_ARTIFACTS": str(tmp_path / "one"),
    }
    subprocess.run(
        [*REPRODUCE, "--workers", "1"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    two = subprocess.run(
        [*REPRODUCE, "--workers", "2"],
        check=False,
        cwd=ROOT,
        env={**env, "STEERLIB_ARTIFACTS": str(tmp_path / "two")},
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 workers" in two.stderr
    one, two = (
        _reproduce_outputs(tmp_path / "one"),
        _reproduce_outputs(tmp_path / "two"),
    )
    assert two["records"] == one["records"] and len(one["records"]) > 0
    assert two["composition"] == one["composition"] and two["single"] == one["single"]
    assert two["tokens"].keys() == one["tokens"].keys()
    for name, vector in one["tokens"].items():
        assert torch.allclose(two["tokens"][name], vector, atol=1e-5), name


def test_a_bad_input_under_workers_is_one_line(tmp_path):
    """Both workers refuse the value; the run ends with the error once, exit code 2."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "steerlib",
            "evaluate",
            "--preset",
            "smoke",
            "--workers",
            "2",
            "--set",
            "eval.batch_size=-1",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["error: EvalConfig.batch_size must be an integer >= 1; got -1"], (
        done.stderr[-3000:]
    )
