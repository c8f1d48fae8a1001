"""Packaging for iscsi-agent. The simulator (ontap_sim), tests and benchmarks are not installed."""

from setuptools import find_packages, setup

setup(
    name="iscsi-agent",
    version="0.1.0",
    description="Host-side node agent that attaches NetApp ONTAP LUNs over iSCSI",
    python_requires=">=3.11",
    packages=find_packages(include=["iscsi_agent", "iscsi_agent.*"]),
    install_requires=[
        "requests>=2.28",
        "lxml>=4.9",
        "pyroute2>=0.7",
        "apscheduler>=3.9,<4",
        "prometheus-client>=0.16",
        "sdnotify>=0.3.1",
    ],
    extras_require={
        "test": [
            "pytest>=8.2",
            "pytest-timeout>=2.3",  # the VM tier bounds each test, so one that hangs cannot hold the rest
            "cryptography>=42",
            "virtme-ng==1.42",
            # the quality gates of `make test`, pinned so a new release cannot fail CI on its own
            "ruff==0.17.6",
            "mypy==2.4.1",
            "types-requests",
            "lxml-stubs",
        ],
    },
    entry_points={
        "console_scripts": [
            "iscsi-agent = iscsi_agent.cli:main",
            "iscsi-agentctl = iscsi_agent.ctl:main",
            "iscsi-agent-libvirt-hook = iscsi_agent.libvirt.hook:main",
        ],
    },
)
