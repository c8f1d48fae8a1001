# iscsi-agent developer targets. `make test` on a fresh Debian machine installs what it needs first.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# prometheus: its promtool checks a real scrape; curl and e2fsprogs: the VM tests use them as an operator would
# libvirt-daemon-system, libvirt-clients: the libvirt hook's VM test runs a real libvirtd
# debhelper .. lintian: `make deb` (tests/packaging builds the package and runs lintian)
DEB_BUILD_PACKAGES := debhelper dh-python python3-all python3-setuptools lintian
# the package's dependencies (debian/control): the systemd tier installs the .deb in the VM, whose root is this machine's
DEB_RUNTIME_PACKAGES := python3-apscheduler python3-lxml python3-prometheus-client python3-pyroute2 python3-requests python3-sdnotify
APT_PACKAGES := qemu-system-x86 linux-image-amd64 busybox-static open-iscsi tgt udev multipath-tools sg3-utils iproute2 kmod \
	curl e2fsprogs prometheus libvirt-daemon-system libvirt-clients $(DEB_BUILD_PACKAGES) $(DEB_RUNTIME_PACKAGES)
# where `make deb` puts the .deb (and lintian's report)
DEB_OUT ?= dist
DEPS_STAMP := $(VENV)/.deps-installed

.PHONY: deps apt venv demo test lint test-unit test-vm bench chaos chaos-short fuzz deb clean

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
# then the VM tier; the 30 slowest tests are listed at the end, so every run shows where its time went.
test: deps lint
	$(VPY) -m pytest -rA -q --durations=30

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

# The two short seeds as VM-tier tests, one per invariant (not yet part of `make test`).
chaos-short: deps
	ISCSI_AGENT_CHAOS_SHORT=1 $(VPY) -m pytest -rA tests/vm/test_chaos.py

# The Debian package, built with Debian's tooling and Python (not a venv's or pyenv's python3 first on
# PATH) from a copy of the tree, so that nothing is written next to the tree; then lintian, whose
# report (overridden tags too, each with its reason from debian/) goes to $(DEB_OUT)/lintian.txt.
# Any error or warning fails the target. Only the build tools are installed for it.
deb: APT_PACKAGES := $(DEB_BUILD_PACKAGES)
deb: apt
	@set -e; build=$$(mktemp -d); trap 'rm -rf "$$build"' EXIT; \
	mkdir "$$build/iscsi-agent"; \
	tar -cf - --exclude-vcs --exclude=./.venv --exclude=./.venv-bench --exclude=./$(DEB_OUT) \
		--exclude=./build --exclude=./.vm-results --exclude='*.egg-info' --exclude=__pycache__ . \
		| tar -xf - -C "$$build/iscsi-agent"; \
	(cd "$$build/iscsi-agent" && env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b); \
	mkdir -p $(DEB_OUT); cp "$$build"/*.deb $(DEB_OUT)/; \
	deb=$$(ls "$$build"/*.deb); echo "built $(DEB_OUT)/$$(basename $$deb)"; \
	env PATH=/usr/sbin:/usr/bin:/sbin:/bin lintian --display-info --show-overrides --fail-on none \
		"$$deb" >$(DEB_OUT)/lintian.txt 2>&1; \
	cat $(DEB_OUT)/lintian.txt; \
	if grep -qE '^(E|W):' $(DEB_OUT)/lintian.txt; then echo "lintian: errors or warnings"; exit 1; fi

clean:
	rm -rf $(VENV) build *.egg-info dist
