"""The stage graph and the runner: which stage runs, which is skipped, and how a run resumes."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from compeffdist.artifacts import ROWS_PER_PART, ArtifactStore, Manifest, rejects_table
from compeffdist.config import JobConfig
from compeffdist.failures import StageFailed, clear_failure, load_failure, save_failure, summarize_rejects
from compeffdist.lease import OutputLease
from compeffdist.redact import redact_text
from compeffdist.stage import Stage, StageContext


def all_stages(config: JobConfig | None = None) -> list[Stage]:
    """Every stage of a run in execution order. With `labeling.imported` set, the teacher's answers come from
    files: `responses` reads them, and instruction construction, the pool and records do not run.

    Imports are local so `compeffdist --help` stays light.
    """
    from compeffdist.difficulty.stages import STAGES as DIFFICULTY
    from compeffdist.evaluation.stages import STAGES as EVALUATION
    from compeffdist.training.stages import STAGES as TRAINING

    if config is not None and config.labeling.imported is not None:
        from compeffdist.imported import STAGES as IMPORTED

        stages = [*IMPORTED, *DIFFICULTY, *TRAINING, *EVALUATION]
    else:
        from compeffdist.data.pool import STAGES as POOL
        from compeffdist.instructions.stages import STAGES as INSTRUCTIONS
        from compeffdist.labeling import STAGES as LABELING

        stages = [*POOL, *INSTRUCTIONS, *LABELING, *DIFFICULTY, *TRAINING, *EVALUATION]
    _check_graph(stages)
    return stages


def _check_graph(stages: list[Stage]) -> None:
    seen: set[str] = set()
    for stage in stages:
        missing = [name for name in stage.inputs if name not in seen]
        if missing:
            raise RuntimeError(f"stage {stage.name!r} reads {missing}, which do not run before it")
        seen.add(stage.name)


def file_fingerprint(paths: list[Path]) -> str:
    """Content hash of external input files (user texts, SentiBench splits).

    Names are taken relative to the files' common folder, so the same data mounted elsewhere (a
    laptop, then a cluster volume) keeps every stage up to date.
    """
    digest = hashlib.sha256()
    common = os.path.commonpath([str(Path(p).parent) for p in paths]) if paths else ""
    for path in sorted(paths):
        digest.update(os.path.relpath(path, common).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class StageState:
    stage: str
    state: str  # done | stale | missing | failed
    reason: str
    manifest: Manifest | None


class Runner:
    """Runs stages in order, skipping those whose manifest matches config and inputs."""

    def __init__(self, config: JobConfig, stages: list[Stage] | None = None) -> None:
        self.config = config
        self.stages = stages if stages is not None else all_stages(config)
        self.by_name = {s.name: s for s in self.stages}
        self.store = ArtifactStore(config.run.output_dir)
        self._external_cache: dict[str, str] = {}
        self.lease: OutputLease | None = None

    @contextmanager
    def holding_output(self) -> Iterator[OutputLease]:
        """Hold the lease on run.output_dir for the block (OutputBusy if a live run has it); re-entrant."""
        if self.lease is not None:
            yield self.lease
            return
        settings = self.config.run.lease
        lease = OutputLease(self.store.root, settings.heartbeat_s, settings.stale_after_beats, log=_log)
        lease.acquire()
        self.lease = lease
        try:
            yield lease
        finally:
            self.lease = None
            lease.release()

    def _fence(self, ctx: StageContext) -> None:
        """Publish only while this run holds the output and the stage's work area (raises LeaseLost)."""
        if self.lease is not None:
            self.lease.verify()
        ctx.check_owner()

    def _external(self, stage: Stage) -> dict[str, str]:
        if stage.external_inputs is None:
            return {}
        if stage.name not in self._external_cache:
            self._external_cache[stage.name] = file_fingerprint(stage.external_inputs(self.config))
        return {"<files>": self._external_cache[stage.name]}

    def expected_key(self, stage: Stage) -> dict[str, object] | None:
        """The (config hash, input fingerprints) a valid artifact must carry; None if an input is missing."""
        inputs: dict[str, str] = dict(self._external(stage))
        for name in stage.inputs:
            manifest = self.store.manifest(name)
            if manifest is None:
                return None
            inputs[name] = manifest.fingerprint
        return {"config_hash": self.config.section_hash(stage.sections), "input_fingerprints": inputs}

    def state(self, stage: Stage) -> StageState:
        manifest = self.store.manifest(stage.name)
        if manifest is None:
            failure = load_failure(self.store.root, stage.name)
            if failure is not None:
                return StageState(stage.name, "failed", failure["message"].splitlines()[0], None)
            return StageState(stage.name, "missing", "no artifact", None)
        key = self.expected_key(stage)
        if key is None:
            return StageState(stage.name, "stale", "an input stage has no artifact", manifest)
        if manifest.config_hash != key["config_hash"]:
            return StageState(stage.name, "stale", f"config {', '.join(stage.sections)} changed", manifest)
        if manifest.input_fingerprints != key["input_fingerprints"]:
            changed = sorted(
                k
                for k, v in key["input_fingerprints"].items()
                if manifest.input_fingerprints.get(k) != v  # type: ignore[union-attr]
            )
            return StageState(stage.name, "stale", f"inputs changed: {', '.join(changed)}", manifest)
        return StageState(stage.name, "done", "up to date", manifest)

    def select(self, until: str | None = None, only: list[str] | None = None) -> list[Stage]:
        """The stages a command asks for, in order; unknown names are an error naming the choices."""
        names = [s.name for s in self.stages]
        for name in [until, *(only or [])]:
            if name is not None and name not in self.by_name:
                raise ValueError(f"unknown stage {name!r}; stages are: {', '.join(names)}")
        if only:
            return [s for s in self.stages if s.name in set(only)]
        if until:
            return self.stages[: names.index(until) + 1]
        return list(self.stages)

    def run(
        self, until: str | None = None, only: list[str] | None = None, force: list[str] | None = None
    ) -> list[StageState]:
        """Run the selected stages while holding the output's lease; return each one's final state."""
        selected = self.select(until, only)
        forced = set(force or [])
        unknown = forced - set(self.by_name)
        if unknown:
            raise ValueError(f"unknown stage(s) in --force: {sorted(unknown)}")
        with self.holding_output():
            return self._run_selected(selected, forced)

    def _run_selected(self, selected: list[Stage], forced: set[str]) -> list[StageState]:
        results = []
        for position, stage in enumerate(selected, 1):
            current = self.state(stage)
            if current.state == "done" and stage.name not in forced:
                _log(f"[{position}/{len(selected)}] {stage.name}: up to date, skipped")
                results.append(current)
                continue
            if current.state == "stale":
                _log(f"[{position}/{len(selected)}] {stage.name}: stale ({current.reason}), re-running")
            else:
                _log(f"[{position}/{len(selected)}] {stage.name}: running — {stage.description}")
            self.run_stage(stage)
            results.append(self.state(stage))
        return results

    def run_stage(self, stage: Stage) -> Manifest:
        key = self.expected_key(stage)
        if key is None:
            missing = [n for n in stage.inputs if self.store.manifest(n) is None]
            raise RuntimeError(f"stage {stage.name!r} needs {missing} first (run without --only, or add them)")
        started = time.time()
        ctx = StageContext(self.config, self.store, stage, key, run_id=self.lease.run_id if self.lease else None)
        try:
            output = stage.run(ctx)
        except StageFailed as exc:
            where = save_failure(self.store.root, stage.name, str(exc), rejects_table(ctx.rejects))
            raise StageFailed(f"stage {stage.name}: {exc}\n{summarize_rejects(ctx.rejects)}\nrejects: {where}") from exc
        self._fence(ctx)
        manifest = Manifest(
            stage=stage.name,
            config_hash=str(key["config_hash"]),
            input_fingerprints=dict(key["input_fingerprints"]),  # type: ignore[arg-type]
            seed=self.config.run.seed,
            counts=dict(output.counts),
            models=dict(output.models),
            token_usage=dict(output.token_usage),
            extra={
                "run_id": ctx.run_id,
                "actor_seconds": round(ctx.actor_seconds, 2),
                "gpu_hours": round(ctx.gpu_seconds / 3600, 4),
                **output.extra,
            },
        )
        manifest = self.store.commit(
            manifest,
            output.table,
            rejects=rejects_table(ctx.rejects),
            parts=output.parts,
            files_from=ctx.work_dir / "files",
            started=started,
            rows_per_part=output.rows_per_part or ROWS_PER_PART,
            fence=lambda: self._fence(ctx),
        )
        clear_failure(self.store.root, stage.name)
        ctx.cleanup()
        counts = ", ".join(f"{k}={v}" for k, v in manifest.counts.items())
        _log(f"{stage.name}: done in {manifest.wall_time_s:.1f}s ({counts})")
        return manifest


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {redact_text(message)}", file=sys.stderr, flush=True)
