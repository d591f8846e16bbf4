"""Which of a region's handlers takes a message: one table, by kind and by who sent it.

A region plays two roles. As **treating region** (``treating``) it serves the patients in
its hospitals; as **insuring region** (``insuring``) it serves the persons it insures;
``cycles`` holds the business cycles that follow (reconciliation, clearing) and ``common``
what both roles share. Some kinds mean one role or the other depending on the sender: an
``AdmitPatient`` from one of its hospitals asks it to admit (treating), the same kind from
the hub asks for its verdict on one of its insured (insuring). ``ROUTES`` says so in one
place, so no handler asks who sent its message.
"""

from __future__ import annotations

from clearsim.errors import ClearsimError, ErrorCode
from clearsim.messages import HUB, SIM, Message, Outgoing
from clearsim.node import Handler
from region_node import common, cycles, insuring, treating
from region_node.common import RegionConfig, RegionContext, on_start  # noqa: F401 (wiring)

# Who sends: the hub, a hospitals node (ours, or another region's for manual
# reimbursement), the simulated outside world, or anyone.
HOSPITALS = "hospitals"
ANYONE = "*"

ROUTES: dict[tuple[str, str], Handler] = {
    ("PolicyPublished", HUB): common.policy_published,
    ("FilingRegistered", HUB): common.filing_registered,
    # treating role
    ("AdmitPatient", HOSPITALS): treating.admit_patient,
    ("AdmissionVerified", HUB): treating.admission_verified,
    ("UploadCharges", HOSPITALS): treating.upload_charges,
    ("SettleClaim", HOSPITALS): treating.settle_claim,
    ("SettlementConfirmed", HUB): treating.settlement_confirmed,
    ("ClaimRefused", HUB): treating.claim_refused,
    ("AppealFiled", HOSPITALS): treating.appeal_filed,
    ("AppealDecided", HUB): treating.appeal_decided,
    ("ReverseTransaction", HOSPITALS): treating.reverse_transaction,
    ("MessageRejected", ANYONE): treating.message_rejected,
    ("ClaimRejected", HOSPITALS): treating.hospital_gave_up,
    # insuring role
    ("RegisterFiling", SIM): insuring.register_filing,
    ("AdmitPatient", HUB): insuring.admit_patient,
    ("ClaimSettled", HUB): insuring.claim_settled,
    ("CancelSettlement", HUB): insuring.cancel_settlement,
    ("ClaimRejected", HUB): insuring.claim_rejected,
    ("AppealFiled", HUB): insuring.appeal_filed,
    ("ReimburseManually", HOSPITALS): insuring.reimburse_manually,
    ("ReverseTransaction", HUB): insuring.reverse_transaction,
    # business cycles, with the hub (both roles) and with our hospitals
    ("ReconcileTotals", HUB): cycles.hub_totals,
    ("ReconcileTotals", HOSPITALS): cycles.hospital_totals,
    ("ReconcileDetails", HUB): cycles.hub_details,
    ("ReconcileDetails", HOSPITALS): cycles.hospital_details,
    ("ClearingNotice", HUB): cycles.clearing_notice,
    ("FundsDisbursed", HUB): cycles.funds_disbursed,
}


def _source(sender: str) -> str:
    return HOSPITALS if sender.startswith("hospitals-") else sender


def _dispatch(kind: str) -> Handler:
    def dispatch(msg: Message, ctx: RegionContext) -> list[Outgoing]:
        handler = (ROUTES.get((kind, _source(msg.sender)))
                   or ROUTES.get((kind, ANYONE)))
        if handler is None:
            raise ClearsimError(ErrorCode.MESSAGE_TYPE_UNEXPECTED,
                                f"{ctx.node_id} does not take {kind} from {msg.sender}",
                                "sender")
        return handler(msg, ctx)
    dispatch.__name__ = f"dispatch_{kind}"
    return dispatch


# What the node loop dispatches on: one entry per kind, routed by sender through ROUTES.
HANDLERS: dict[str, Handler] = {kind: _dispatch(kind) for kind, _ in ROUTES}
# The policy table's records, applied a batch at a time (clearsim.node: tables).
TABLES = {"PolicyPublished": common.policies_published}
