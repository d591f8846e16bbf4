"""Who may say what: which kind of node may send which message to which, in one table.

Every message names its sender in its header. Before any handler runs, the node loop asks
``Senders.check`` whether a sender of that kind may send that message to this node
(``MAY_SEND``): only the hub issues clearing notices and distributes policies, a hospital
node speaks only to its own region's platform (and, for a manual reimbursement, to the
patient's insuring region), the outside world (``sim``: patients, the calendar, an
operator) only starts things. Where identity is in the body (the region a settlement is
for, the hospital a reconciliation is of), the handler that reads it checks it with
``speaks_for``. A violation is ``SENDER_NOT_AUTHORIZED``; it is refused, parked on the
dead-letter topic and counted, and never answered: the header may name a node that did not
send it, and an answer would go to that node.

A header can be forged by anyone who can write to a topic; stopping that is the broker's
part (authenticated clients, ACLs). This table is what a receiver can check by itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from clearsim.errors import ClearsimError, ErrorCode, Rejection
from clearsim.messages import HUB, SIM, Message, admdvs_of

# Sender kinds. ``OWN`` after a kind: of the receiver's own region.
REGION = "region"
HOSPITALS = "hospitals"
OWN_REGION = "region:own"
OWN_HOSPITALS = "hospitals:own"

_NODE_ID = re.compile(r"(region|hospitals)-\d{6}")

# receiver kind -> message kind -> the kinds of node that may send it there. A kind missing
# here is one the receiver does not take at all (MESSAGE_TYPE_UNEXPECTED); a test keeps
# each receiver's kinds equal to its handlers' and the region's to its routing table.
MAY_SEND: Mapping[str, Mapping[str, frozenset[str]]] = {
    HUB: {
        "PublishPolicy": frozenset({REGION}),
        "RegisterFiling": frozenset({REGION}),
        "AdmitPatient": frozenset({REGION}),
        "AdmissionVerified": frozenset({REGION}),
        "ClaimSettled": frozenset({REGION}),
        "SettlementConfirmed": frozenset({REGION}),
        "CancelSettlement": frozenset({REGION}),
        "ClaimRejected": frozenset({REGION}),
        "ReverseTransaction": frozenset({REGION}),
        "MessageRejected": frozenset({REGION}),
        "ClaimRefused": frozenset({REGION}),
        "AppealFiled": frozenset({REGION}),
        "AppealDecided": frozenset({REGION}),
        "TotalsReconciled": frozenset({REGION}),
        "DetailsReconciled": frozenset({REGION}),
        "ClearingConfirmed": frozenset({REGION}),
        "ClearingPaid": frozenset({REGION}),
        "OpenClearing": frozenset({SIM}),
        "StartReconciliation": frozenset({SIM}),
    },
    REGION: {
        "PolicyPublished": frozenset({HUB}),
        "FilingRegistered": frozenset({HUB}),
        "AdmitPatient": frozenset({HUB, OWN_HOSPITALS}),
        "AdmissionVerified": frozenset({HUB}),
        "UploadCharges": frozenset({OWN_HOSPITALS}),
        "SettleClaim": frozenset({OWN_HOSPITALS}),
        "SettlementConfirmed": frozenset({HUB}),
        "ClaimRefused": frozenset({HUB}),
        "AppealFiled": frozenset({HUB, OWN_HOSPITALS}),
        "AppealDecided": frozenset({HUB}),
        "ReverseTransaction": frozenset({HUB, OWN_HOSPITALS}),
        # another region's hospitals refuse what we answered their manual reimbursement
        "MessageRejected": frozenset({HUB, HOSPITALS}),
        "ClaimRejected": frozenset({HUB, OWN_HOSPITALS}),
        "RegisterFiling": frozenset({SIM}),
        "ClaimSettled": frozenset({HUB}),
        "CancelSettlement": frozenset({HUB}),
        # a patient of ours treated elsewhere claims at home, through that hospital node
        "ReimburseManually": frozenset({HOSPITALS}),
        "ReconcileTotals": frozenset({HUB, OWN_HOSPITALS}),
        "ReconcileDetails": frozenset({HUB, OWN_HOSPITALS}),
        "ClearingNotice": frozenset({HUB}),
        "FundsDisbursed": frozenset({HUB}),
    },
    HOSPITALS: {
        "SubmitClaim": frozenset({SIM}),
        "StartReconciliation": frozenset({SIM}),
        "AdmissionAnswered": frozenset({OWN_REGION}),
        "ChargesAnswered": frozenset({OWN_REGION}),
        "SettlementAnswered": frozenset({OWN_REGION}),
        "ClaimRejected": frozenset({OWN_REGION}),
        "HospitalPaid": frozenset({OWN_REGION}),
        "ClaimRefused": frozenset({OWN_REGION}),
        "AppealDecided": frozenset({OWN_REGION}),
        "TotalsReconciled": frozenset({OWN_REGION}),
        "DetailsReconciled": frozenset({OWN_REGION}),
        # the insuring region of a patient sent home refuses the manual reimbursement
        "MessageRejected": frozenset({REGION}),
    },
}


@functools.lru_cache(maxsize=4096)
def kind_of(node_id: str | None) -> str | None:
    """``hub``, ``sim``, ``region`` or ``hospitals`` for a well-formed node id (a region
    code is six digits), else None."""
    if node_id in (HUB, SIM):
        return node_id
    if node_id and _NODE_ID.fullmatch(node_id):
        return node_id.partition("-")[0]
    return None


def _describe(allowed: Iterable[str], me: str) -> str:
    own = admdvs_of(me)
    names = {HUB: "the hub", SIM: "the outside world (sim)", REGION: "a region",
             HOSPITALS: "a hospital node", OWN_REGION: f"region-{own}",
             OWN_HOSPITALS: f"hospitals-{own}"}
    return " or ".join(names[a] for a in sorted(allowed))


@dataclass(frozen=True)
class Senders:
    """What the node ``node_id`` takes from whom. ``regions``: the regions connected to
    the national platform, when this node knows them (a sender of another region is
    refused as ``REGION_UNKNOWN``); None: not known here."""

    node_id: str
    regions: frozenset[str] | None = None

    def __post_init__(self):
        if self.regions is not None:
            object.__setattr__(self, "regions", frozenset(self.regions))

    @property
    def table(self) -> Mapping[str, frozenset[str]]:
        return MAY_SEND.get(kind_of(self.node_id) or "", {})

    def check(self, kind: str, sender: str | None) -> Rejection | None:
        """Why ``sender`` may not send ``kind`` to this node, or None when it may (or when
        this node takes no ``kind`` at all: the node loop refuses that itself)."""
        allowed = self.table.get(kind)
        if allowed is None:
            return None
        role = kind_of(sender)
        if role is None:
            return Rejection(ErrorCode.SENDER_NOT_AUTHORIZED,
                             f"{kind} names sender {_shown(sender)}, which is no node (hub, "
                             "region-<admdvs>, hospitals-<admdvs>, sim)", "sender",
                             self.node_id)
        if not self.known(sender):
            return Rejection(ErrorCode.REGION_UNKNOWN,
                             f"{kind} from {sender}: region {admdvs_of(sender)} is not "
                             "connected to the national platform", "sender", self.node_id)
        own = admdvs_of(sender) == admdvs_of(self.node_id)
        if role in allowed or (own and f"{role}:own" in allowed):
            return None
        return Rejection(ErrorCode.SENDER_NOT_AUTHORIZED,
                         f"{sender} may not send {kind} to {self.node_id}: only "
                         f"{_describe(allowed, self.node_id)} may", "sender", self.node_id)

    def known(self, sender: str) -> bool:
        """Whether ``sender`` (a well-formed node id) is of a connected region, as far as
        this node knows."""
        region = admdvs_of(sender)
        return region is None or self.regions is None or region in self.regions

    def answerable(self, sender: str | None) -> bool:
        """Whether a refusal may be answered to ``sender``: a node of the run, not the
        outside world, not this node itself."""
        role = kind_of(sender)
        return (role is not None and sender not in (SIM, self.node_id)
                and self.known(sender))


def speaks_for(msg: Message, nodes: Iterable[str], what: str, field: str = "sender") -> None:
    """The body of ``msg`` is about ``what``, for which only ``nodes`` may speak: refuse
    it (``SENDER_NOT_AUTHORIZED``, naming ``field``) when its sender is not one of them."""
    nodes = tuple(nodes)
    if msg.sender not in nodes:
        raise ClearsimError(ErrorCode.SENDER_NOT_AUTHORIZED,
                            f"{msg.sender} sent {msg.kind} for {what}; only "
                            f"{' or '.join(nodes)} may", field)


def speaks_for_hospital(msg: Message, hospital: str, hospitals: Collection[str],
                        region: str, field: str) -> None:
    """The body of ``msg`` is about ``hospital``, which must be one of ``hospitals`` (those
    of ``region``, the one region the sender and this node share)."""
    if hospital not in hospitals:
        raise ClearsimError(ErrorCode.SENDER_NOT_AUTHORIZED,
                            f"{msg.sender} sent {msg.kind} for hospital {_shown(hospital)}, "
                            f"which is not one of region {region}'s", field)


def _shown(sender: str | None) -> str:
    if sender is None:
        return "none"
    return repr(sender if len(sender) <= 40 else sender[:40] + "...")
