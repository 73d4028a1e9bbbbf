"""The difficulty and selection stages on a real local Ray with a tiny scorer: columns, rejects,
truncation (skipped or scored on the visible tokens), a proxy scorer, agreement with the per-token
reference loop, many rows per actor call, resume from shards, non-finite scores kept out of the
selection, and the reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import tiny_config

from compeffdist.config import JobConfig
from compeffdist.difficulty.stages import STAGES as DIFFICULTY_STAGES
from compeffdist.pipeline import Runner
from compeffdist.stage import Stage, StageContext, StageOutput

pytestmark = pytest.mark.integration
RECORDS = 24
MAX_LENGTH = 256


def _responses_table(data_root: Path) -> pa.Table:
    """Teacher-like records: 3 clusters x 2 templates, one failed call, one empty answer, one overlong prompt."""
    texts = [r["sentence"][:160] for r in json.loads((data_root / "sc/yelp2/train.json").read_text("utf-8-sig"))]
    rows = []
    for i in range(RECORDS):
        cluster, template = i % 3, f"t{i % 6}"
        kind = "analysis" if i % 2 else "classification"
        instruction = f"Please analyze the sentiment of this text.\n\nInput: {texts[i]}"
        if i == 5:
            instruction += " again" * 400  # the prompt alone fills max_length
        rows.append(
            {
                "record_id": f"rec-{i:03d}",
                "template_id": template,
                "cluster_id": cluster,
                "kind": kind,
                "task_name": "analysis" if kind == "analysis" else "polarity",
                "text_id": f"text-{i}",
                "messages": [{"role": "user", "content": instruction}],
                "instruction": instruction,
                "response": "" if i == 7 else texts[100 + i][:100],
                "error": "engine timeout" if i == 3 else None,
            }
        )
    return pa.Table.from_pylist(rows)


def _stages(data_root: Path) -> list[Stage]:
    table = _responses_table(data_root)
    return [Stage(name="responses", run=lambda ctx: StageOutput(table=table)), *DIFFICULTY_STAGES]


def _config(tmp_path: Path, data_root: Path, model_dir: Path, **difficulty) -> JobConfig:
    payload = tiny_config(
        tmp_path, data_root, model_dir,
        engines={"scorer": {"resources": {"batch_size": 4, "max_actors": 1, "num_cpus_per_actor": 1}}},
        difficulty={"max_length": MAX_LENGTH, "position_chunk": 16, **difficulty},
        selection={"method": "soft", "scope": "inprompt", "rate": 0.5, "mode": "exact"},
    )  # fmt: skip
    return JobConfig.model_validate(payload)


def test_stages_score_like_the_reference_loop_and_select_with_reports(tmp_path, data_root, tiny_model_dir, ray_local):
    from compeffdist.difficulty.kernel import mean_rank_score
    from compeffdist.difficulty.reference import reference_token_scores
    from compeffdist.difficulty.scorer import DifficultyScorer

    config = _config(tmp_path, data_root, tiny_model_dir, truncated="skip")
    runner = Runner(config, _stages(data_root))
    runner.run()
    scored = runner.store.read_table("difficulty")
    rows = {r["record_id"]: r for r in scored.to_pylist()}
    assert len(rows) == RECORDS - 2  # the failed call and the empty answer are rejected, not scored
    assert {"rec-003", "rec-007"}.isdisjoint(rows)
    rejects = runner.store.read_rejects("difficulty").to_pylist()
    assert sorted(r["location"] for r in rejects) == ["rec-003", "rec-007"]
    assert rows["rec-005"]["truncated"] and rows["rec-005"]["difficulty"] is None
    assert {r["difficulty_metric"] for r in rows.values()} == {"rank"}
    assert set(_responses_table(data_root).column_names) < set(scored.column_names)
    others = [r for r in rows.values() if r["record_id"] != "rec-005"]
    assert all(not r["truncated"] and 0.0 < r["difficulty"] <= 1.0 and r["response_tokens"] > 0 for r in others)

    # The vectorized, batched scores inside Ray actors equal the plain per-token loop, record by record.
    scorer = DifficultyScorer(config.models.student, config.difficulty, config.engines.scorer, config.run.seed)
    source = {r["record_id"]: r for r in _responses_table(data_root).to_pylist()}
    for record_id in sorted(rows)[:8]:
        if record_id == "rec-005":
            continue
        text = scorer.layout(source[record_id])
        expected = mean_rank_score(reference_token_scores(scorer.model, text), exclude_top1=True)
        assert rows[record_id]["difficulty"] == pytest.approx(expected, abs=1e-5)
        assert rows[record_id]["response_tokens"] == text.response_tokens

    manifest = runner.store.manifest("difficulty")
    assert manifest.extra["actor_seconds"] > 0  # the scorer actors' busy time reaches the manifest
    assert manifest.counts["scored"] == RECORDS - 3 and manifest.counts["truncated"] == 1
    assert manifest.token_usage[str(tiny_model_dir)]["prompt_tokens"] > 0
    files = runner.store.files_dir("difficulty")
    assert (files / "difficulty_histogram.png").read_bytes()[:4] == b"\x89PNG"
    report = (files / "difficulty.md").read_text(encoding="utf-8")
    assert "truncated: 1 (0 scored, 1 not scored)" in report

    selected = runner.store.read_table("selection")
    selection = runner.store.manifest("selection")
    assert selection.counts["pool"] == RECORDS - 3 and selection.counts["unscored"] == 1
    assert selected.num_rows == selection.counts["selected"] > 0
    assert "rec-005" not in selected.column("record_id").to_pylist()
    assert all(0 < p <= 1 for p in selected.column("selection_probability").to_pylist())
    groups = json.loads((runner.store.files_dir("selection") / "selection_groups.json").read_text(encoding="utf-8"))
    assert len(groups) == 6 and sum(g["pool"] for g in groups) == RECORDS - 3
    assert sum(g["selected"] for g in groups) == selected.num_rows
    # Exact mode keeps floor or ceil of the expected count in every group.
    assert all(abs(g["selected"] - g["expected"]) < 1 for g in groups)
    report = (runner.store.files_dir("selection") / "selection.md").read_text(encoding="utf-8")
    assert "## By cluster" in report and "## By task kind" in report and "realized rate" in report

    # Selection alone is re-run when only its config changes; the scores are reused.
    config.selection.rate = 0.25
    fresh = Runner(config, _stages(data_root))
    assert {s.name: fresh.state(s).state for s in fresh.stages} == {
        "responses": "done", "difficulty": "done", "selection": "stale"
    }  # fmt: skip


def _published_rows(output) -> list[dict]:
    """A stage output's rows, in id order (parts are read before the next run writes its own)."""
    return pa.concat_tables([part.read_parquet() for part in output.parts]).sort_by("record_id").to_pylist()


