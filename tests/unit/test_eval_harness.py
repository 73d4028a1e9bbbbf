"""SentiBench harness: loaders on the real files, prompt layout, continuation parsing and validity rules,
verbalizer collisions, and an oracle model that must score 100 through prompt -> parse -> metric."""

from __future__ import annotations

import json

import pytest

from compeffdist.config import EvaluationConfig, ModelSpec
from compeffdist.data.sentibench import DatasetError
from compeffdist.engines.base import Engine
from compeffdist.evaluation.datasets import SPECS, load_examples
from compeffdist.evaluation.metrics import INVALID
from compeffdist.evaluation.parsing import extract_json_list, parse_opinions, parse_tuples
from compeffdist.evaluation.prompts import STOP, build_prompt, sample_demos
from compeffdist.evaluation.runner import evaluate_dataset, evaluate_with_engine, verbalizer_ids
from compeffdist.generation.requests import GenerationRequest, GenerationResult

pytestmark = pytest.mark.unit

SIZES = {
    "sc/imdb": (1000, 3000), "sc/yelp2": (1000, 3000), "sc/sst2": (1821, 3000), "sc/twitter": (1000, 3000),
    "multifaced/irony18": (784, 3000), "multifaced/tweeteval": (1421, 3000), "multifaced/pstance": (2157, 3000),
    "multifaced/intimacy": (396, 1287), "absa/asqp_rest16": (544, 1264), "absa/opener": (499, 1744),
    "absa/atsa_rest16": (676, 2000), "absa/acsa_rest16": (676, 2000),
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(SIZES))
def test_every_dataset_loads_with_its_own_schema(data_root, key):
    tests, train = load_examples(data_root, key, "test"), load_examples(data_root, key, "train")
    assert (len(tests), len(train)) == SIZES[key]
    spec = SPECS[key]
    if spec.kind == "classification":
        assert {e.gold for e in tests} == set(spec.labels)
    if key == "multifaced/pstance":
        assert all(e.target for e in tests)


def test_loader_names_file_and_item_of_a_bad_record(tmp_path):
    folder = tmp_path / "sc" / "sst2"
    folder.mkdir(parents=True)
    rows = [{"sentence": "fine", "label": "positive"}, {"sentence": "odd", "label": "sideways"}]
    (folder / "test.json").write_text("\ufeff" + json.dumps(rows), encoding="utf-8")  # with a BOM
    with pytest.raises(DatasetError, match=r"sst2/test\.json: item 1: .*sideways"):
        load_examples(tmp_path, "sc/sst2", "test")


def test_classification_prompt_layout(data_root):
    spec = SPECS["multifaced/pstance"]
    tests = load_examples(data_root, spec.key, "test")[:1]
    demos = load_examples(data_root, spec.key, "train")[:2]
    prompt = build_prompt(spec, tests[0], demos)
    lines = prompt.split("\n")
    assert lines[0].startswith("Please perform stance detection task.") and f"'{tests[0].target}'" in lines[0]
    assert lines[1] == ""
    assert lines[2] == f"Sentence: {demos[0].sentence}"
    assert lines[3] == f"Label: {demos[0].gold} (opinion towards '{demos[0].target}')"
    assert prompt.endswith(f"Sentence: {tests[0].sentence}\nLabel:")


def test_fine_grained_prompt_shows_gold_json_indented(data_root):
    spec = SPECS["absa/atsa_rest16"]
    demos = load_examples(data_root, spec.key, "train")[:1]
    test = load_examples(data_root, spec.key, "test")[0]
    prompt = build_prompt(spec, test, demos)
    assert f"Output: {json.dumps(demos[0].gold_json, indent=2, ensure_ascii=False)}" in prompt
    assert prompt.endswith(f"Sentence: {test.sentence}\nOutput:")


def test_demo_sampling_is_seeded():
    pool = list(range(100))
    assert sample_demos(pool, 4, 42, 5) == sample_demos(pool, 4, 42, 5)  # type: ignore[arg-type]
    assert sample_demos(pool, 4, 42, 5) != sample_demos(pool, 4, 52, 5)  # type: ignore[arg-type]


