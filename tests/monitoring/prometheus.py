"""Debian's ``prometheus`` as the monitoring tests run it: scraping one agent every second, with the
shipped alert rules loaded, its data and log in a folder of the caller's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.monitoring.test_rules import MONITORING


def start(folder: Path, target: str, listen: str) -> subprocess.Popen[bytes]:
    """Prometheus scraping ``target`` (host:port), answering at ``listen``; log in folder/prometheus.log."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(MONITORING / "alerts.yml")],
                "scrape_configs": [{"job_name": "iscsi-agent", "static_configs": [{"targets": [target]}]}],
            }
        )
    )
    with (folder / "prometheus.log").open("wb") as log:
        return subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={listen}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
