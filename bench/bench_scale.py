"""Does the driver's memory stay flat as the record count grows? The per-record chain at N synthetic records.

For each N: N synthetic teacher answers (JSONL, the paper's released format: instruction, output,
cluster, task) are imported -> scored for difficulty by a tiny scorer built from config (1-layer
Llama, hidden 64, own BPE) on a local Ray -> selected (soft, in-prompt, 10%) -> prepared for training
(tokenized and packed by Ray Data tasks). Each N runs in a fresh child process, whose peak RSS
(VmHWM) is the driver's: the number the scale issue bounds. It is also reset once imports and Ray's
start-up are done, so the stages' own peak is reported apart. Ray's own processes (raylet, workers,
object store) are not the driver and are not counted.

    .venv/bin/python bench/bench_scale.py --records 50000 500000 [--answer-words 12] [--templates 200]

Texts and answers are short (8 words each) so 500,000 records score in minutes on 2 cores: the driver holds
no per-record text, so answer length changes the workers' memory and time, not the driver's.
The last line printed is `driver peak RSS ratio largest/smallest N: X`.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA_ROOT, REPO, write_results  # bench/ is on sys.path when a script here runs

TASKS = ("polarity", "intensity", "aspects", "emotion", "rating")
SCORER_VOCAB = "Task judge the of this text. Input: Output:"


def write_answers(path: Path, records: int, templates: int, words: int, seed: int = 0) -> None:
    """N records streamed to JSONL: real SentiBench sentences as inputs, `templates` instruction groups."""
    texts = [r["sentence"] for r in json.loads((DATA_ROOT / "sc/yelp2/train.json").read_text("utf-8-sig"))]
    texts = [" ".join(t.split()[:8]) for t in texts]
    rng = random.Random(seed)
    vocabulary = [
        "positive",
        "negative",
        "neutral",
        "the",
        "food",
        "service",
        "staff",
        "was",
        "great",
        "slow",
        "friendly",
        "price",
        "value",
    ]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(records):
            group = i % templates
            cluster, task = group // len(TASKS), TASKS[group % len(TASKS)]
            text = texts[i % len(texts)]
            record = {
                "instruction": f"Task {group}: judge the {task} of this text.\n\nInput: {text}\nOutput:",
                "output": " ".join(rng.choice(vocabulary) for _ in range(words)) + f" #{i}",
                "selected_cluster_id": cluster,
                "task_name": task,
            }
            handle.write(json.dumps(record) + "\n")


def run_one(workdir: Path, model: Path, answers: Path, records: int) -> dict:
    """The chain at one N, in this process (the child); returns wall times and this process's peak RSS."""
    from compeffdist.config import JobConfig
    from compeffdist.pipeline import Runner
    from compeffdist.raysession import ensure_ray

    config = JobConfig.model_validate(
        {
            "run": {"output_dir": str(workdir / "run"), "data_root": str(DATA_ROOT), "seed": 1},
            "ray": {"num_cpus": 2, "log_to_driver": False},
            "models": {"teacher": {"name": "imported"}, "student": {"name": str(model)}},
            "engines": {
                "scorer": {"max_model_len": 256, "resources": {"batch_size": 256, "max_actors": 2, "torch_threads": 1}}
            },
            "labeling": {"imported": {"files": [{"path": str(answers)}], "teacher": "synthetic"}},
            "difficulty": {"metric": "rank", "chat_template": False, "max_length": 192, "rows_per_task": 4096},
            "selection": {"method": "soft", "scope": "inprompt", "rate": 0.1},
            "training": {"max_seq_len": 256, "packing": True, "num_workers": 1},
        }
    )
    ensure_ray(config.ray)
    runner = Runner(config)
    setup = _peak_mb()  # imports, Ray start-up
    _reset_peak()  # from here on the peak is the stages' own
    walls, peaks = {}, {}
    for stage in ("responses", "difficulty", "selection"):
        started = time.perf_counter()
        runner.run(only=[stage])
        walls[stage] = round(time.perf_counter() - started, 1)
        peaks[stage] = _peak_mb()
    started = time.perf_counter()
    sequences = prepare_training_data(runner, config)
    walls["training data"] = round(time.perf_counter() - started, 1)
    peaks["training data"] = _peak_mb()
    selected = runner.store.manifest("selection").counts["rows"]
    return {
        "records": records,
        "selected": selected,
        "sequences": sequences,
        "wall_s": round(sum(walls.values()), 1),
        **{f"{k} s": v for k, v in walls.items()},
        "setup peak MB": setup,
        # The running peak after each stage shows which one raised it.
        **{f"peak after {k} MB": v for k, v in peaks.items()},
        "driver_peak_rss_mb": max(setup, _peak_mb()),
        "stages_peak_rss_mb": _peak_mb(),
    }


