"""multipathd's effective configuration, parsed from captured `multipath -t` output (the text
`multipathd show config` prints; multipath-tools 0.9.4, Debian 12) and looked up as libmultipath does.

The captures: `stock` with no /etc/multipath.conf; `vm-tier` with the VM tier's file (tests/vmtier/guest.py:
a "NETAPP" "LUN C-Mode" device entry with no_path_retry 2); `overridden` with `defaults { user_friendly_names
yes; find_multipaths yes }`, a "NETAPP" "LUN" device entry (no_path_retry fail, dev_loss_tmo 60), which
multipath-tools merges into its built-in one, and `overrides { user_friendly_names yes }`.
"""

from pathlib import Path

import pytest

from iscsi_agent.host.multipath_config import Setting, blacklisting, effective, parse_config

CAPTURED = Path(__file__).parent / "captured"
VENDOR, PRODUCT = "NETAPP", "LUN C-Mode"


def captured(name: str):
    return parse_config((CAPTURED / f"multipath-config-{name}.txt").read_text())


def test_the_stock_configuration_gives_ontap_luns_the_built_in_netapp_entry():
    config = captured("stock")
    device = 'devices { device { vendor "NETAPP" product "LUN" } }'
    assert effective(config, "user_friendly_names", VENDOR, PRODUCT) == Setting("no", device)
    assert effective(config, "no_path_retry", VENDOR, PRODUCT) == Setting("queue", device)
    assert effective(config, "dev_loss_tmo", VENDOR, PRODUCT) == Setting("infinity", device)
    assert effective(config, "find_multipaths", VENDOR, PRODUCT) == Setting("strict", "defaults")


def test_a_later_device_entry_that_matches_wins_over_the_built_in_one():
    config = captured("vm-tier")
    assert effective(config, "no_path_retry", VENDOR, PRODUCT) == Setting(
        "2", 'devices { device { vendor "NETAPP" product "LUN C-Mode" } }'
    )
    # the user's entry does not set it, so the built-in NETAPP "LUN" entry still does
    assert effective(config, "dev_loss_tmo", VENDOR, PRODUCT).value == "infinity"


def test_overrides_win_over_devices_and_a_merged_entry_keeps_what_it_does_not_set():
    config = captured("overridden")
    assert effective(config, "user_friendly_names", VENDOR, PRODUCT) == Setting("yes", "overrides")
    device = 'devices { device { vendor "NETAPP" product "LUN" } }'
    assert effective(config, "no_path_retry", VENDOR, PRODUCT) == Setting("fail", device)
    assert effective(config, "dev_loss_tmo", VENDOR, PRODUCT) == Setting("60", device)
    assert effective(config, "find_multipaths", VENDOR, PRODUCT) == Setting("on", "defaults")


def test_defaults_apply_only_where_no_device_entry_or_override_sets_the_key():
    config = parse_config('defaults {\n\tuser_friendly_names "yes"\n\tno_path_retry 5\n}\n')
    assert effective(config, "user_friendly_names", VENDOR, PRODUCT) == Setting("yes", "defaults")
    assert effective(config, "dev_loss_tmo", VENDOR, PRODUCT) == Setting(None, "not set anywhere")


def test_a_defaults_line_does_not_reach_a_device_whose_entry_sets_the_key():
    text = (CAPTURED / "multipath-config-stock.txt").read_text()
    config = parse_config(text.replace('user_friendly_names "no"', 'user_friendly_names "yes"', 1))
    assert effective(config, "user_friendly_names", VENDOR, PRODUCT).value == "no"


def test_device_entries_of_other_vendors_or_products_do_not_apply():
    config = parse_config(
        'devices {\n\tdevice {\n\t\tvendor "NETAPP"\n\t\tproduct "INF-01-00"\n\t\tno_path_retry 30\n\t}\n'
        '\tdevice {\n\t\tvendor "(NETAPP|LSI)"\n\t\tproduct "LUN"\n\t\tno_path_retry 12\n\t}\n}\n'
    )
    assert effective(config, "no_path_retry", VENDOR, PRODUCT).value == "12"


@pytest.mark.parametrize(
    ("blacklist", "exceptions", "expected"),
    [
        (
            '\tdevice {\n\t\tvendor "NETAPP"\n\t\tproduct ".*"\n\t}\n',
            "",
            'blacklist { device { vendor "NETAPP" product ".*" } }',
        ),
        (
            '\tdevice {\n\t\tvendor "NETAPP"\n\t\tproduct ".*"\n\t}\n',
            '\tdevice {\n\t\tvendor "NETAPP"\n\t\tproduct "LUN"\n\t}\n',
            None,
        ),
        ('\tdevice {\n\t\tvendor "LSI"\n\t\tproduct ".*"\n\t}\n', "", None),
    ],
)
def test_a_blacklist_device_entry_names_itself_unless_an_exception_takes_the_device_back(
    blacklist, exceptions, expected
):
    config = parse_config(f"blacklist {{\n{blacklist}}}\nblacklist_exceptions {{\n{exceptions}}}\n")
    assert blacklisting(config, VENDOR, PRODUCT) == expected


def test_the_stock_blacklist_does_not_take_ontap_luns():
    assert blacklisting(captured("stock"), VENDOR, PRODUCT) is None


def test_quoted_values_keep_their_spaces_and_doubled_quotes():
    config = parse_config('defaults {\n\tfeatures "2 pg_init_retries 50"\n\talias_prefix "a""b"\n}\n')
    assert effective(config, "features", VENDOR, PRODUCT).value == "2 pg_init_retries 50"
    assert effective(config, "alias_prefix", VENDOR, PRODUCT).value == 'a"b'
