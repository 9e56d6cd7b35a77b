"""The evaluator registry: task name → evaluator, each returning one JSON-ready report.

Every evaluator is called the same way, so the CLI, the pipeline and benchmarks never special-case a task::

    TASKS.build("sts").run(model, "sts-b", None, StoreConfig(), {"side": "cross"})
    → {"task": "sts", "dataset": ..., "split": "test", "method": "identity", "encoders": {...},
       ..., "metrics": {"spearman": 82.0, "pearson": 83.1}}

``data_spec=None`` means the task's own default dataset (``Task.default_data``); ``split=None`` means
``test`` when the dataset has it, else its only split. Options are a per-task dataclass whose field
docstrings are the documentation (``latentfuse eval --help`` lists them); unknown options are errors.
Frozen features go through the feature store, so a second evaluation of the same encoder on the same
data encodes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Mapping

from ..config import StoreConfig, field_docs, from_dict
from ..data.heldout import cut_like_training
from ..data import Source, build_source
from ..errors import ConfigError, DataError
from ..model import JointModel
from ..registry import Registry


@dataclass
class NoOptions:
    """A task without knobs."""


class Task:
    """Base of evaluators. Subclasses set the class attributes and implement ``evaluate``."""

    name: ClassVar[str] = ""
    default_data: ClassVar[str | None] = None  # dataset used when the caller names none
    options_cls: ClassVar[type] = NoOptions
    summary: ClassVar[str] = ""  # one line for --help

    def run(self, model: JointModel, data_spec: str | None = None, split: str | None = None,
            store: StoreConfig | None = None, options: Any = None, *, skip_bad: bool = False,
            progress: bool = True) -> dict[str, Any]:
        """Evaluate ``model`` on a split of ``data_spec``; returns the report dict."""
        spec = data_spec or self.default_data
        if not spec:
            raise ConfigError(f"task {self.name!r} needs a dataset: `--task {self.name}=SPEC` or `--data SPEC`")
        source = cut_like_training(build_source(spec, skip_bad=skip_bad), split, model.meta.get("trained_on", ""),
                                   model.meta.get("training", {}).get("held_out_cut"))
        context = Context(store or StoreConfig(), skip_bad, progress)
        return self.evaluate(model, source, resolve_split(source, split), self.options(options), context)

    def evaluate(self, model: JointModel, source: Source, split: str, options: Any,
                 context: Context) -> dict[str, Any]:
        raise NotImplementedError

    def options(self, values: Any) -> Any:
        """The options dataclass from a dict (unknown keys and wrong types are errors naming the option)."""
        if isinstance(values, self.options_cls):
            return values
        return from_dict(self.options_cls, dict(values or {}), where=f"task {self.name} options")

    @classmethod
    def describe_options(cls) -> list[tuple[str, str, str]]:
        """(name, default, doc) of every option, for --help."""
        docs = field_docs(cls.options_cls)
        default = cls.options_cls()
        return [(f.name, repr(getattr(default, f.name)), docs.get(f.name, "")) for f in fields(cls.options_cls)]


@dataclass(frozen=True)
class Context:
    """What every evaluation shares: where features are cached, the bad-item policy, progress bars."""

    store: StoreConfig
    skip_bad: bool = False
    progress: bool = True


TASKS: Registry[Task] = Registry("evaluation task", "latentfuse.eval", "latentfuse.tasks")


def task(name: str) -> Task:
    """The evaluator registered under ``name``."""
    return TASKS.build(name)


def task_names() -> list[str]:
    return TASKS.names()


def resolve_split(source: Source, split: str | None, preferred: str = "test", how: str = "with --split") -> str:
    """``split`` if given; else ``preferred`` when present, else the source's only split. ``how`` says in
    the error how the user names a split."""
    available = source.splits()
    if split:
        source.check_split(split)
        return split
    if preferred in available:
        return preferred
    if len(available) == 1:
        return available[0]
    raise DataError(f"{source.spec}: no {preferred!r} split; pick one {how} ({', '.join(available)})")


def base_report(task_name: str, model: JointModel, source: Source, split: str, **extra: Any) -> dict[str, Any]:
    """The keys every report starts with; ``metrics`` is filled in by the task."""
    return {"task": task_name, "dataset": source.spec, "split": split, "method": model.method.name,
            "encoders": {side: spec.encoder for side, spec in model.sides.items()}, **extra, "metrics": {}}


def check_options(options: Mapping[str, Any] | None, hubness: str = "") -> dict[str, dict[str, Any]]:
    """Task options (task → option → value, e.g. from ``--set options.sts.side=cross``), checked now: unknown
    tasks, unknown options and wrong types fail before any task runs. ``hubness`` (eval's ``--hubness``)
    goes to every task that scores retrieval (those with a ``hubness`` option) unless set per task."""
    out: dict[str, dict[str, Any]] = {}
    for name, values in (options or {}).items():
        if name not in task_names():
            raise ConfigError(f"options.{name}: unknown task {name!r}; tasks: {', '.join(task_names())}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"options.{name}: expected OPTION: VALUE pairs, got {values!r}")
        out[name] = dict(values)
    if hubness:
        for name in task_names():
            if "hubness" in {f.name for f in fields(TASKS.get(name).options_cls)}:
                out.setdefault(name, {}).setdefault("hubness", hubness)
    for name, values in out.items():
        task(name).options(values)
    return out


def options_for(name: str, options: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    return dict((options or {}).get(name, {}))
