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

# The demo: synthetic NTU-format skeletons -> the NTU prep -> GAP (joint stream, MiniLM text
# encoder) trained on the CPU -> the test phase on the best checkpoint, ending with `Top1: xx.xx%`.
DEMO_DATA := data/demo/NTU60_CS.npz
DEMO_WORK := work_dir/demo/lst_joint
DEMO_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

$(DEMO_DATA): data/synthetic.py | $(STAMP)
	$(PY) data/synthetic.py --out-dir data/demo/raw
	$(PY) data/prepare_ntu.py --dataset ntu60 --raw-root data/demo/raw --out-dir data/demo

demo: $(STAMP) $(DEMO_DATA)
	$(DEMO_ENV) $(PY) main_multipart_ntu.py --config config/demo/lst_joint.yaml --work-dir $(DEMO_WORK) --overwrite
	$(DEMO_ENV) $(PY) main_multipart_ntu.py --config config/demo/lst_joint.yaml --phase test --save-score True \
		--work-dir $(DEMO_WORK)_test --weights "$$(ls $(DEMO_WORK)/runs-*.pt | head -n 1)"

clean:
	rm -rf $(VENV) work_dir/demo data/demo
