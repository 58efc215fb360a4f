# The two set-up commands of the README: `make demo` and `make test` (each builds .venv first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/autoannotator
# torch is pinned and installed first, so nothing pulls a different (CUDA) build behind it.
TORCH ?= torch==2.13.0
DEMO_OUT ?= runs/demo/tweets.labeled.csv

.PHONY: venv demo test bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: venv
	$(CLI) annotate --task examples/tweets/task.yaml --input examples/tweets/tweets.csv \
		--seed examples/tweets/seed.csv --specialists tfidf,embedding,lexicon \
		--reviewer gold:gold_label --output $(DEMO_OUT)
	$(CLI) evaluate $(DEMO_OUT) --gold gold_label --task examples/tweets/task.yaml

test: venv
	$(PY) -m pytest

bench: venv
	$(PY) benchmarks/throughput.py

clean:
	rm -rf runs .pytest_cache