def test_a_killed_run_resumes_without_rescoring_finished_shards(tmp_path, data_root, tiny_model_dir, ray_local):
    from compeffdist.difficulty.stages import score_difficulty

    config = _config(tmp_path, data_root, tiny_model_dir, metric="perplexity", chat_template=False, rows_per_task=8)
    runner = Runner(config, _stages(data_root))
    runner.run(until="responses")
    stage = runner.by_name["difficulty"]
    key = runner.expected_key(stage)
    first = score_difficulty(StageContext(config, runner.store, stage, key))  # the work folder is left in place
    shards = sorted((runner.store.work("difficulty").local_path / "shards").glob("*.parquet"))
    assert len(shards) >= 3 and first.counts["resumed"] == 0
    # One shard per actor call: rows_per_task rows, several forward batches (batch_size 4) sorted by length.
    sizes = sorted(pq.read_metadata(p).num_rows for p in shards)
    assert sum(sizes) == RECORDS and sizes[-1] == 8 and sizes[0] > 0
    # The two rows the teacher failed on travel through the scorer unscored, marked for the rejects.
    written = pa.concat_tables([pq.read_table(p) for p in shards])
    unscored = written.filter(pc.invert(pc.is_null(written.column("score_error"))))
    assert unscored.num_rows == 2 and unscored.column("difficulty").null_count == 2
    first_rows = _published_rows(first)
    # As if the run had been killed before its last shards were written: drop one, keep the others untouched.
    shards[0].unlink()
    kept = {p: p.stat().st_mtime_ns for p in shards[1:]}
    again = score_difficulty(StageContext(config, runner.store, stage, key))
    assert again.counts["resumed"] == sum(pq.read_table(p).num_rows for p in kept)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items())
    assert _published_rows(again) == first_rows
    assert again.extra["layout"].startswith("raw concatenation")


