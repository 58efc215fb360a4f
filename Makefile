# The two set-up commands of the README: `make demo` and `make test` (each builds .venv first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/autoannotator
# torch is pinned and installed first, so nothing pulls a different (CUDA) build behind it.
TORCH ?= torch==2.13.0
DEMO_OUT ?= runs/demo/tweets.labeled.csv
# llama-cpp-python compiles from source. A -march=native build crashed here (AMX kernels on this VM), so on
# x86-64 it is built for AVX2, which any x86-64 CPU of the last decade runs; --no-cache-dir keeps pip from
# reusing a wheel built with other flags.
LLAMA_CMAKE_ARGS ?= $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON,)

.PHONY: venv demo demo-llm test wheel-check bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	@echo "compiling llama-cpp-python (the embedded LLM): several minutes on 2 cores, quiet while it builds"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet --no-cache-dir "llama-cpp-python[server]>=0.3.8"
	$(PY) -m pip install --quiet -e ".[test,llm,bench,ray]"
	touch $@

# The best routing measured (benchmarks/results/quality.md): the learned consensus, 20% of the items reviewed.
# The paper's rule (review every disagreement) is `--rule vote` without --budget.
DEMO_ROUTING ?= --rule learned --budget 0.2

demo: venv
	$(CLI) annotate --task examples/tweets/task.yaml --input examples/tweets/tweets.csv \
		--seed examples/tweets/seed.csv --specialists tfidf,embedding,lexicon $(DEMO_ROUTING) \
		--reviewer gold:gold_label --output $(DEMO_OUT)
	$(CLI) evaluate $(DEMO_OUT) --gold gold_label --task examples/tweets/task.yaml
	$(CLI) report $(DEMO_OUT).run --gold gold_label --output runs/demo/report.html

# The same run with the embedded LLM (Gemma 3 270M, in-process) reviewing the hard items instead of gold labels.
demo-llm: venv
	$(CLI) annotate --task examples/tweets/task.yaml --input examples/tweets/tweets.csv \
		--seed examples/tweets/seed.csv --specialists tfidf,embedding,lexicon $(DEMO_ROUTING) \
		--reviewer llm --output runs/demo-llm/tweets.labeled.csv
	$(CLI) evaluate runs/demo-llm/tweets.labeled.csv --gold gold_label --task examples/tweets/task.yaml

test: venv
	$(PY) -m pytest

# The package as a user installs it: the wheel in a fresh virtual environment runs `plan` and a small `annotate`.
wheel-check: venv
	scripts/wheel_check.sh $(PY)

bench: venv
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/review_throughput.py

clean:
	rm -rf runs .pytest_cache
