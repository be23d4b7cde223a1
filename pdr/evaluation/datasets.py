"""Problem sets for evaluation: JSONL files, named presets, Hugging Face datasets, generated sets.

A dataset spec is one string, as ``pdr eval --dataset`` takes it:

- ``path/to/file.jsonl``: one JSON object a line; the problem and answer fields are found by name
  (``problem``/``question``/``prompt`` and ``answer``/``final_answer``), or given with a FieldMap.
- ``synthetic:level=2,n=50,seed=0``: the generated offline set (``pdr.evaluation.synthetic``).
- ``aime24``, ``aime25``, ``amc23``, ``gsm8k``: presets. Each reads ``<name>.jsonl`` from the data
  directory (``data_dir`` or ``$PDR_DATASETS_DIR``) when it is there, else its Hugging Face dataset.
- ``hf:OWNER/NAME[:CONFIG][@SPLIT]``: any Hugging Face dataset (needs the ``datasets`` package and
  a reachable hub).

Gold answers are kept as text: GSM8K's worked solutions are cut to the number after ``####``,
AMC's floats such as 27.0 become "27", and AIME's "025" stays as written (the grader compares
integers as integers).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pdr.evaluation import synthetic
from pdr.evaluation.problems import Dataset, DatasetError, Problem

PROBLEM_FIELDS = ("problem", "question", "prompt", "input")
ANSWER_FIELDS = ("answer", "final_answer", "target", "solution")
ID_FIELDS = ("id", "idx", "problem_idx", "unique_id")

AnswerFormat = Literal["auto", "plain", "gsm8k"]


@dataclass(frozen=True)
class FieldMap:
    """Which fields of a record hold the problem, the answer and the id.

    Attributes:
        problem: field of the problem text (None: the first of PROBLEM_FIELDS present).
        answer: field of the gold answer (None: the first of ANSWER_FIELDS present).
        id: field of the id (None: the first of ID_FIELDS present, else the record's position).
        answer_format: "gsm8k" keeps what follows "####"; "plain" keeps the field as it is;
            "auto" cuts at "####" when the answer has one.
    """

    problem: str | None = None
    answer: str | None = None
    id: str | None = None
    answer_format: AnswerFormat = "auto"


@dataclass(frozen=True)
class Preset:
    """A named dataset: its local file name, fields and Hugging Face source."""

    file: str
    fields: FieldMap
    hub: str | None = None
    config: str | None = None
    split: str = "test"


PRESETS: dict[str, Preset] = {
    "aime24": Preset(
        "aime24.jsonl",
        FieldMap("problem", "answer", "id"),
        "HuggingFaceH4/aime_2024",
        None,
        "train",
    ),
    "aime25": Preset(
        "aime25.jsonl", FieldMap("problem", "answer", "id"), "MathArena/aime_2025", None, "train"
    ),
    "amc23": Preset("amc23.jsonl", FieldMap("problem", "answer", "id")),
    "gsm8k": Preset(
        "gsm8k.jsonl",
        FieldMap("question", "answer", "idx", answer_format="gsm8k"),
        "openai/gsm8k",
        "main",
        "test",
    ),
}


def gsm8k_answer(text: str) -> str:
    """The final number of a GSM8K worked solution (after "####", thousands commas dropped)."""
    if "####" not in text:
        raise DatasetError(f"a GSM8K answer has no '#### N' line: {text[-80:]!r}")
    final = text.rsplit("####", 1)[1].strip()
    return final.replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", final) else final


def answer_text(value: Any, answer_format: AnswerFormat = "auto") -> str:
    """A record's gold answer as text (integral floats such as 27.0 become "27")."""
    if isinstance(value, bool) or value is None:
        raise DatasetError(f"a gold answer must be text or a number, got {value!r}")
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if answer_format == "gsm8k" or (answer_format == "auto" and "####" in text):
        return gsm8k_answer(text)
    return text


def _pick(
    record: dict[str, Any], wanted: str | None, candidates: tuple[str, ...], what: str
) -> str:
    if wanted is not None:
        if wanted not in record:
            raise DatasetError(
                f"no {what} field {wanted!r} in a record; its fields are {sorted(record)}"
            )
        return wanted
    for name in candidates:
        if name in record:
            return name
    raise DatasetError(
        f"no {what} field among {list(candidates)} in a record with fields {sorted(record)}; "
        f"name it with --{what}-field"
    )


def problem_from_record(record: dict[str, Any], position: int, fields: FieldMap) -> Problem:
    """One record (a JSON object or a Hugging Face row) as a Problem."""
    problem_field = _pick(record, fields.problem, PROBLEM_FIELDS, "problem")
    answer_field = _pick(record, fields.answer, ANSWER_FIELDS, "answer")
    id_field = fields.id
    if id_field is None:
        id_field = next((name for name in ID_FIELDS if name in record), None)
    elif id_field not in record:
        raise DatasetError(f"no id field {id_field!r} in a record; its fields are {sorted(record)}")
    problem = record[problem_field]
    if not isinstance(problem, str) or not problem.strip():
        raise DatasetError(
            f"record {position}: the {problem_field!r} field is not a non-empty text"
        )
    identifier = str(record[id_field]) if id_field is not None else str(position)
    return Problem(
        id=identifier,
        problem=problem.strip(),
        answer=answer_text(record[answer_field], fields.answer_format),
    )


def load_jsonl(
    path: str | Path, fields: FieldMap | None = None, name: str | None = None
) -> Dataset:
    """Read a JSONL file of problems.

    Args:
        path: the file; one JSON object a line, blank lines skipped.
        fields: which fields to read (default: found by name).
        name: the dataset's name (default: the path as given).

    Returns:
        The dataset. Raises DatasetError for a missing file, bad JSON (with its line number), a
        missing field or repeated ids.
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"no such dataset file: {file}")
    mapping = fields or FieldMap()
    problems: list[Problem] = []
    with file.open("rb") as raw_lines:
        for number, raw in enumerate(raw_lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DatasetError(
                    f"{file}:{number}: not UTF-8 text (byte {raw[error.start]:#04x} at column "
                    f"{error.start + 1}); save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{file}:{number}: not valid JSON ({error.msg})") from error
            if not isinstance(record, dict):
                raise DatasetError(f"{file}:{number}: expected a JSON object, got {record!r:.40}")
            try:
                problems.append(problem_from_record(record, len(problems), mapping))
            except DatasetError as error:
                raise DatasetError(f"{file}:{number}: {error}") from error
    if not problems:
        raise DatasetError(f"{file}: no problems in the file")
    _check_unique(problems, str(file))
    return Dataset(name=name or str(path), problems=problems)


def load_hub(
    dataset: str, config: str | None = None, split: str = "test", fields: FieldMap | None = None
) -> Dataset:
    """Load a Hugging Face dataset by name (needs the ``datasets`` package and the hub).

    Raises DatasetError with the fix when ``datasets`` is missing or the hub cannot be reached.
    """
    try:
        import datasets as hf
    except ImportError as error:
        raise DatasetError(
            f"loading {dataset!r} from the Hugging Face hub needs the 'datasets' package "
            "(pip install datasets); offline, use a .jsonl file or 'synthetic:level=2,n=50'"
        ) from error
    try:
        rows = hf.load_dataset(dataset, config, split=split)
    except Exception as error:
        raise DatasetError(
            f"could not load {dataset!r} (config {config!r}, split {split!r}) from the Hugging "
            f"Face hub: {type(error).__name__}: {str(error)[:200]}; offline, use a .jsonl file, "
            "a preset with PDR_DATASETS_DIR, or 'synthetic:level=2,n=50'"
        ) from error
    mapping = fields or FieldMap()
    problems = [problem_from_record(dict(row), i, mapping) for i, row in enumerate(rows)]
    _check_unique(problems, dataset)
    suffix = f":{config}" if config else ""
    return Dataset(name=f"hf:{dataset}{suffix}@{split}", problems=problems)


def parse_hub_spec(spec: str) -> tuple[str, str | None, str]:
    """``hf:OWNER/NAME[:CONFIG][@SPLIT]`` -> (name, config, split); the split defaults to test."""
    body = spec.removeprefix("hf:")
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name:
        raise DatasetError(
            f"{spec!r}: use hf:OWNER/NAME[:CONFIG][@SPLIT], e.g. hf:openai/gsm8k:main"
        )
    return name, config or None, split or "test"


def load_dataset(
    spec: str,
    fields: FieldMap | None = None,
    limit: int | None = None,
    data_dir: str | Path | None = None,
) -> Dataset:
    """The dataset a spec string names (see the module docstring for the forms).

    Args:
        spec: a .jsonl path, ``synthetic:...``, a preset name or ``hf:NAME[:CONFIG][@SPLIT]``.
        fields: field names for files and hub datasets (a preset brings its own).
        limit: keep the first ``limit`` problems.
        data_dir: where preset files live (default ``$PDR_DATASETS_DIR``).

    Returns:
        The dataset, whose ``name`` is canonical for the spec.
    """
    spec = spec.strip()
    if not spec:
        raise DatasetError("empty dataset spec")
    if spec == "synthetic" or spec.startswith("synthetic:"):
        loaded = synthetic.load(spec)
    elif spec in PRESETS:
        loaded = _load_preset(spec, fields, data_dir)
    elif spec.startswith("hf:"):
        name, config, split = parse_hub_spec(spec)
        loaded = load_hub(name, config, split, fields)
    elif spec.endswith((".jsonl", ".json")) or Path(spec).is_file():
        loaded = load_jsonl(spec, fields)
    else:
        raise DatasetError(
            f"unknown dataset {spec!r}: give a .jsonl file, 'synthetic:level=2,n=50,seed=0', a "
            f"preset ({', '.join(PRESETS)}) or 'hf:OWNER/NAME[:CONFIG][@SPLIT]'"
        )
    return loaded.head(limit)


def _load_preset(name: str, fields: FieldMap | None, data_dir: str | Path | None) -> Dataset:
    preset = PRESETS[name]
    folder = data_dir or os.environ.get("PDR_DATASETS_DIR")
    mapping = fields or preset.fields
    if folder is not None and (Path(folder) / preset.file).is_file():
        return load_jsonl(Path(folder) / preset.file, mapping, name=name)
    if preset.hub is None:
        raise DatasetError(
            f"preset {name!r} reads {preset.file} from PDR_DATASETS_DIR (or --data-dir), and it "
            f"is not there ({folder or 'PDR_DATASETS_DIR is not set'})"
        )
    # Hub copies name their ids differently (or not at all): find the id field by name there.
    hub_mapping = fields or replace(preset.fields, id=None)
    loaded = load_hub(preset.hub, preset.config, preset.split, hub_mapping)
    return Dataset(name=name, problems=loaded.problems)


def _check_unique(problems: list[Problem], where: str) -> None:
    seen: set[str] = set()
    for problem in problems:
        if problem.id in seen:
            raise DatasetError(f"{where}: the id {problem.id!r} appears twice; ids must be unique")
        seen.add(problem.id)
