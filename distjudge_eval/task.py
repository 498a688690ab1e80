"""``DistributionTask``: an lm-eval task made from one YAML of labels, votes and a prompt.

A task YAML names this class (``class: !function distjudge_eval.task.DistributionTask``), its
labels (``doc_to_choice``), its prompt (``doc_to_text``) and its data (``dataset_kwargs``, see
:mod:`distjudge_eval.data.spec`). The class fills in everything else the way every distjudge
task needs it: the data loader, multiple choice over the labels (or the verbalized readout when
``output_type: generate_until``), the metric list from the registry in
:mod:`distjudge_eval.metrics`, and the splits. Keys the YAML sets itself win.

Run settings arrive through lm-eval's ``--metadata``: ``data_dir``, ``strict``, ``temperature``
(divide label scores by T before the softmax: post-hoc calibration), ``eval_split``
(``train`` scores the train split, e.g. to fit a temperature).
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.task import ConfigurableTask

from distjudge_eval import metrics, truncation
from distjudge_eval.data.load import load_with_skips, task_dataset
from distjudge_eval.data.spec import label_text, parse_spec
from distjudge_eval.errors import UserError
from distjudge_eval.labels import LabelSet, register_label_set

OUTPUT_TYPES = {"multiple_choice": "logprob", "generate_until": "verbalized"}


class DistributionTask(ConfigurableTask):
    """A ConfigurableTask whose defaults are distjudge's: see the module docstring."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        cfg = dict(config or {})
        cfg.pop("class", None)
        name = cfg.get("task", "?")
        output_type = cfg.setdefault("output_type", "multiple_choice")
        if output_type not in OUTPUT_TYPES:
            raise UserError(
                f"{name}: output_type must be multiple_choice (q from label log-likelihoods) "
                f"or generate_until (the judge writes q), got {output_type!r}"
            )
        choices = cfg.get("doc_to_choice")
        if not isinstance(choices, (list, tuple)):
            raise UserError(f"{name}: doc_to_choice must list the labels, e.g. [yes, no]")
        cfg["doc_to_choice"] = [label_text(c) for c in choices]
        kwargs = dict(cfg.get("dataset_kwargs") or {})
        try:
            self.spec = parse_spec(kwargs, cfg["doc_to_choice"])
        except UserError as exc:
            raise UserError(f"{name}: {exc}") from None
        self.label_set = LabelSet(name, self.spec.labels, self.spec.synonym_map)
        register_label_set(self.label_set)
        meta = dict(cfg.get("metadata") or {})
        if meta.get("eval_split") not in (None, "train", "test"):
            raise UserError(f"{name}: metadata eval_split must be train or test")
        spec = self.spec
        # Load the data before lm-eval builds the task (an empty split or a prompt field the
        # items lack is one clear line), and hand the same splits to lm-eval.
        data = task_dataset(spec, **{**meta, **kwargs})

        def load_dataset(**_settings: Any):
            return data

        # A YAML's own process_results (e.g. MT-Bench's binary verbalized reading) runs inside
        # ours, so its items are counted and skipped for truncation like every other task's.
        given = cfg.get("process_results")
        self._own_process_results = cfg.pop("process_results") if callable(given) else None
        defaults: dict[str, Any] = {
            "custom_dataset": load_dataset,
            "training_split": "train",
            "test_split": meta.get("eval_split") or "test",
            "doc_to_target": "target",
            "target_delimiter": " ",
            "metric_list": metrics.metric_list(OUTPUT_TYPES[output_type]),
            "process_results": self._score,
            "metadata": {"version": 1.0},
        }
        for key, value in defaults.items():
            if cfg.get(key) is None:
                cfg[key] = value
        cfg["metadata"].setdefault("version", 1.0)
        self.temperature = _temperature(meta.get("temperature", 1.0), name)
        for split in {cfg["test_split"], cfg["training_split"]}:
            if split in ("train", "test") and len(data[split]) == 0:
                raise UserError(
                    f"{name}: the {split} split has no items (of {sum(map(len, data.values()))});"
                    " add items, or change dataset_kwargs.train_fraction / split_by / split_field"
                )
        self._check_prompt_fields(name, cfg.get("doc_to_text"), data["test"].column_names)
        super().__init__(config=cfg)
        # Skipped rows per reason travel into lm-eval's results (configs.<task>.metadata).
        _, skips = load_with_skips(
            spec, meta.get("data_dir"), meta.get("strict"), meta.get("config_source")
        )
        self.config.metadata["skipped_rows"] = dict(skips.counts)

    def build_all_requests(self, *args: Any, **kwargs: Any) -> None:
        """Start each evaluation of this task with no truncation records from an earlier one."""
        truncation.clear(self.config.task)
        super().build_all_requests(*args, **kwargs)

    def _score(self, doc: dict, results: list) -> dict:
        """Every metric of one item, plus ``truncated`` (1 when the backend recorded that the
        prompt did not fit). A skipped item has no scores: it reports ``truncated`` only, so it
        is counted and left out of every other mean."""
        kind = truncation.status(self.config.task, doc)
        if kind == truncation.SKIPPED:
            return {"truncated": 1.0}
        if self._own_process_results is not None:
            out = dict(self._own_process_results(doc, results))
        elif self.config.output_type == "generate_until":
            from distjudge_eval.verbalized import reply_text, score

            out = score(doc, reply_text(results), self.label_set)
        else:
            out = metrics.process_results(doc, results, temperature=self.temperature)
        out["truncated"] = 0.0 if kind is None else 1.0
        return out

    @staticmethod
    def _check_prompt_fields(name: str, template: Any, fields: list[str]) -> None:
        """A typo in ``{{field}}`` would fail deep inside lm-eval: name it instead."""
        if not isinstance(template, str):
            return
        import jinja2
        from jinja2 import meta as jinja_meta

        try:
            names = jinja_meta.find_undeclared_variables(jinja2.Environment().parse(template))
        except jinja2.TemplateSyntaxError as exc:
            raise UserError(f"{name}: doc_to_text is not a valid template: {exc}") from None
        missing = sorted(names - set(fields))
        if missing:
            raise UserError(
                f"{name}: doc_to_text uses {', '.join(missing)} but items have "
                f"{', '.join(sorted(fields))}; add them to dataset_kwargs.fields"
            )


def _temperature(value: Any, task: str) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        t = float("nan")
    if not t > 0 or t == float("inf"):
        raise UserError(f"{task}: metadata temperature must be a positive number, got {value!r}")
    return t