def _peak_mb() -> float:
    """This process's peak resident set (VmHWM) in MB.

    Not `ru_maxrss`: Linux keeps it across exec, so a child started by a big parent reports the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _reset_peak() -> None:
    """Reset VmHWM to the current resident set (Linux >= 4.0), so later peaks are the stages' own."""
    Path("/proc/self/clear_refs").write_text("5")


def prepare_training_data(runner, config) -> int:
    """The training stage's data preparation (tokenize + pack on Ray Data tasks) on the selection's parts."""
    from compeffdist.training.data import prepare_sequences

    result = prepare_sequences(
        runner.store.parts("selection"),
        runner.store.work("training") / "sequences",
        student=config.models.student,
        training=config.training,
        seed=config.run.seed,
    )
    return result.sequences.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[50_000, 500_000])
    parser.add_argument("--templates", type=int, default=200, help="instruction groups (in-prompt selection)")
    parser.add_argument("--answer-words", type=int, default=8)
    parser.add_argument("--child", nargs=4, metavar=("WORKDIR", "MODEL", "ANSWERS", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workdir, model, answers, records = args.child
        print("RESULT " + json.dumps(run_one(Path(workdir), Path(model), Path(answers), int(records))), flush=True)
        return

    from compeffdist.models.tiny import build_tiny_llama

    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    texts = [r["sentence"] for r in json.loads((DATA_ROOT / "sc/yelp2/train.json").read_text("utf-8-sig"))[:400]]
    model = build_tiny_llama(root / "scorer", [*texts, SCORER_VOCAB], hidden_size=64, num_layers=1)
    rows = []
    for records in sorted(args.records):
        workdir = root / f"n{records}"
        workdir.mkdir()
        answers = workdir / "answers.jsonl"
        write_answers(answers, records, args.templates, args.answer_words)
        command = [sys.executable, __file__, "--child", str(workdir), str(model), str(answers), str(records)]
        child = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        result = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
        if child.returncode != 0 or not result:
            print(child.stdout[-3000:], child.stderr[-5000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"N={records}: the child run failed (exit {child.returncode})")
        row = json.loads(result[-1].removeprefix("RESULT "))
        rows.append(row)
        print(f"N={records}: {row['wall_s']} s, driver peak RSS {row['driver_peak_rss_mb']} MB", flush=True)
        shutil.rmtree(workdir, ignore_errors=True)
    columns = [(k, k) for k in rows[0]]
    write_results("scale", rows, columns, {"templates": args.templates, "answer_words": args.answer_words})
    shutil.rmtree(root, ignore_errors=True)
    stages = rows[-1]["stages_peak_rss_mb"] / rows[0]["stages_peak_rss_mb"]
    print(f"peak RSS during the stages, largest/smallest N: {stages:.2f}")
    ratio = rows[-1]["driver_peak_rss_mb"] / rows[0]["driver_peak_rss_mb"]
    print(f"driver peak RSS ratio largest/smallest N: {ratio:.2f}")


if __name__ == "__main__":
    main()
