# The two commands a new user needs (README.md): `make demo` and `make test`.
# Both create .venv and install requirements.txt into it on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup clean

$(VENV)/installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
# librosa's numba functions compiled into .numba_cache once, at install (~1 min here), not in the first stage
	$(PY) -c "import common; common.warm_numba()"
	touch $@

setup: $(VENV)/installed

# the whole pipeline on the offline demo corpus, ending with results/REPORT.md
demo: setup
	$(PY) build_dataset.py --source demo
	$(PY) build_features.py
	$(PY) train_vae.py
	$(PY) train_cvae.py --model all
	$(PY) train_vade.py
	$(PY) train_vade.py --features fg_vtln_bow
	$(PY) analyze_vae.py
	$(PY) analyze_advanced.py
	$(PY) analyze_hybrid.py
	$(PY) analyze_language.py
	@echo "report: results/REPORT.md"

test: setup
	$(PY) -m pytest -q -n auto --dist loadscope --no-loadscope-reorder tests

clean:
	rm -rf data results
