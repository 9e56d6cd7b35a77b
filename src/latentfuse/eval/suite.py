"""Several tasks in one call: the plan ``latentfuse eval --task ...`` runs, usable from Python too.

``parse_jobs(["retrieval=flickr8k:DIR", "zeroshot", "sts=wordsim353"], data=None)`` →
``[Job("retrieval", "flickr8k:DIR"), Job("zeroshot", None), Job("sts", "wordsim353")]``. A task written
without ``=DATA`` takes ``data`` (the CLI's ``--data``) when given, else its own default dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..config import StoreConfig
from ..errors import ConfigError
from ..specs import key_value
from ..model import JointModel
from .tasks import TASKS, options_for, task, task_names


@dataclass(frozen=True)
class Job:
    task: str
    data: str | None  # None = the task's default dataset


def parse_jobs(tasks: list[str], data: str | None = None) -> list[Job]:
    """``NAME`` / ``NAME=DATA`` strings → jobs; unknown task names are errors listing the known ones."""
    jobs = []
    for item in tasks:
        name, spec = key_value(item, "--task", "sts=wordsim353", key="NAME") if "=" in item else (item.strip(), "")
        if name not in task_names():
            raise ConfigError(f"--task {item!r}: unknown task {name!r}; tasks: {', '.join(task_names())}")
        jobs.append(Job(name, spec or data))
    return jobs


def require_data(jobs: list[Job]) -> None:
    """Every job names its dataset: the command line never falls back to a built-in one on a user's model
    (``eval --task zeroshot`` used to run Fashion-MNIST for minutes without being asked); the message names
    the task's usual dataset, one flag away."""
    for job in jobs:
        if job.data is None:
            usual = TASKS.get(job.task).default_data
            hint = f" (its usual one: --task {job.task}={usual})" if usual else ""
            raise ConfigError(f"task {job.task!r} needs a dataset: --task {job.task}=SPEC or --data SPEC{hint}")


def run_jobs(model: JointModel, jobs: list[Job], split: str | None, store: StoreConfig,
             options: Mapping[str, Mapping[str, Any]] | None = None, *, skip_bad: bool = False,
             progress: bool = True, on_report: Callable[[dict[str, Any]], None] | None = None,
             ) -> list[dict[str, Any]]:
    """Run every job on ``model`` in order; ``on_report`` sees each report as soon as it is ready."""
    reports = []
    for job in jobs:
        report = task(job.task).run(model, job.data, split, store, options_for(job.task, options),
                                    skip_bad=skip_bad, progress=progress)
        if on_report is not None:
            on_report(report)
        reports.append(report)
    return reports
