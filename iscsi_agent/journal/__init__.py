"""The agent's durable record: the attachments it owns and every step of an attach or detach.

An attach or detach is an *operation* made of *steps*. Each step is written (``intend``) before it
is taken and settled (``record_done`` / ``record_failed``) after, so after a crash or power cut the
record tells "intended, not known whether taken" from "done" from "failed".

Start-up recovery reads it so: ``Journal.in_flight()`` gives every operation never finished, its
steps in the order they were intended, ``Operation.unsettled`` the ones whose outcome is unknown.
Each unknown step is looked up on the array and the host by the parameters its intent carries
(``model.STEP_PARAMS``) and settled; then the operation is rolled back (an attach not handed out)
or completed (a detach), its undo steps journalled in the same operation like any other step, so
a recovery that dies half-way is itself recovered, and it is closed with ``finish``.
``Journal.attachments()`` is what the agent owns, with ``attaching`` / ``detaching`` marking those an
interrupted operation was changing.

    model.py   the values: steps, operations, attachments (frozen dataclasses, enums)
    schema.py  the SQLite file: checks on open, the schema version and its migrations
    store.py   ``Journal``: the API the attach/detach service and recovery use
    rows.py    values to SQLite rows and back (JSON parameters, ISO 8601 UTC times)
    errors.py  JournalError and its subtree

No secret ever passes through this API: CHAP secrets and array passwords stay in the
configuration and the host layer; attachments carry no credential field, and a step parameter
or result named like a secret is refused.
"""
