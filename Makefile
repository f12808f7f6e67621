# halab: `sudo make demo` and `sudo make test` are all a student needs.
# The venv is made from the distribution's python3 with --system-site-packages,
# because Mininet comes from apt and lives in the system's dist-packages.

VENV      ?= .venv
PY        := $(VENV)/bin/python
SYSPY     ?= /usr/bin/python3
DEMO      ?= exercises/01-health-checks-and-failover/scenario.toml
PYTEST    ?= $(PY) -m pytest

.PHONY: install demo test lint unit integration clean-lab distclean test-platform

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install-system.sh
	bash scripts/install-system.sh
	$(SYSPY) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,fast]'
	@if [ -w /usr/local/bin ]; then ln -sf "$(abspath $(VENV))/bin/halab" /usr/local/bin/halab; fi
	touch $@

demo: install
	$(VENV)/bin/halab run $(DEMO)

test: install lint
	$(PYTEST) -q tests

lint: install
	$(VENV)/bin/ruff check .

unit: install
	$(PYTEST) -q tests/unit

integration: install
	$(PYTEST) -q tests/integration

# a minimal system of another Debian release (debootstrap + systemd-nspawn): make demo and make unit there
test-platform:
	bash scripts/test-platform.sh $(DIST)

clean-lab: install
	$(VENV)/bin/halab clean

distclean:
	rm -rf $(VENV) *.egg-info
