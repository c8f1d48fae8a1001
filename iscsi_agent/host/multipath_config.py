"""multipathd's effective configuration, as ``multipathd show config`` prints it, and the value a device gets.

The file an operator wrote is not what counts: the built-in hardware table (multipath-tools'
NETAPP "LUN" entry among it), drop-ins and merges all land in what the daemon prints::

    defaults {
        user_friendly_names "no"
        find_multipaths "strict"
    }
    devices {
        device {
                vendor "NETAPP"
                product "LUN"
                no_path_retry "queue"
                dev_loss_tmo "infinity"
        }
    }
    overrides {
    }

A key's value for one device is found as libmultipath's propsel.c finds it (0.9.4): ``overrides``,
then the ``devices`` entries whose vendor and product regular expressions match, the last one
first (an operator's entries follow the built-in ones; one with a built-in's exact vendor and
product is merged into it), then ``defaults``. So ``defaults { user_friendly_names yes }`` does not
reach an ONTAP LUN: its built-in entry says ``no``. (The per-WWID ``multipaths`` section comes
before all of these, but names LUNs one at a time; it is not judged here.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOT_SET = "not set anywhere"


@dataclass(frozen=True)
class Section:
    """One ``name { ... }`` block: its ``key value`` lines in order, and its sub-blocks."""

    name: str
    values: tuple[tuple[str, str], ...] = ()
    children: tuple[Section, ...] = ()

    def get(self, key: str) -> str | None:
        """The key's value; the last line wins, as in multipath.conf."""
        found = [value for name, value in self.values if name == key]
        return found[-1] if found else None

    def sections(self, name: str) -> tuple[Section, ...]:
        return tuple(child for child in self.children if child.name == name)

    def section(self, name: str) -> Section:
        """The first sub-block of that name, or an empty one."""
        return next(iter(self.sections(name)), Section(name))


@dataclass(frozen=True)
class Setting:
    value: str | None
    source: str  # where it came from: "overrides", a device entry, "defaults", or NOT_SET


def _value(rest: str) -> str:
    """A simple word, or one double-quoted string in which ``""`` is a quote (multipath.conf(5))."""
    if not rest.startswith('"'):
        words = rest.split(maxsplit=1)
        return words[0] if words else ""
    out, index = [], 1
    while index < len(rest):
        char = rest[index]
        if char == '"':
            if rest[index + 1 : index + 2] == '"':
                out.append('"')
                index += 2
                continue
            break
        out.append(char)
        index += 1
    return "".join(out)


def parse_config(text: str) -> Section:
    """The whole printed configuration as one unnamed section holding ``defaults``, ``devices``, ..."""
    stack: list[tuple[str, list[tuple[str, str]], list[Section]]] = [("", [], [])]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        if line == "}":
            if len(stack) > 1:
                name, values, children = stack.pop()
                stack[-1][2].append(Section(name, tuple(values), tuple(children)))
            continue
        key, _, rest = line.partition(" ")
        if line.endswith("{") and (not rest or rest.strip() == "{"):
            stack.append((key.rstrip("{"), [], []))
            continue
        stack[-1][1].append((key, _value(rest.strip())))
    while len(stack) > 1:  # an unclosed block (cut-off output) still counts as far as it goes
        name, values, children = stack.pop()
        stack[-1][2].append(Section(name, tuple(values), tuple(children)))
    return Section("", tuple(stack[0][1]), tuple(stack[0][2]))


def _matches(pattern: str | None, text: str) -> bool:
    """libmultipath matches vendor and product as unanchored POSIX extended regular expressions."""
    if pattern is None:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _entries(section: Section, vendor: str, product: str) -> tuple[Section, ...]:
    return tuple(
        device
        for device in section.sections("device")
        if _matches(device.get("vendor"), vendor) and _matches(device.get("product"), product)
    )


def _named(where: str, device: Section) -> str:
    return f'{where} {{ device {{ vendor "{device.get("vendor")}" product "{device.get("product")}" }} }}'


def effective(config: Section, key: str, vendor: str, product: str) -> Setting:
    """The value ``key`` takes for a device of that vendor and product, and where it comes from."""
    overrides = config.section("overrides").get(key)
    if overrides is not None:
        return Setting(overrides, "overrides")
    for device in reversed(_entries(config.section("devices"), vendor, product)):
        value = device.get(key)
        if value is not None:
            return Setting(value, _named("devices", device))
    defaults = config.section("defaults").get(key)
    if defaults is not None:
        return Setting(defaults, "defaults")
    return Setting(None, NOT_SET)


def blacklisting(config: Section, vendor: str, product: str) -> str | None:
    """The ``blacklist`` device entry that keeps multipathd off such a device, unless an exception takes it back."""
    if _entries(config.section("blacklist_exceptions"), vendor, product):
        return None
    entries = _entries(config.section("blacklist"), vendor, product)
    return _named("blacklist", entries[0]) if entries else None


def aliases(config: Section) -> tuple[tuple[str, str], ...]:
    """(wwid, alias) of every ``multipaths`` entry that names its map itself; it wins over any other setting."""
    return tuple(
        (entry.get("wwid") or "", alias)
        for entry in config.section("multipaths").sections("multipath")
        if (alias := entry.get("alias"))
    )
