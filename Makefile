# `make test` and `make demo` build .venv from scratch when it is missing, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test demo clean

venv: $(STAMP)

$(STAMP): requirements.txt torchlight/setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip 'setuptools<81' wheel
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install -e torchlight --config-settings editable_mode=compat
	touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q tests

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m demo

clean:
	rm -rf $(VENV) work_dir/demo data/demo
