"""Several processes on torch.distributed (gloo, 2 processes on this CPU) compute what one does."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from steerlib import distributed

import distributed_worker as worker

ROOT = Path(__file__).resolve().parents[1]


def torchrun(args, n=2, env=None, timeout=600):
    """``torchrun --standalone --nproc_per_node n ...`` from the repository root; its output on failure."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *args]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_shard_and_gather_without_a_process_group():
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.shard([1, 2, 3]) == [1, 2, 3] and distributed.gather([1, 2]) == [1, 2]


def test_two_processes_train_the_vector_one_process_trains(tmp_path):
    """Each rank takes half of every batch of 4 (answers of different lengths, so its
    share of the mean differs from a half); the summed gradients give the same steps."""
    single, single_losses = worker.train()
    torchrun([str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path / "two.safetensors"), "-", "-"])
    two = load_file(tmp_path / "two.safetensors")
    assert torch.allclose(two["vector"], single, atol=1e-5)
    assert torch.allclose(two["losses"].float(), torch.tensor(single_losses), rtol=1e-4)
    assert not torch.equal(single, torch.zeros_like(single))


def test_checkpoint_of_two_processes_resumes_in_one(tmp_path):
    """Rank 0's checkpoint after 3 steps of 2 processes; one process finishes the run."""
    ckpt = tmp_path / "v.ckpt.safetensors"
    torchrun([str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path / "part.safetensors"), str(ckpt), "3"])
    resumed, losses = worker.train(ckpt)
    single, single_losses = worker.train()
    assert len(losses) == worker.CONFIG.steps
    assert torch.allclose(resumed, single, atol=1e-5)
