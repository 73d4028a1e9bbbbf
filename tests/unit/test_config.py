"""Config validation: strictness, field-path messages, cross-field rules, ready configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from compeffdist.config import ConfigError, JobConfig, load_config

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _base(data_root: Path) -> str:
    return f"run: {{data_root: {data_root}}}\nmodels: {{teacher: {{name: t}}, student: {{name: s}}}}\n"


def test_minimal_config_gets_paper_defaults(tmp_path, data_root):
    config = load_config(_write(tmp_path, _base(data_root)))
    assert config.selection.rate == 0.1 and config.selection.method == "soft"
    assert config.difficulty.top_p == 0.95 and config.difficulty.exclude_top1
    assert config.training.learning_rate == 5e-5 and config.training.epochs == 4
    assert config.instructions.clustering.preference_percentile == 0.5


def test_unknown_key_is_an_error_naming_the_path(tmp_path, data_root):
    path = _write(tmp_path, _base(data_root) + "selection: {rate: 0.1, sampl_rate: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "selection.sampl_rate" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("rate", [0, 1.5, -0.1])
def test_ratio_outside_unit_interval_is_rejected(tmp_path, data_root, rate):
    with pytest.raises(ConfigError, match=r"selection\.rate"):
        load_config(_write(tmp_path, _base(data_root) + f"selection: {{rate: {rate}}}\n"))


def test_missing_data_root_names_the_download_command(tmp_path):
    text = "run: {data_root: /nonexistent/sentibench}\nmodels: {teacher: {name: t}, student: {name: s}}\n"
    with pytest.raises(ConfigError, match=r"run\.data_root.*data download sentibench"):
        load_config(_write(tmp_path, text))


def test_deepspeed_batch_mismatch_is_caught(tmp_path, data_root):
    text = _base(data_root) + (
        "training: {micro_batch_size: 2, gradient_accumulation_steps: 4, num_workers: 2,\n"
        "  deepspeed: {train_batch_size: 64, zero_optimization: {stage: 2}}}\n"
    )
    with pytest.raises(ConfigError, match=r"train_batch_size is 64 .* = 16"):
        load_config(_write(tmp_path, text))


def test_deepspeed_zero_section_is_validated_by_deepspeed(tmp_path, data_root):
    text = _base(data_root) + "training: {deepspeed: {zero_optimization: {stage: 7}}}\n"
    with pytest.raises(ConfigError, match=r"zero_optimization"):
        load_config(_write(tmp_path, text))


def test_actor_pool_bounds_checked(tmp_path, data_root):
    text = _base(data_root) + "engines: {teacher: {resources: {min_actors: 3, max_actors: 2}}}\n"
    with pytest.raises(ConfigError, match=r"engines\.teacher\.resources.*min_actors"):
        load_config(_write(tmp_path, text))


def test_relative_paths_resolve_against_the_config_file(tmp_path, data_root):
    config = load_config(
        _write(tmp_path, _base(data_root) + "run: {data_root: " + str(data_root) + ", output_dir: out}\n")
    )
    assert config.run.output_dir == str((tmp_path / "out").resolve())


def test_section_hash_changes_only_with_its_section(tmp_path, data_root):
    config = load_config(_write(tmp_path, _base(data_root)))
    before = (config.section_hash(("selection",)), config.section_hash(("difficulty",)))
    config.selection.rate = 0.2
    assert config.section_hash(("selection",)) != before[0]
    assert config.section_hash(("difficulty",)) == before[1]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_ready_configs_validate(name, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    config = load_config(REPO / "configs" / name)
    assert isinstance(config, JobConfig)


def test_paper_family_configs_carry_the_paper_recipe(data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    for name in ("llama3-70b-to-3b.yaml", "qwen3-32b-to-4b.yaml", "gemma3-27b-to-4b.yaml"):
        config = load_config(REPO / "configs" / name)
        t = config.training
        assert (t.learning_rate, t.weight_decay, t.betas, t.epochs, t.warmup_steps) == (5e-5, 0.1, (0.9, 0.999), 4, 0)
        assert t.max_seq_len == 2048 and t.gradient_clipping == 1.0 and t.lr_scheduler == "cosine"
        assert config.selection.rate == 0.1 and config.instructions.min_attribute_count == 10


def test_selection_and_training_seeds_vary_their_stage_alone(tmp_path, data_root):
    base = _base(data_root)
    config = load_config(_write(tmp_path, base))
    assert config.seed_of("selection") == config.seed_of("training") == config.run.seed
    seeded = load_config(_write(tmp_path, base + "selection: {seed: 5}\ntraining: {seed: 6}\n"))
    assert (seeded.seed_of("selection"), seeded.seed_of("training")) == (5, 6)
    upstream = ("difficulty", "run.seed")
    assert seeded.section_hash(upstream) == config.section_hash(upstream)  # teacher data and scores stay valid
    assert seeded.section_hash(("selection", "run.seed")) != config.section_hash(("selection", "run.seed"))


# -- strict values: no bool->int, no str->number; --set problems name the argument --------------------


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("labeling: {records: true}", r"labeling\.records: Input should be a valid integer \(got bool True\)"),
        ("labeling: {records: '100'}", r"labeling\.records: .*valid integer \(got str '100'\)"),
        ("training: {learning_rate: 5e-5}", r"training\.learning_rate: .*got str '5e-5'.*5\.0e-5 as a number"),
        ("training: {epochs: 2.0}", r"training\.epochs: .*got float 2\.0"),
        ("training: {betas: ['0.9', 0.99]}", r"training\.betas\.0: .*got str '0\.9'"),
        ("ray: {include_dashboard: 'yes'}", r"ray\.include_dashboard: .*valid boolean"),
    ],
)
def test_values_are_never_coerced(tmp_path, data_root, section, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, _base(data_root) + section + "\n"))


def test_yaml_forms_of_paths_tuples_and_floats_still_load(tmp_path, data_root):
    text = _base(data_root) + "training: {betas: [0.8, 0.9], learning_rate: 1.0e-4, gradient_clipping: 1}\n"
    config = load_config(_write(tmp_path, text))
    assert config.training.betas == (0.8, 0.9) and config.training.gradient_clipping == 1.0
    assert isinstance(config.run.data_root, Path)


def test_set_errors_name_the_set_argument_not_the_file(tmp_path, data_root):
    path = _write(tmp_path, _base(data_root))
    with pytest.raises(ConfigError) as info:
        load_config(path, {"labeling.records": True, "labeling.recrods": 5, "engines.teacher.resources.batch_size": 4})
    message = str(info.value)
    assert "  --set labeling.records=true: Input should be a valid integer (got bool True)" in message
    assert "  --set labeling.recrods=5: unknown field (not in the config schema)" in message
    assert "batch_size" not in message  # a valid --set is not mentioned
    with pytest.raises(ConfigError, match=r"  engines\.teacher: .* \(with --set engines\.teacher\.batch_size=4\)"):
        load_config(path, {"engines.teacher.batch_size": 4})  # a rule of the section, broken by --set
    with pytest.raises(ConfigError, match=r"--set labeling\.records\.x: labeling\.records is 5"):
        load_config(_write(tmp_path, _base(data_root) + "labeling: {records: 5}\n"), {"labeling.records.x": 1})


def test_user_files_get_their_format_from_the_extension_or_config(tmp_path, data_root):
    (tmp_path / "a.csv").write_text("text\nhello world\n", encoding="utf-8")
    (tmp_path / "b.dump").write_text("hello world\n", encoding="utf-8")
    (tmp_path / "c.xlsx").write_bytes(b"PK")
    files = "pool: {files: [{path: a.csv}, {path: b.dump, format: text}]}\n"
    config = load_config(_write(tmp_path, _base(data_root) + files))
    assert [f.format for f in config.pool.files] == ["csv", "text"]
    with pytest.raises(ConfigError, match=r"pool\.files\.0\.format: cannot tell the format of .*c\.xlsx"):
        load_config(_write(tmp_path, _base(data_root) + "pool: {files: [{path: c.xlsx}]}\n"))
    with pytest.raises(ConfigError, match=r"pool\.files\.0\.format: Input should be 'jsonl', 'json'"):
        load_config(_write(tmp_path, _base(data_root) + "pool: {files: [{path: a.csv, format: xlsx}]}\n"))


def test_lease_settings_and_their_bounds(tmp_path, data_root):
    text = _base(data_root) + f"run: {{data_root: {data_root}, lease: {{heartbeat_s: 2, stale_after_beats: 3}}}}\n"
    lease = load_config(_write(tmp_path, text)).run.lease
    assert (lease.heartbeat_s, lease.stale_after_beats) == (2.0, 3)
    with pytest.raises(ConfigError, match=r"run\.lease\.stale_after_beats"):
        load_config(_write(tmp_path, _base(data_root)), {"run.lease.stale_after_beats": 1})
