"""The agent's durable record: the attachments it owns and every step of an attach or detach.

An attach or detach is an *operation* made of *steps*. Each step is written (``intend``) before it
is taken and settled (``record_done`` / ``record_failed``) after, so after a crash or power cut the
record tells "intended, not known whether taken" from "done" from "failed". Start-up recovery reads
``Journal.in_flight()`` (operations never finished, with their steps in order) and
``Journal.attachments()``, checks each step whose outcome is unknown against the array and the host,
then rolls back or finishes it and closes the operation with ``finish``.

    model.py   the values: steps, operations, attachments (frozen dataclasses, enums)
    schema.py  the SQLite file: checks on open, the schema version and its migrations
    store.py   ``Journal``: the API the attach/detach service and recovery use
    rows.py    values to SQLite rows and back (JSON parameters, ISO 8601 UTC times)
    errors.py  JournalError and its subtree

No secret ever passes through this API: CHAP secrets and array passwords stay in the
configuration and the host layer; attachments carry no credential field, and a step parameter
or result named like a secret is refused.
"""
