"""The Ray and Slurm executors, for real: a local Ray cluster (2 CPUs) and submitit's local
executor running the same job array that Slurm would. Each runs the same two 1-epoch jobs and
must give exactly the rows of the in-process executor (same torch thread count)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oodbench.results import METRIC_FIELDS, load_rows
from oodbench.sweep import expand_jobs, run_sweep

REPO = Path(__file__).resolve().parent.parent
KEY = ["model_source", "detector", "out_dataset", "seed"]


def _jobs(tmp_path: Path, name: str):
    return expand_jobs(
        ["mnist"],
        models=["cross_entropy"],
        detectors=["msp"],
        seeds=[0, 1],
        train_overrides={"epochs": 1},
        torch_threads=1,
        results_dir=tmp_path / f"runs-{name}",
        cache_dir=tmp_path / f"cache-{name}",
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same two jobs run one after another in this process (the executor-free path)."""
    folder = tmp_path_factory.mktemp("reference")
    assert [o.status for o in run_sweep(_jobs(folder, "inprocess"))] == ["done", "done"]
    return load_rows(folder / "runs-inprocess").sort_values(KEY).reset_index(drop=True)


def _assert_same_rows(tmp_path: Path, name: str, theirs) -> None:
    ours = load_rows(tmp_path / f"runs-{name}").sort_values(KEY).reset_index(drop=True)
    assert len(ours) == len(theirs) == 2 * 5
    assert ours[KEY].equals(theirs[KEY])
    for column in (*METRIC_FIELDS, "checkpoint_sha256"):
        assert ours[column].tolist() == theirs[column].tolist(), column


def test_ray_local_cluster_runs_the_jobs(tmp_path, monkeypatch, reference):
    ray = pytest.importorskip("ray")
    # Workers must import this checkout's oodbench, wherever the test runs from.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        jobs = _jobs(tmp_path, "ray")
        seen = []
        outcomes = run_sweep(jobs, executor="ray", on_result=seen.append)
        assert [o.status for o in outcomes] == ["done", "done"], outcomes
        assert sorted(o.job_id for o in seen) == sorted(j.job_id for j in jobs)
        assert ray.is_initialized()  # a session opened by the caller is left open
        assert [o.status for o in run_sweep(jobs, executor="ray")] == ["skipped", "skipped"]
    finally:
        ray.shutdown()
    _assert_same_rows(tmp_path, "ray", reference)


def test_slurm_job_array_through_submitit_local_executor(tmp_path, monkeypatch, reference):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    jobs = _jobs(tmp_path, "slurm")
    folder = tmp_path / "submitit"
    outcomes = run_sweep(jobs, executor="slurm", cluster="local", slurm_folder=folder, time_min=10)
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    assert list(folder.glob("*_log.out"))  # submitit's per-task logs went to the folder
    _assert_same_rows(tmp_path, "slurm", reference)


def test_slurm_without_slurm_is_one_clear_error(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    from oodbench.errors import UserInputError

    monkeypatch.setattr(submitit.AutoExecutor, "which", staticmethod(lambda: "local"))
    with pytest.raises(UserInputError, match="No Slurm found here"):
        run_sweep(_jobs(tmp_path, "none"), executor="slurm")


class _FakeRay:
    """Records what each task asks Ray for (no GPU here to ask for one for real)."""

    def __init__(self, gpus: int) -> None:
        self.gpus, self.asked, self.opened, self.results = gpus, [], [], {}

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.opened.append(kwargs)

    def shutdown(self):
        self.opened.append("shutdown")

    def cluster_resources(self):
        return {"CPU": 16.0, "GPU": float(self.gpus)}

    def remote(self, fn):
        fake = self

        class Task:
            def options(self, **options):
                class Bound:
                    def remote(self, job):
                        fake.asked.append((job.device, options))
                        fake.results[job.job_id] = {"job_id": job.job_id, "status": "done"}
                        return job.job_id  # the object ref

                return Bound()

        return Task()

    def wait(self, refs, num_returns):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return self.results[ref]


@pytest.mark.parametrize(
    ("device", "gpus", "expected"),
    [("cuda", 1, 1), ("cuda:0", 0, 1), ("auto", 2, 1), ("auto", 0, 0), ("cpu", 2, 0)],
)
def test_ray_tasks_ask_for_one_gpu_on_cuda_and_their_cpus(tmp_path, monkeypatch, device, gpus, expected):
    import sys

    fake = _FakeRay(gpus)
    monkeypatch.setitem(sys.modules, "ray", fake)
    jobs = expand_jobs(
        ["mnist"], models=["cross_entropy"], detectors=["msp"], seeds=[0], train_overrides={"epochs": 1},
        torch_threads=3, device=device, results_dir=tmp_path / "r", cache_dir=tmp_path / "c",
    )  # fmt: skip
    outcomes = run_sweep(jobs, executor="ray", address="auto")
    assert [o.status for o in outcomes] == ["done"]
    assert fake.asked == [(device, {"num_cpus": 3, "num_gpus": expected})]
    assert fake.opened == [{"include_dashboard": False, "address": "auto"}, "shutdown"]


def test_ray_local_cluster_without_gpu_refuses_cuda_jobs(tmp_path, monkeypatch):
    import sys

    from oodbench.errors import UserInputError

    fake = _FakeRay(gpus=0)
    monkeypatch.setitem(sys.modules, "ray", fake)
    jobs = expand_jobs(
        ["mnist"], models=["cross_entropy"], detectors=["msp"], seeds=[0], train_overrides={"epochs": 1},
        device="cuda", results_dir=tmp_path / "r", cache_dir=tmp_path / "c",
    )  # fmt: skip
    with pytest.raises(UserInputError, match="Ray cluster has no GPU"):
        run_sweep(jobs, executor="ray")
    assert fake.asked == [] and fake.opened[-1] == "shutdown"