def test_extract_json_list_reads_the_continuation_only():
    continuation = ' [{"aspect_term": "pizza", "sentiment": "positive"}]\nSentence: next one\nOutput: [{"x": 1}]'
    assert extract_json_list(continuation) == [{"aspect_term": "pizza", "sentiment": "positive"}]
    # A list cut off by the stop marker is no answer; prose without a list is no answer.
    assert extract_json_list('[{"aspect_term": "pizza",\nSentence: [1]') is None
    assert extract_json_list("I think it is positive.") is None
    # Nested brackets inside strings and a trailing explanation are fine.
    assert extract_json_list('[{"aspect_term": "a [b]", "sentiment": "neutral"}] because ...') == [
        {"aspect_term": "a [b]", "sentiment": "neutral"}
    ]


def test_validity_rules_per_dataset():
    sentence = "The pizza was great but the service was slow ."
    atsa = SPECS["absa/atsa_rest16"]
    items, ok = parse_tuples(
        atsa,
        json.dumps([
            {"aspect_term": "pizza", "sentiment": "Positive"},
            {"aspect_term": "service", "sentiment": "conflict"},  # conflict is a valid ATSA polarity
            {"aspect_term": "dessert", "sentiment": "negative"},  # not in the sentence
            {"aspect_term": "service", "sentiment": "awful"},  # not a polarity
            {"aspect_term": "service"},  # missing key
            "service: negative",  # not an object
        ]),
        sentence,
    )  # fmt: skip
    assert ok and items == [("pizza", "positive"), ("service", "conflict"), INVALID, INVALID, INVALID, INVALID]
    acsa = SPECS["absa/acsa_rest16"]
    items, _ = parse_tuples(acsa, '[{"aspect_category": "food quality", "sentiment": "conflict"}]', sentence)
    assert items == [INVALID]  # ACSA allows positive/neutral/negative only
    asqp = SPECS["absa/asqp_rest16"]
    five_keys = '[{"aspect_term": "pizza", "aspect_category": "food quality", "opinion": "great", ' \
                '"sentiment": "positive", "extra": "x"}]'  # fmt: skip
    assert parse_tuples(asqp, five_keys, sentence)[0] == [INVALID]
    assert parse_tuples(asqp, "no json here", sentence) == ([], False)


def test_opener_parse_locates_predicted_strings():
    sentence = "The room was very clean ."
    answer = {
        "holder": "NULL",
        "target": "room",
        "sentiment_expression": "very clean",
        "sentiment_polarity": "Positive",
    }
    [(holder, target, expression, polarity)], ok = parse_opinions(json.dumps([answer]), sentence)
    assert ok and holder == frozenset() and target == {1} and expression == {3, 4} and polarity == "positive"


class _FakeTokenizer:
    """Token ids from the first word of a string, so labels sharing a first word collide."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self.vocab.setdefault(text.split()[0], len(self.vocab)), 9999]


def test_verbalizer_collisions_are_reported():
    ids, collisions = verbalizer_ids(_FakeTokenizer(), ("not intimate", "not sure", "highly intimate"))
    assert ids[0] == ids[1] != ids[2]
    assert collisions == ["'not intimate'/'not sure' share token " + str(ids[0])]


class OracleEngine(Engine):
    """Answers one dataset's prompts with the gold answer: a harness that loses points is wrong."""

    model_name = "oracle"

    def __init__(self, tests: list, classification: bool) -> None:
        self.tokenizer = _FakeTokenizer()
        self.answers = {t.sentence: (t.gold if classification else t.gold_json) for t in tests}

    @staticmethod
    def _test_sentence(prompt: str) -> str:
        return prompt.rsplit("Sentence: ", 1)[1].rsplit("\n", 1)[0]

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        out = []
        for request in requests:
            gold = self.answers[self._test_sentence(request.prompt or "")]
            # The continuation runs on into a next demo, as a real model's does.
            text = " " + json.dumps(gold) + "\nSentence: more\nOutput: []"
            out.append(GenerationResult(request.request_id, text, 10, 20, "stop"))
        return out

    def next_token_logprobs(self, prompts: list[str], token_ids: list[list[int]]) -> list[list[float]]:
        rows = []
        for prompt, candidates in zip(prompts, token_ids, strict=True):
            gold_token = self.tokenizer.encode(" " + str(self.answers[self._test_sentence(prompt)]))[0]
            rows.append([0.0 if c == gold_token else -5.0 for c in candidates])
        return rows


