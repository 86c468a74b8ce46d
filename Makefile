# anycast.nva: every command a developer, CI or a new user runs.
# `make demo` is the main job (lab up, both regions deployed, anycast shown);
# `make test` runs every test. Both install what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
COLL := $(ROOT)/.build/ansible_collections/anycast/nva
SANITY_DIR := $(or $(TMPDIR),/tmp)/anycast-nva-sanity
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg

.PHONY: deps venv collection-link image sanity lint unit prometheus integration molecule e2e-fabric e2e e2e-short test demo lab-up lab-down clean bench

deps:  ## system packages (Debian 12) the lab and the tests need
	bash .ci/install-system-deps

venv: $(VENV)/.done
$(VENV)/.done: requirements.txt requirements-dev.txt lab/pyproject.toml  ## the lab package (lab/) installed editable: import anycast_lab without PYTHONPATH
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e lab
	touch $@

collection-link:
	mkdir -p $(dir $(COLL))
	ln -sfn $(ROOT) $(COLL)

sanity: venv  ## ansible-test needs a real tree under ansible_collections/: copy the tracked files
	rm -rf $(SANITY_DIR) && mkdir -p $(SANITY_DIR)/ansible_collections/anycast/nva
	git ls-files -z --cached --others --exclude-standard | xargs -0 -r ls -d 2>/dev/null | tar -cf - -T - | tar -xf - -C $(SANITY_DIR)/ansible_collections/anycast/nva/
	$(PY) .ci/ansible_test_get_pip.py --install-cache
	cd $(SANITY_DIR)/ansible_collections/anycast/nva && $(BIN)/ansible-test sanity --python 3.11 --color no

lint: venv collection-link
	$(BIN)/ansible-lint --profile production

unit: venv collection-link  ## the collection's unit tests, then the lab's own (lab/tests/unit)
	$(BIN)/pytest -q tests/unit lab/tests/unit

# The monitoring files (monitoring/): promtool (Debian package prometheus, installed by deps) checks the alert rules
# and runs their unit tests; the pytest files parse the dashboard's queries with promtool, lint the checker's metrics
# with `promtool check metrics` and render the dashboard picture from a recorded sample (matplotlib, prometheus).
# ANYCAST_REQUIRE_PROMETHEUS=1: a missing tool fails these tests instead of skipping them.
prometheus: deps venv collection-link
	promtool check rules monitoring/prometheus/anycast-nva.rules.yml
	promtool test rules tests/unit/monitoring/rules_test.yml
	$(PY) -m pip install -q -r bench/requirements-bench.txt
	ANYCAST_REQUIRE_PROMETHEUS=1 $(BIN)/pytest -q tests/unit/monitoring tests/unit/healthcheck/test_metrics.py

integration: venv collection-link image  ## the modules against the ARM emulator, then the lab's own: the emulator, the host machinery
	$(BIN)/pytest -q tests/integration lab/tests/integration

image: deps venv  ## the lab hosts' Debian 12 root image (debootstrap, cached in /var/cache/anycast-nva)
	$(PY) -m anycast_lab.hosts image

molecule: venv collection-link image  ## every scenario runs; the failed ones are named at the end
	cd extensions && failed=""; for s in $$(ls molecule | grep -vx -e default -e shared); do \
	  [ -f molecule/$$s/molecule.yml ] || continue; echo "== molecule scenario $$s"; \
	  $(BIN)/molecule test -s $$s || failed="$$failed $$s"; done; \
	  [ -z "$$failed" ] || { echo "molecule scenarios failed:$$failed"; exit 1; }

e2e-fabric: venv collection-link image  ## the lab's Azure behaviour without a deployment (about a minute)
	$(BIN)/pytest -q tests/e2e/test_fabric.py tests/e2e/test_inventories.py

e2e: venv collection-link image  ## everything end to end: deploys both lab regions with site.yml (about 40 minutes)
	$(BIN)/pytest -q tests/e2e

e2e-short: venv collection-link image  ## make e2e without the tests marked long (pytest.ini): what make test runs
	$(BIN)/pytest -q -m "not long" tests/e2e

test: deps venv collection-link sanity lint unit prometheus integration e2e-short molecule release-check

demo: deps venv collection-link image
	$(PY) -m anycast_lab demo

lab-up: deps venv collection-link image
	$(PY) -m anycast_lab up

lab-down: venv
	$(PY) -m anycast_lab down

clean:
	rm -rf .build tests/output

# The benchmarks against the tools teams use today (issue 5): each script writes bench/results/<name>.json,
# report.py prints them as one table (bench/results/summary.md) beside bench/results/failover_timeline.png.
# Every benchmark runs even when an earlier one missed; the failed ones are named at the end. About an hour.
BENCHMARKS := control_plane_bench.py failover_bench.py dataplane_bench.py scale_bench.py rolling_bench.py converge_bench.py
bench: deps venv collection-link image
	$(PY) -m pip install -q -r bench/requirements-bench.txt
	failed=""; for b in $(BENCHMARKS); do echo "== bench/$$b"; $(PY) bench/$$b || failed="$$failed $$b"; done; \
	  $(PY) bench/report.py || failed="$$failed (targets missed)"; \
	  [ -z "$$failed" ] || { echo "benchmarks failed:$$failed"; exit 1; }

# Galaxy release checks (release/check.py): build, fresh-venv install, consumer playbook outside the
# repository against the ARM emulator, antsibull-docs and changelog lint, `ansible-builder create`.
.PHONY: release-check
release-check: venv collection-link image
	$(PY) release/check.py
