"""ask_teacher's bookkeeping on the real generation worker (run in this process on a scripted engine, no
Ray): one map per step, bounded and counted re-asks inside it, one seed per request and attempt, rejects
with their reason and raw answer, every raw response kept; and the request row that carries the seed to
the generation worker."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from instr_scripted import ScriptedEngine, generate_in_process

import compeffdist.engines as engines
from compeffdist.artifacts import ArtifactStore
from compeffdist.config import JobConfig, SamplingConfig
from compeffdist.engines.base import Engine
from compeffdist.generation.requests import REQUEST_SCHEMA, ErrorKind, GenerationRequest, GenerationResult
from compeffdist.generation.worker import GenerationWorker
from compeffdist.instructions.ids import RETRY_MARK
from compeffdist.instructions.parsing import Parsed
from compeffdist.instructions.schemas import StandardizedTask, TaskIdeaList, request_schema
from compeffdist.instructions.seeds import request_seed
from compeffdist.instructions.teacher import AnswerParser, TeacherCall, ask_teacher
from compeffdist.stage import Stage, StageContext

pytestmark = pytest.mark.unit

SAMPLING = SamplingConfig(temperature=0.7, max_tokens=32)


def _context(tmp_path, parse_retries: int = 2, seed: int = 7) -> StageContext:
    config = JobConfig.model_validate(
        {
            "run": {"output_dir": str(tmp_path / "run"), "data_root": str(tmp_path), "seed": seed},
            "models": {"teacher": {"name": "fake-teacher"}, "student": {"name": "fake-student"}},
            # No engine-level retries: every engine call below is one attempt of the parse re-asks.
            "engines": {"teacher": {"resources": {"max_retries": 0}}},
            "instructions": {"parse_retries": parse_retries, "structured_output": False},
        }
    )
    return StageContext(config, ArtifactStore(tmp_path / "run"), Stage(name="tasks", run=lambda ctx: None), {})


def scripted_answer(request: GenerationRequest) -> GenerationResult:
    """Answers by base request id and attempt.

    ok: parses at once; late: garbage, then parses on the first re-ask; bad: always garbage;
    broken: always an engine error. (lost: never comes back: the map loses it.)
    """
    base, _, attempt = request.request_id.partition(RETRY_MARK)
    if base == "broken":
        return GenerationResult.failure(request.request_id, ErrorKind.ENGINE, "RuntimeError: engine hiccup", 5)
    text = {"ok": "ok 2", "late": "ok 1" if attempt else "gibberish", "bad": f"gibberish {attempt}"}[base]
    return GenerationResult(request.request_id, text, 5, 3, "stop")


def parse(text: str) -> Parsed[str]:
    """'ok N' parses, with N items dropped; anything else does not."""
    if text.startswith("ok"):
        return Parsed([text], "text", int(text.split()[1]))
    return Parsed()


PARSER = AnswerParser(parse, "no list found")
CALLS = [TeacherCall(name, f"prompt {name}") for name in ("ok", "late", "bad", "broken", "lost")]


def _scripted(monkeypatch):
    engine = ScriptedEngine(scripted_answer, model_name="fake-teacher")
    return engine, generate_in_process(monkeypatch, engine, lose=("lost",))


def test_reasks_are_bounded_counted_and_rejects_keep_reason_and_raw(tmp_path, monkeypatch):
    engine, maps = _scripted(monkeypatch)
    ctx = _context(tmp_path, parse_retries=2)
    answers, stats = ask_teacher(ctx, "ideas", CALLS, SAMPLING, PARSER)

    assert sorted(answers) == ["late", "ok"]
    assert answers["late"].items == ["ok 1"] and answers["ok"].method == "text"
    # One map (one actor pool, one model load) for the step, re-asks included: 1 first attempt + 2 bounded
    # re-asks, and only what still fails is asked again.
    assert maps.maps == 1
    assert [sorted(r.request_id for r in call) for call in engine.calls] == [
        ["bad", "broken", "late", "ok"],
        [f"{n}{RETRY_MARK}1" for n in ("bad", "broken", "late")],
        [f"{n}{RETRY_MARK}2" for n in ("bad", "broken")],
    ]
    assert stats.counts("ideas") == {
        "ideas_requests": 5,
        "ideas_parsed": 2,
        "ideas_rejected": 3,
        "ideas_engine_errors": 3,  # one per attempt of "broken"
        "ideas_parse_retries": 5,  # 3 re-asked once, 2 twice ("lost" never reached the engine)
        "ideas_recovered_by_retry": 1,
        "ideas_items_dropped": 3,  # items the parser dropped from the usable answers: 2 + 1
    }
    rejects = {r["location"]: r for r in ctx.rejects}
    assert sorted(rejects) == ["bad", "broken", "lost"]
    assert rejects["bad"]["reason"] == "ideas: no list found" and rejects["bad"]["raw"] == "gibberish 2"
    assert rejects["broken"]["reason"] == "ideas: engine error: RuntimeError: engine hiccup"
    assert rejects["lost"]["reason"] == "ideas: no result row"
    # Every raw response of every attempt is kept, with its verdict.
    kept = pq.read_table(ctx.files_dir / "responses_ideas.parquet").to_pylist()
    status = {r["request_id"]: r["parse_status"] for r in kept}
    assert len(kept) == 5 - 1 + 4 - 1 + 3 - 1  # "lost" never has a row
    assert status["late"] == "rejected: no list found" and status[f"late{RETRY_MARK}1"] == "text"
    assert status[f"bad{RETRY_MARK}2"] == "rejected: no list found"
    assert {r["request_id"]: r["response"] for r in kept}[f"bad{RETRY_MARK}1"] == "gibberish 1"
    assert all(r["messages"] == [{"role": "user", "content": f"prompt {r['request_id'].partition(RETRY_MARK)[0]}"}]
               for r in kept)  # fmt: skip
    assert stats.usage == {"fake-teacher": {"prompt_tokens": 5 * 9, "output_tokens": 3 * 6, "requests": 9}}


def test_every_request_and_every_reask_gets_its_own_reproducible_seed(tmp_path, monkeypatch):
    engine, _ = _scripted(monkeypatch)
    ask_teacher(_context(tmp_path, seed=7), "ideas", CALLS, SAMPLING, PARSER)
    seeds = {r.request_id: r.sampling.seed for call in engine.calls for r in call}
    assert seeds == {request_id: request_seed(7, request_id) for request_id in seeds}
    assert len(set(seeds.values())) == len(seeds)  # a re-ask never repeats its first attempt's seed
    assert all(0 <= s < 2**31 for s in seeds.values())
    assert all(r.sampling.temperature == 0.7 for call in engine.calls for r in call)
    # Reproducible: the same run seed gives the same seeds; another run seed, others.
    assert request_seed(7, "late") == request_seed(7, "late") != request_seed(8, "late")
    # A seed set in the sampling config is the base instead of run.seed.
    engine.calls.clear()
    (tmp_path / "b").mkdir()
    ask_teacher(_context(tmp_path / "b", seed=7), "ideas", CALLS[:1], SAMPLING.model_copy(update={"seed": 3}), PARSER)
    assert engine.calls[0][0].sampling.seed == request_seed(3, "ok")


def test_greedy_answers_are_not_reasked(tmp_path, monkeypatch):
    engine, _ = _scripted(monkeypatch)
    _, stats = ask_teacher(_context(tmp_path), "ideas", CALLS, SamplingConfig(temperature=0.0), PARSER)
    assert len(engine.calls) == 1 and stats.parse_retries == 0 and stats.rejected == 4  # "late" gets no second try


# ---------------------------------------------------------------- request rows


class RecordingEngine(Engine):
    model_name = "recording"
    tokenizer = None

    def __init__(self) -> None:
        self.seeds: dict[str, int | None] = {}

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.seeds.update({r.request_id: r.sampling.seed for r in requests})
        return [GenerationResult(r.request_id, "text", 1, 1, "stop") for r in requests]

    def next_token_logprobs(self, prompts, token_ids):
        raise NotImplementedError


def test_request_row_carries_the_seed_to_the_worker(monkeypatch):
    requests = [
        GenerationRequest("a", messages=[{"role": "user", "content": "hi"}], sampling=SAMPLING.model_copy(
            update={"seed": 11}), json_schema={"type": "object"}),
        GenerationRequest("b", prompt="raw", sampling=SAMPLING),
    ]  # fmt: skip
    table = pa.Table.from_pylist([r.to_row() for r in requests], schema=REQUEST_SCHEMA)
    back = [GenerationRequest.from_row(row, seed=99) for row in table.to_pylist()]
    assert back[0] == requests[0]  # messages, sampling (seed included) and schema survive the row
    assert back[1].sampling.seed == 99 and back[1].prompt == "raw"  # no seed of its own: the fallback
    engine = RecordingEngine()
    monkeypatch.setattr(engines, "create_engine", lambda *a, **k: engine)
    GenerationWorker({"name": "x"}, {"resources": {"max_retries": 0}}, seed=42)(table)
    assert engine.seeds == {"a": 11, "b": 42}


def test_guided_decoding_schemas_use_canonical_keys_and_pin_task_types():
    schema = request_schema(TaskIdeaList, kinds=True)
    item = schema["$defs"]["TaskIdea"]
    assert set(item["properties"]) == {"task_name", "task_type", "task_description"}
    assert item["properties"]["task_type"] == {"type": "string", "enum": ["classification", "rating", "extraction",
                                                                          "structured"]}  # fmt: skip
    assert set(item["required"]) == {"task_name", "task_type", "task_description"}
    task = request_schema(StandardizedTask, kinds=True)
    assert "examples" in task["properties"] and task["properties"]["task_type"]["enum"][0] == "classification"
    assert "enum" not in request_schema(TaskIdeaList)["$defs"]["TaskIdea"]["properties"]["task_type"]
