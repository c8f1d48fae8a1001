"""Builds the ArrayClient for a configured array, choosing ZAPI or REST when ``api = auto``.

REST is chosen from ONTAP 9.11.1 on. The SAN endpoints used here appeared in 9.6, but there
is no real-array evidence that everything the agent reads (the ``return_records`` echo of a
created map, ``reporting_nodes`` on lun-maps, ``location.logical_unit`` filters, credentials
PATCH) behaves the same on 9.6-9.10. Cinder, the production client with the widest real-array
coverage, supports its REST client only from 9.11.1, so the agent adopts that tested
threshold; below it ZAPI is complete and proven on every ONTAP 9 release.

Detection is one cheap ``GET /api/cluster?fields=version``: a cluster without a REST API
(before 9.6) fails it and gets ZAPI.

The ZAPI modules (and lxml with them) are imported only when ZAPI is chosen: an agent that talks
REST never needs them, and one that talks ZAPI needs them once the array is first asked, after
start-up.
"""

from __future__ import annotations

import logging

from iscsi_agent.array.cache import LunCache
from iscsi_agent.array.client import ArrayClient
from iscsi_agent.array.errors import ArrayApiError, ArrayResponseError
from iscsi_agent.array.model import Version
from iscsi_agent.array.ontap import OntapClient
from iscsi_agent.array.ops import ArrayOps
from iscsi_agent.array.rest import RestConnection
from iscsi_agent.array.rest_ops import RestOps
from iscsi_agent.array.settings import ApiChoice, ArraySettings
from iscsi_agent.array.transport import HttpTransport

log = logging.getLogger(__name__)

REST_MINIMUM = (9, 11, 1)


def connect(settings: ArraySettings, *, transport: HttpTransport | None = None) -> ArrayClient:
    """An ArrayClient for ``settings``; ``api = auto`` costs one version request to the array."""
    transport = transport or HttpTransport.from_settings(settings)
    api = settings.api
    if api is ApiChoice.AUTO:
        api = detect_api(transport)
    ops: ArrayOps
    if api is ApiChoice.REST:
        ops = RestOps(RestConnection(transport, settings.vserver, page_size=settings.page_size))
    else:
        from iscsi_agent.array.zapi import ZapiConnection
        from iscsi_agent.array.zapi_ops import ZapiOps

        ops = ZapiOps(ZapiConnection(transport, settings.vserver, page_size=settings.page_size))
    log.info("talking to %s over %s", transport.base_url, ops.api)
    return OntapClient(ops, cache=LunCache(settings.lun_cache_size), budgets=transport.budgets)


def detect_api(transport: HttpTransport) -> ApiChoice:
    """REST when the cluster reports a release that has all we need, else ZAPI.

    Authentication and connection failures propagate: ZAPI would fail the same way.
    """
    try:
        version = RestOps(RestConnection(transport)).version()
    except (ArrayApiError, ArrayResponseError) as exc:
        log.info("no usable REST API at %s (%s); using ZAPI", transport.base_url, exc)
        return ApiChoice.ZAPI
    return choose_api(version)


def choose_api(version: Version) -> ApiChoice:
    return ApiChoice.REST if version.at_least(REST_MINIMUM) else ApiChoice.ZAPI
