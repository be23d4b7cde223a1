"""Dataset loaders: JSONL with field mappings (AIME, GSM8K, AMC forms), presets, hub errors."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from pdr.evaluation.datasets import (
    FieldMap,
    answer_text,
    gsm8k_answer,
    load_dataset,
    load_jsonl,
    parse_hub_spec,
)
from pdr.evaluation.problems import Dataset, DatasetError, Problem

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_aime_style_file_keeps_answers_as_text(tmp_path: Path) -> None:
    file = write_jsonl(
        tmp_path / "aime.jsonl",
        [
            {"id": 60, "problem": "Find x.", "solution": "...", "answer": "025", "url": ""},
            {"id": 61, "problem": "Find y.", "solution": "...", "answer": "113", "url": ""},
        ],
    )
    data = load_jsonl(file)
    assert data.problems == [
        Problem(id="60", problem="Find x.", answer="025"),
        Problem(id="61", problem="Find y.", answer="113"),
    ]
    assert data.name == str(file)


def test_gsm8k_style_file_takes_the_number_after_hashes(tmp_path: Path) -> None:
    file = write_jsonl(
        tmp_path / "gsm8k.jsonl",
        [
            {"question": "Eggs?", "answer": "16 - 3 - 4 = <<16-3-4=9>>9\n#### 18", "idx": 0},
            {"question": "Money?", "answer": "He has 70,000.\n#### 70,000", "idx": 1},
        ],
    )
    data = load_jsonl(file)
    assert [(p.id, p.problem, p.answer) for p in data.problems] == [
        ("0", "Eggs?", "18"),
        ("1", "Money?", "70000"),
    ]


def test_amc_style_floats_become_integers(tmp_path: Path) -> None:
    file = write_jsonl(
        tmp_path / "amc.jsonl",
        [
            {"id": 0, "problem": "Miles?", "question": "Miles?", "answer": 27.0},
            {"id": 1, "problem": "Ratio?", "question": "Ratio?", "answer": 0.25},
        ],
    )
    assert [p.answer for p in load_jsonl(file).problems] == ["27", "0.25"]


def test_explicit_field_mapping(tmp_path: Path) -> None:
    file = write_jsonl(
        tmp_path / "custom.jsonl",
        [{"key": "q1", "text": "What is 2+2?", "gold": "4", "answer": "ignored"}],
    )
    data = load_dataset(str(file), fields=FieldMap(problem="text", answer="gold", id="key"))
    assert data.problems == [Problem(id="q1", problem="What is 2+2?", answer="4")]


def test_records_without_ids_are_numbered_and_blank_lines_skipped(tmp_path: Path) -> None:
    file = tmp_path / "plain.jsonl"
    file.write_text('{"problem": "a", "answer": 1}\n\n{"problem": "b", "answer": 2}\n')
    assert [(p.id, p.answer) for p in load_jsonl(file).problems] == [("0", "1"), ("1", "2")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"problem": "a", "answer": 1}\nnot json\n', "plain.jsonl:2: not valid JSON"),
        ('{"text": "a", "answer": 1}\n', "no problem field among"),
        ('{"problem": "a", "result": 1}\n', "no answer field among"),
        (
            '{"id": 1, "problem": "a", "answer": 1}\n{"id": 1, "problem": "b", "answer": 2}\n',
            "the id '1' appears twice",
        ),
        ('{"problem": "", "answer": 1}\n', "not a non-empty text"),
        ("\n", "no problems in the file"),
        ("[1, 2]\n", "expected a JSON object"),
    ],
)
def test_bad_files_fail_with_a_clear_message(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "plain.jsonl"
    file.write_text(content)
    with pytest.raises(DatasetError, match=message.replace("(", r"\(")):
        load_jsonl(file)


def test_missing_mapped_field_names_the_fields(tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "x.jsonl", [{"problem": "a", "answer": 1}])
    with pytest.raises(DatasetError, match=r"no answer field 'gold' in a record; its fields are"):
        load_jsonl(file, FieldMap(answer="gold"))


def test_answer_text_forms() -> None:
    assert answer_text(27.0) == "27"
    assert answer_text(5) == "5"
    assert answer_text(["42"]) == "42"
    assert answer_text("x\n#### 1,234") == "1234"
    assert answer_text("#### 3", answer_format="plain") == "#### 3"
    assert gsm8k_answer("work\n#### -5") == "-5"
    with pytest.raises(DatasetError):
        answer_text(None)
    with pytest.raises(DatasetError, match="no '#### N' line"):
        answer_text("no hashes", answer_format="gsm8k")


def test_limit_and_fingerprint() -> None:
    data = Dataset("d", [Problem(str(i), f"p{i}", str(i)) for i in range(5)])
    assert [p.id for p in data.head(2).problems] == ["0", "1"]
    assert data.head(2).name == "d[:2]"
    assert data.head(9).name == "d"
    assert data.fingerprint == Dataset("other", list(data.problems)).fingerprint
    assert data.fingerprint != data.head(2).fingerprint
    with pytest.raises(DatasetError):
        data.head(0)


def test_spec_forms_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_dataset("synthetic:level=1,n=3,seed=4").name == "synthetic:level=1,n=3,seed=4"
    assert len(load_dataset("synthetic:level=1,n=10", limit=4)) == 4
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(DatasetError, match="no such dataset file"):
        load_dataset(str(tmp_path / "missing.jsonl"))
    monkeypatch.delenv("PDR_DATASETS_DIR", raising=False)
    with pytest.raises(
        DatasetError, match=r"preset 'amc23' reads amc23\.jsonl from PDR_DATASETS_DIR"
    ):
        load_dataset("amc23")
    assert parse_hub_spec("hf:openai/gsm8k:main@test") == ("openai/gsm8k", "main", "test")
    assert parse_hub_spec("hf:HuggingFaceH4/aime_2024@train") == (
        "HuggingFaceH4/aime_2024",
        None,
        "train",
    )


def test_preset_reads_its_file_from_the_datasets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(
        tmp_path / "gsm8k.jsonl",
        [{"question": "q", "answer": "w\n#### 7", "idx": 3}],
    )
    monkeypatch.setenv("PDR_DATASETS_DIR", str(tmp_path))
    data = load_dataset("gsm8k")
    assert data.name == "gsm8k"
    assert data.problems == [Problem(id="3", problem="q", answer="7")]


def test_hub_without_the_datasets_package_says_how_to_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(
        DatasetError, match=r"needs the 'datasets' package \(pip install datasets\)"
    ):
        load_dataset("hf:openai/gsm8k:main")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared benchmark files are not here")
def test_shared_benchmark_files_load() -> None:
    """The real files (read-only, outside the project): sizes and first answers."""
    expected = {
        "aime24": (30, "204"),
        "aime25": (30, "70"),
        "amc23": (40, "27"),
        "gsm8k": (1319, "18"),
    }
    for name, (rows, first) in expected.items():
        data = load_dataset(name, data_dir=SHARED_DATA)
        assert (len(data), data.problems[0].answer) == (rows, first)
        assert all(p.answer and p.problem for p in data.problems)


class HubStandIn(types.ModuleType):
    """A stand-in for the `datasets` package: the hub cannot be reached from the test machines.

    ``load_dataset`` returns the rows given for a (name, config, split), or raises what a client
    without network raises.
    """

    def __init__(self, rows: dict[tuple[str, str | None, str], list[dict[str, object]]]) -> None:
        super().__init__("datasets")
        self.rows = rows
        self.asked: list[tuple[str, str | None, str]] = []

    def load_dataset(self, name: str, config: str | None = None, *, split: str) -> object:
        self.asked.append((name, config, split))
        if (name, config, split) not in self.rows:
            raise ConnectionError(f"Couldn't reach '{name}' on the Hub (LocalEntryNotFoundError)")
        return self.rows[(name, config, split)]


def test_hub_datasets_by_name_and_presets_fall_back_to_the_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = HubStandIn(
        {
            ("openai/gsm8k", "main", "test"): [
                {"question": "Eggs?", "answer": "16 - 3 - 4 = 9\n#### 18"},
                {"question": "Robes?", "answer": "2 + 1 = 3\n#### 3"},
            ],
            ("MathArena/aime_2025", None, "train"): [
                {"problem_idx": 1, "problem": "Find the sum of bases.", "answer": 70},
            ],
        }
    )
    monkeypatch.setitem(sys.modules, "datasets", hub)
    monkeypatch.delenv("PDR_DATASETS_DIR", raising=False)

    named = load_dataset("hf:openai/gsm8k:main@test")
    assert named.name == "hf:openai/gsm8k:main@test"
    assert [(p.id, p.problem, p.answer) for p in named.problems] == [
        ("0", "Eggs?", "18"),
        ("1", "Robes?", "3"),
    ]
    preset = load_dataset("aime25")
    assert preset.name == "aime25"
    assert preset.problems == [Problem(id="1", problem="Find the sum of bases.", answer="70")]
    assert hub.asked[-1] == ("MathArena/aime_2025", None, "train")

    with pytest.raises(DatasetError, match=r"could not load 'nobody/nothing' .* from the Hugging"):
        load_dataset("hf:nobody/nothing")
