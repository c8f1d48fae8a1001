# iscsi-agent developer targets. `make test` on a fresh Debian machine installs what it needs first.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
APT_PACKAGES := qemu-system-x86 linux-image-amd64 busybox-static open-iscsi tgt udev multipath-tools sg3-utils iproute2 kmod
DEPS_STAMP := $(VENV)/.deps-installed

.PHONY: deps apt venv demo test test-unit test-vm bench clean

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

# The end-to-end run needs the daemon, which does not exist yet; say so rather than pretend.
demo:
	@echo "make demo: the attach/detach daemon is not built yet (see README, Status)." >&2
	@echo "The closest end-to-end proof today: make test-vm (tests/vm/test_sim_mirror.py)." >&2
	@exit 1

# The README's test command: unit, simulator and contract tests on the host, then the VM tier.
test: deps
	$(VPY) -m pytest -rA -q

test-unit: venv
	ISCSI_AGENT_SKIP_VM=1 $(VPY) -m pytest -q

test-vm: deps
	$(VPY) -m pytest -rA -v tests/vm

bench: venv
	$(VPY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info
