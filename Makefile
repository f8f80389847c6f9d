# The course's commands. `make run` = the main job; `make test` = the tests. Both set themselves up.
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup model run test unit-test nb-test lab clean rehearse notebooks

setup:                          ## create .venv with the pinned environment (idempotent)
	@python3 scripts/install_env.py

model: setup                    ## convert the embedded SmolLM2-135M once into the cache (idempotent)
	@$(PY) scripts/prepare_model.py

run: model                      ## execute every notebook headless; outputs/ gets notebooks, figures, summary
	@$(PY) scripts/run_notebooks.py

test: model                     ## unit tests, then every notebook under nbval (strict)
	@$(PY) scripts/timed.py "unit tests" -- $(PY) -m pytest -q -p no:cacheprovider tests
	@$(PY) scripts/timed.py "notebooks (nbval)" -- $(PY) -m pytest -q -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks

rehearse: setup                 ## every pin has a wheel for Colab's/Kaggle's Python; then Colab, Kaggle, Binder rehearsed
	@$(PY) scripts/check_wheels.py --python-version 3.13
	@$(PY) scripts/check_wheels.py --python-version 3.12
	@$(PY) scripts/rehearse.py colab kaggle binder

notebooks: model                ## notebooks/src/*.py -> notebooks/*.ipynb; runs the ones whose code changed
	@$(PY) scripts/build_notebooks.py --execute

lab: model                      ## JupyterLab on the course
	@.venv/bin/jupyter lab notebooks

clean:
	rm -rf outputs .pytest_cache
