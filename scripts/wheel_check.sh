#!/usr/bin/env bash
# The package as a user installs it: build the wheel from a clean copy of the sources (no stale build/),
# install it into a fresh virtual environment (torch pinned first, from pip's cache), then run `plan` and a
# small `annotate --config` of that plan and its `report` from it, outside the repository so nothing imports ./src.
# Usage: scripts/wheel_check.sh [PYTHON]   (default: .venv/bin/python, which builds the wheel)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-$repo/.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
cp -r "$repo/pyproject.toml" "$repo/README.md" "$work/src/"
cp -r "$repo/src" "$work/src/src"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/dist" "$work/src"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet torch==2.13.0  # first, so nothing pulls a CUDA build
"$work/venv/bin/python" -m pip install --quiet "$work"/dist/autoannotator-*.whl
cd "$work"
example="$repo/examples/tweets"
head -n 41 "$example/tweets.csv" > small.csv
mkdir plan
"$work/venv/bin/autoannotator" plan --task "$example/task.yaml" --seed "$example/seed.csv" --offline \
  --reviewer gold:gold_label --output plan/pipeline.yaml > plan.log
"$work/venv/bin/autoannotator" annotate --config plan/pipeline.yaml --input small.csv --output labeled.csv --quiet > annotate.log
rows=$("$work/venv/bin/python" -c "import pandas; print(len(pandas.read_csv('labeled.csv')))")
[ "$rows" = 40 ] || { echo "wheel check: expected 40 labeled rows, got $rows" >&2; exit 1; }
"$work/venv/bin/autoannotator" report labeled.csv.run --gold gold_label --output report.html > report.log  # its template ships
grep -q "Accuracy against the review budget" report.html || { echo "wheel check: the report has no budget section" >&2; exit 1; }
echo "wheel check: $(basename "$work"/dist/*.whl) installed in a fresh venv; plan, annotate and report ran from it (40 rows)"