def test_proxy_scorer_and_official_truncation(tmp_path, data_root, tiny_model_dir, ray_local):
    """scorer: proxy with a student that does not exist (loading it would fail); truncated: official (the
    default): cut responses are scored on their visible tokens, the record whose prompt fills the window 0.0."""
    from compeffdist.difficulty.kernel import mean_rank_score
    from compeffdist.difficulty.reference import reference_token_scores
    from compeffdist.difficulty.scorer import DifficultyScorer

    payload = _config(tmp_path, data_root, tiny_model_dir).model_dump(mode="json")
    payload["models"]["student"] = {"name": str(tmp_path / "no-such-student")}
    payload["difficulty"].update(scorer="proxy", proxy={"name": str(tiny_model_dir)}, max_length=150)
    config = JobConfig.model_validate(payload)
    runner = Runner(config, _stages(data_root))
    runner.run()
    assert runner.store.manifest("difficulty").models == {"scorer": str(tiny_model_dir)}
    rows = {r["record_id"]: r for r in runner.store.read_table("difficulty").to_pylist()}
    assert config.difficulty.truncated == "official" and not config.difficulty.chat_template
    cut = [r for r in rows.values() if r["truncated"] and r["record_id"] != "rec-005"]
    assert len(cut) >= 3 and rows["rec-005"]["difficulty"] == 0.0  # the prompt alone fills the window
    scorer = DifficultyScorer(config.difficulty.proxy, config.difficulty, config.engines.scorer, config.run.seed)
    source = {r["record_id"]: r for r in _responses_table(data_root).to_pylist()}
    for row in cut[:4]:
        text = scorer.layout(source[row["record_id"]])
        assert text.truncated and text.response_end - text.response_start < text.response_tokens
        expected = mean_rank_score(reference_token_scores(scorer.model, text))
        assert row["difficulty"] == pytest.approx(expected, abs=1e-5)
    report = (runner.store.files_dir("difficulty") / "difficulty.md").read_text(encoding="utf-8")
    assert f"truncated: {len(cut) + 1} ({len(cut) + 1} scored, 0 not scored)" in report
    selection = runner.store.manifest("selection")
    assert selection.counts["pool"] == len(rows) and selection.counts["unscored"] == 0


def test_non_finite_difficulties_are_counted_and_never_selected(tmp_path, data_root, tiny_model_dir):
    """NaN/inf (an IFD can overflow) would sort as the hardest records: the selection leaves them out."""
    values = [0.1, 0.5, 0.9, 0.3, 0.7, math.nan, math.inf, -math.inf, None]
    table = pa.Table.from_pylist(
        [{"record_id": f"d{i}", "difficulty": v, "difficulty_metric": "ifd", "truncated": v is None,
          "cluster_id": 0, "template_id": "t0", "kind": "analysis"} for i, v in enumerate(values)]
    )  # fmt: skip
    stages = [Stage(name="difficulty", run=lambda ctx: StageOutput(table=table)), DIFFICULTY_STAGES[1]]
    payload = _config(tmp_path, data_root, tiny_model_dir).model_dump(mode="json")
    payload["selection"] = {"method": "hard", "scope": "full", "rate": 0.4}
    runner = Runner(JobConfig.model_validate(payload), stages)
    runner.run()
    manifest = runner.store.manifest("selection")
    assert (manifest.counts["pool"], manifest.counts["nonfinite"], manifest.counts["unscored"]) == (5, 3, 1)
    assert sorted(runner.store.read_table("selection").column("record_id").to_pylist()) == ["d2", "d4"]
    report = (runner.store.files_dir("selection") / "selection.md").read_text(encoding="utf-8")
    assert "non-finite difficulty (excluded): 3" in report


def test_heldout_records_are_never_selected(tmp_path, data_root, tiny_model_dir):
    """evaluation.heldout takes its records out of the pool before any selection method sees them."""
    from compeffdist.evaluation.heldout import heldout_ids

    table = pa.Table.from_pylist(
        [{"record_id": f"h{i}", "difficulty": float(i), "difficulty_metric": "rank", "truncated": False,
          "cluster_id": 0, "template_id": "t0", "kind": "analysis"} for i in range(40)]
    )  # fmt: skip
    stages = [Stage(name="difficulty", run=lambda ctx: StageOutput(table=table)), DIFFICULTY_STAGES[1]]
    payload = _config(tmp_path, data_root, tiny_model_dir).model_dump(mode="json")
    payload["selection"] = {"method": "random", "scope": "full", "rate": 1.0}
    payload["evaluation"] = {"heldout": {"fraction": 0.25, "seed": 1}}
    config = JobConfig.model_validate(payload)
    runner = Runner(config, stages)
    runner.run()
    ids = [f"h{i}" for i in range(40)]
    heldout = {rid for rid, out in zip(ids, heldout_ids(ids, config.evaluation.heldout), strict=True) if out}
    selected = set(runner.store.read_table("selection").column("record_id").to_pylist())
    assert heldout and not heldout & selected and selected | heldout == {f"h{i}" for i in range(40)}
    manifest = runner.store.manifest("selection")
    assert manifest.counts["heldout"] == len(heldout) and manifest.counts["pool"] == 40 - len(heldout)
    # Another held-out split makes the selection stale; an evaluation setting outside the split does not.
    config.evaluation.limit = 3
    assert runner.state(stages[1]).state == "done"
    config.evaluation.heldout.seed = 2
    assert runner.state(stages[1]).state == "stale"
