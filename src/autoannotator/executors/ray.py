"""The Ray executor: the specialist layer as Ray Data `map_batches` over an actor pool.

Each actor loads the run's active specialist versions from the run directory (so refined versions are
picked up by the next chunk's actors), scores its batches and decides by consensus. Each chunk's results
are written to RUN/blocks/ as Parquet before the driver imports them into the run store, each row with
its item id, text hash and a key of the specialist versions and consensus settings that scored it; a
restarted job imports a block that was written but not imported only when all of those match (never by
row number alone), and skips finished rows.
On a multi-node cluster the run directory must be on storage every node can read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from autoannotator.errors import AnnotatorError
from autoannotator.items import text_hash
from autoannotator.scoring import ConsensusSettings, Scored, score
from autoannotator.specialists import Specialist, load_specialist
from autoannotator.store import STORE_FILE, RunStore
from autoannotator.task import Task

BLOCKS = "blocks"


class PoolScorer:
    """A Ray actor: the specialist pool of one run, loaded once per actor."""

    def __init__(self, run_dir: str, task: dict, names: list[str], settings: dict, allow_remote_code: bool = False) -> None:
        self.task = Task.model_validate(task)
        self.settings = ConsensusSettings.from_wire(settings)
        store = RunStore(Path(run_dir) / STORE_FILE)
        try:
            self.specialists = {
                name: load_specialist(Path(run_dir) / store.active_specialist(name)[1], self.task, allow_remote_code=allow_remote_code)
                for name in names
            }
        finally:
            store.close()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        outcomes = score(self.specialists, self.task.label_names, batch["text"].tolist(), self.settings)
        return pd.DataFrame({
            "row": batch["row"].to_numpy(),
            "hard": [o.hard for o in outcomes],
            "consensus_label": [o.consensus_label for o in outcomes],
            "uncertainty": [o.uncertainty for o in outcomes],
            "votes": [json.dumps(o.votes) for o in outcomes],
            "unanimous": [o.unanimous for o in outcomes],
            "posterior": [json.dumps(o.posterior) for o in outcomes],
        })  # fmt: skip


def scored_from_frame(frame: pd.DataFrame) -> dict[int, Scored]:
    return {
        int(r.row): Scored(hard=bool(r.hard), consensus_label=r.consensus_label, uncertainty=float(r.uncertainty),
                           votes=json.loads(r.votes), unanimous=bool(r.unanimous), posterior=tuple(json.loads(getattr(r, "posterior", "[]"))))
        for r in frame.itertuples()
    }  # fmt: skip


def block_key(versions: dict[str, int], settings: ConsensusSettings) -> str:
    """What a block's results depend on besides the items: the active specialist versions and the consensus settings."""
    return json.dumps({"versions": versions, "settings": settings.wire()}, sort_keys=True)


def write_block(path: Path, results: pd.DataFrame, rows: list[int], ids: list[str], hashes: list[str], key: str) -> None:
    """Write one chunk's results with each row's item id and text hash and the chunk's key, atomically."""
    identity = pd.DataFrame({"row": rows, "item_id": ids, "text_hash": hashes})
    frame = results.merge(identity, on="row", validate="one_to_one").assign(key=key)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    frame.to_parquet(temporary, index=False)
    os.replace(temporary, path)


def reusable_block(path: Path, rows: list[int], ids: list[str], hashes: list[str], key: str) -> dict[int, Scored] | None:
    """A block's results when it holds exactly these items (row, item id, text hash) scored under `key`; else None."""
    if not path.is_file():
        return None
    frame = pd.read_parquet(path)
    if not {"item_id", "text_hash", "key"} <= set(frame.columns) or len(frame) != len(rows):
        return None  # written before blocks carried their items' identity
    stored = sorted(zip(frame["row"].astype(int), frame["item_id"], frame["text_hash"]))
    if stored != sorted(zip(rows, ids, hashes)) or set(frame["key"]) != {key}:
        return None
    return scored_from_frame(frame)


class RayExecutor:
    """Runs on an existing cluster (`address`: 'auto', 'ray://host:10001') or starts a local one."""

    name = "ray"

    def __init__(self, *, address: str | None = None, num_actors: int = 2, batch_size: int = 256, num_gpus_per_actor: float | None = None,
                 num_cpus: int | None = None) -> None:  # fmt: skip
        try:
            import ray
        except ImportError:
            raise AnnotatorError("the ray executor needs Ray: pip install 'autoannotator[ray]'") from None
        if not ray.is_initialized():
            ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                     ignore_reinit_error=True, log_to_driver=False)  # fmt: skip
        gpus = ray.cluster_resources().get("GPU", 0)
        self.num_actors = num_actors
        self.batch_size = batch_size
        self.num_gpus = num_gpus_per_actor if num_gpus_per_actor is not None else (1.0 if gpus >= num_actors else 0.0)

    def score(
        self, rows: list[int], texts: list[str], *, specialists: dict[str, Specialist], labels: list[str],
        settings: ConsensusSettings, run_dir: Path, seconds: dict[str, float], item_ids: list[str] | None = None,
        versions: dict[str, int] | None = None,
    ) -> list[Scored]:  # fmt: skip
        """Score on the actor pool; a block left by a killed job is reused only for the same items, texts,
        specialist versions and settings (without `item_ids` and `versions` a block is never reused)."""
        import ray.data

        block = Path(run_dir) / BLOCKS / f"rows-{rows[0]:09d}-{rows[-1]:09d}.parquet"
        ids = item_ids if item_ids is not None else [""] * len(rows)
        hashes = [text_hash(t) for t in texts]
        key = block_key(versions, settings) if versions is not None else None
        done = reusable_block(block, rows, ids, hashes, key) if item_ids is not None and key is not None else None
        if done is not None:
            return [done[r] for r in rows]
        first = specialists[next(iter(specialists))]
        task = first.task
        frame = pd.DataFrame({"row": rows, "text": texts})
        n_blocks = max(1, min(len(rows) // self.batch_size, 4 * self.num_actors))  # enough blocks to keep every actor busy
        size = -(-len(frame) // n_blocks)
        dataset = ray.data.from_pandas([frame.iloc[i : i + size] for i in range(0, len(frame), size)])
        results = dataset.map_batches(
            PoolScorer, batch_format="pandas", batch_size=self.batch_size, concurrency=self.num_actors, num_gpus=self.num_gpus,
            fn_constructor_kwargs={"run_dir": str(run_dir), "task": task.model_dump(mode="json"), "names": list(specialists),
                                   "settings": {"rule": settings.rule, "epsilon": settings.epsilon,
                                                "aggregator": str(settings.aggregator.folder) if settings.aggregator else None},
                                   "allow_remote_code": first.allow_remote_code},  # the driver's decision, carried to every actor
        ).to_pandas()  # fmt: skip
        write_block(block, results, rows, ids, hashes, key or "")
        done = scored_from_frame(results)
        return [done[r] for r in rows]
