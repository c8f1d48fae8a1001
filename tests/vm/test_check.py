"""`iscsi-agent check` on a real host: the guest's initiator name, iscsiadm, routing table, and the simulated array."""

import io
from urllib.parse import urlsplit

from iscsi_agent.cli import main
from ontap_sim import Simulator


def test_check_passes_on_the_guest_against_the_simulated_array(tmp_path, initiator_iqn):
    sim = Simulator()
    url = urlsplit(sim.start())
    try:
        conf = tmp_path / "agent.conf"
        conf.touch(mode=0o600)  # it holds the password: the agent refuses it readable by everyone
        conf.write_text(
            f"[array]\nhostname = {url.hostname}\nport = {url.port}\nscheme = http\n"
            "username = admin\npassword = netapp1!\nvserver = svm1\n"
        )
        out = io.StringIO()
        code = main(["check", "--config", str(conf)], out=out)
    finally:
        sim.stop()
    print(out.getvalue())
    lines = {line.split()[1]: line for line in out.getvalue().splitlines()}
    assert code == 0
    assert initiator_iqn in lines["initiator"]
    assert "iscsiadm version" in lines["iscsiadm"]
    assert "over REST" in lines["array"]
    assert "127.0.0.1:3260 via lo, 127.0.0.2:3260 via lo" in lines["portals"]
