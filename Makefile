# iscsi-agent developer targets. `make test` on a fresh Debian machine installs what it needs first.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# prometheus: its promtool checks a real scrape; curl and e2fsprogs: the VM tests use them as an operator would
APT_PACKAGES := qemu-system-x86 linux-image-amd64 busybox-static open-iscsi tgt udev multipath-tools sg3-utils iproute2 kmod \
	curl e2fsprogs prometheus
DEPS_STAMP := $(VENV)/.deps-installed

.PHONY: deps apt venv demo test lint test-unit test-vm bench chaos fuzz clean

deps: apt venv

# Installs only what is missing, so a second run costs a few dpkg queries.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(DEPS_STAMP)

$(DEPS_STAMP): setup.py pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

# The agent's main job end to end in the real-kernel VM: the simulated array drives tgtd, the agent
# attaches, data goes through the device, everything is detached, and nothing is left.
demo: deps
	$(VPY) -m demo

# The README's test command: the quality gates, then unit, simulator and contract tests on the host,
# then the VM tier.
test: deps lint
	$(VPY) -m pytest -rA -q

# Lint, format and strict typing; `make test` runs these first, so CI enforces them.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test-unit: venv
	ISCSI_AGENT_SKIP_VM=1 $(VPY) -m pytest -q

test-vm: deps
	$(VPY) -m pytest -rA -v tests/vm

# The socket API against 10,000 generated requests of every kind (tests/unit/api/fuzz.py): counts by
# answer status, crashes, hangs and leaks; exits non-zero on any of the last three.
fuzz: venv
	$(VPY) -m tests.unit.api.fuzz --cases 10000 --seed 1

bench: deps
	$(VPY) -m bench

# The chaos soak in the real-kernel VM: a seeded random run of parallel attaches and detaches, kills,
# array, portal and behind-the-back faults, invariants checked after each settle. A failing run prints
# its seed; `make chaos SEED=1234 STEPS=40` runs it again.
STEPS ?= 500
chaos: deps
	$(VPY) -m chaos --steps $(STEPS) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) build *.egg-info
