"""ONTAP error conditions, each spelled the way both APIs report it.

The model raises ``OntapError(CONDITION, **facts)``; the ZAPI front end turns it into
``<results status="failed" errno=... reason=...>`` and the REST front end into
``{"error": {"message", "code", "target"}}`` with the HTTP status. Codes marked GUESS are
not documented in the sources we rely on; they are plausible neighbours of documented ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Condition:
    zapi_errno: int
    rest_code: str
    http_status: int
    message: str  # str.format template over the facts
    zapi_message: str | None = None  # where ZAPI words it differently from REST


class OntapError(Exception):
    """A request ONTAP would refuse; carries both wire spellings."""

    def __init__(self, condition: Condition, target: str | None = None, **facts: object) -> None:
        self.condition = condition
        self.target = target
        self.message = condition.message.format(**facts)
        self.zapi_message = (condition.zapi_message or condition.message).format(**facts)
        super().__init__(self.message)


SVM_NOT_FOUND = Condition(15698, "2621462", 404, 'The specified SVM "{svm}" does not exist.')
NO_SVM_GIVEN = Condition(
    13115, "2621707", 400, 'No SVM was specified. Either "svm.name" or "svm.uuid" must be supplied.'
)
INVALID_INPUT = Condition(13115, "2", 400, "{detail}")
NOT_FOUND = Condition(15661, "4", 404, "entry doesn't exist")
API_NOT_FOUND = Condition(13005, "3", 404, "Unable to find API: {api}")
METHOD_NOT_ALLOWED = Condition(13005, "3", 405, "{api}")
LUN_NOT_GIVEN = Condition(13115, "5374901", 400, 'Either "lun.uuid" or "lun.name" must be provided.')
IGROUP_NOT_GIVEN = Condition(13115, "5374902", 400, 'Either "igroup.uuid" or "igroup.name" must be provided.')
INITIATOR_NOT_GIVEN = Condition(13115, "5374033", 400, "No initiator was supplied.")
VOLUME_NOT_FOUND = Condition(9036, "917927", 404, 'Volume "{volume}" does not exist.')  # REST code GUESS
# 15661 EOBJECTNOTFOUND is what C-mode answers for a missing LUN (lun-destroy in nDVP's live-array
# test); 9017 is the 7-Mode "no such LUN" and does not apply here
LUN_NOT_FOUND = Condition(
    15661, "5374875", 404, "The specified LUN does not exist or is not accessible to the caller."
)
MAP_LUN_NOT_FOUND = Condition(15661, "1254201", 404, 'LUN "{lun}" does not exist.')
LUN_EXISTS = Condition(9012, "5374860", 409, 'A LUN already exists at path "{path}".')  # REST code GUESS
LUN_MAPPED = Condition(9013, "5374785", 409, "The LUN is mapped; unmap it first.")  # REST code GUESS
IGROUP_NOT_FOUND = Condition(9003, "5374852", 404, 'The initiator group "{igroup}" does not exist.')
MAP_IGROUP_NOT_FOUND = Condition(
    9003, "5374878", 404, "The initiator group does not exist or is not in the LUN's SVM."
)
IGROUP_EXISTS = Condition(9004, "5374023", 409, 'An initiator group with the name "{igroup}" already exists.')
IGROUP_MAPPED = Condition(9029, "1254213", 409, 'Initiator group "{igroup}" has LUN maps.')
INVALID_INITIATOR = Condition(9006, "5374039", 400, 'Invalid iSCSI initiator name "{initiator}".')
INITIATOR_PRESENT = Condition(
    9008, "5374035", 409, 'Initiator "{initiator}" is already in initiator group "{igroup}".'
)
INITIATOR_ABSENT = Condition(
    9007, "5374034", 404, 'Initiator "{initiator}" is not in initiator group "{igroup}".'
)
ALREADY_MAPPED = Condition(9023, "1254207", 409, "LUN already mapped to this group")
# REST code GUESS: the documented code for a duplicate LUN id per initiator
LUN_ID_IN_USE = Condition(
    9024, "1254324", 409, "LUN ID {lun_id} is already in use in initiator group {igroup}."
)
# errno GUESSES for the per-initiator rules (REST codes are documented for igroup initiator adds)
INITIATOR_SEES_LUN = Condition(
    9023,
    "1254193",
    409,
    "The LUN is already mapped to initiator {initiator} through another initiator group.",
)
LUN_ID_USED_BY_INITIATOR = Condition(
    9024, "1254324", 409, "LUN ID {lun_id} is already used by initiator {initiator}."
)
NO_SUCH_MAP = Condition(9016, "5374922", 404, "The specified LUN map does not exist.")
NO_ISCSI_SERVICE = Condition(15661, "5374078", 404, "The SVM does not have an iSCSI service.")  # errno GUESS
CHAP_NOT_FOUND = Condition(
    13112, "5374895", 404, "Initiator {initiator} not found, please use default authentication."
)
CHAP_EXISTS = Condition(
    13130, "5374142", 409, "A credential already exists for initiator {initiator}."
)  # errno GUESS
CHAP_SAME_PASSWORDS = Condition(
    13115, "5374147", 400, "Inbound and outbound CHAP passwords must be different."
)
CHAP_NEEDS_INBOUND = Condition(13115, "5374149", 400, "Inbound CHAP user and password are required for CHAP.")
CHAP_NEEDS_OUTBOUND_PASSWORD = Condition(
    13115, "5374150", 400, "An outbound CHAP user needs an outbound password."
)
CHAP_NOT_ALLOWED = Condition(
    13115, "5374900", 400, 'CHAP properties are not allowed with authentication type "{auth_type}".'
)
CHAP_DEFAULT_UNDELETABLE = Condition(13115, "5374148", 400, "The default credential cannot be deleted.")
# Resizing (REST codes from ONTAP's lun_modify error table; REST shrink wording as a real array answers
# it). ZAPI: 9041 EVDISK_ERROR_SIZE_TOO_SMALL is documented, 9042 "size unchanged" is what clients see
# for a resize to the current size (ZAPI only: a REST PATCH to the current size changes nothing and
# succeeds); the other lun-resize errnos are GUESSES (13115 invalid input).
LUN_SIZE_INVALID = Condition(13115, "5374130", 400, "An invalid size value was provided: {size}.")
LUN_SIZE_TOO_SMALL = Condition(9041, "5374124", 400, "The specified LUN size is too small: {size} bytes.")
LUN_SIZE_TOO_LARGE = Condition(
    13115, "5374125", 400, "The specified LUN size is too large: {size} bytes; the maximum is {maximum}."
)
LUN_SHRINK_REFUSED = Condition(
    13115,
    "5374892",
    400,
    "Reducing the size of a LUN might cause permanent data loss or corruption and is not supported by the"
    ' LUN REST API. The ONTAP command "lun resize" can be used to reduce the LUN size.',
    "Reducing the size of a LUN might cause permanent data loss or corruption. Use the force flag to"
    " allow the LUN size reduction.",
)
LUN_SIZE_UNCHANGED = Condition(9042, "2", 400, "The new LUN size is the same as the old LUN size.")