@pytest.mark.parametrize("scoring", ["official", "strict"])
@pytest.mark.parametrize("key", sorted(SIZES))
def test_oracle_scores_full_marks(data_root, key, scoring):
    spec = SPECS[key]
    evaluation = EvaluationConfig(datasets=[key], limit=40, seeds=[42], scoring=scoring)
    tests = load_examples(data_root, key, "test")[:40]
    oracle = OracleEngine(tests, spec.kind == "classification")
    [row] = evaluate_with_engine(oracle, ModelSpec(name="oracle"), evaluation, data_root, "oracle")
    assert row["invalid_rate"] == 0.0 and row["n"] == 40 and row["scoring"] == scoring
    if key == "absa/opener":
        # Predicted strings are located by first occurrence (as SemEval-22 does): a repeated word can
        # land on another token than the gold span, so even the gold answer may lose a little.
        assert row["f1"] >= 0.95, row
    else:
        assert row["f1"] == pytest.approx(1.0), row


def test_the_trained_student_is_evaluated_with_the_students_settings(tmp_path, data_root):
    from types import SimpleNamespace

    from compeffdist.config import JobConfig
    from compeffdist.evaluation.stages import _models
    from compeffdist.storage import Location

    student = {"name": "org/student", "derive_layers": 2, "trust_remote_code": True, "dtype": "bfloat16",
               "attn_implementation": "eager", "chat_template_kwargs": {"enable_thinking": False}}  # fmt: skip
    config = JobConfig.model_validate({
        "run": {"data_root": str(data_root)}, "models": {"teacher": {"name": "org/teacher"}, "student": student},
        "evaluation": {"models": ["student", "base_student"]},
    })  # fmt: skip
    ctx = SimpleNamespace(config=config, input_files=lambda stage: Location.of(tmp_path / stage / "files"))
    models = _models(ctx)
    trained = models["student"]
    assert trained.name == str(tmp_path / "training" / "files" / "model") and trained.derive_layers is None
    assert trained.model_dump(exclude={"name", "derive_layers"}) == config.models.student.model_dump(
        exclude={"name", "derive_layers"}
    )
    assert models["base_student"] == config.models.student


class ScriptedEngine(OracleEngine):
    """Answers every prompt with one fixed continuation and records the stop strings it was asked for."""

    def __init__(self, continuation: str) -> None:
        self.tokenizer = _FakeTokenizer()
        self.continuation = continuation
        self.stops: list = []

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.stops += [r.stop for r in requests]
        return [GenerationResult(r.request_id, self.continuation, 10, 20, "length") for r in requests]


def test_official_scoring_runs_to_max_tokens_and_reads_a_cut_answer(data_root, tmp_path):
    from compeffdist.evaluation.report import write_reports

    test = next(e for e in load_examples(data_root, "absa/acsa_rest16", "test") if len(e.official_gold) == 1)
    [(category, polarity)] = test.official_gold
    # Cut at max_new_tokens inside a second item: official scoring recovers the first, strict finds no list.
    cut = f' [{{"aspect_category": "{category}", "sentiment": "{polarity}"}}, {{"aspect_category": "food'
    rows = []
    for scoring in ("official", "strict"):
        engine = ScriptedEngine(cut)
        evaluation = EvaluationConfig(datasets=["absa/acsa_rest16"], seeds=[42], scoring=scoring)
        row = evaluate_dataset(
            engine, ModelSpec(name="x"), SPECS["absa/acsa_rest16"], [test], [test] * 4, evaluation, 42
        )
        assert engine.stops == ([None] if scoring == "official" else [[STOP]])
        rows.append({"model": scoring, **row})
    official_row, strict_row = rows
    assert (official_row["f1"], official_row["invalid_rate"]) == (1.0, 0.0)
    assert (strict_row["f1"], strict_row["invalid_rate"]) == (0.0, 1.0)
    write_reports(rows, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["scoring"] == ["official", "strict"]
    assert "Fine-grained scoring: official (the official" in (tmp_path / "evaluation.md").read_text()
