"""Stable error codes and the rejection value every node and tool reports.

A rejection always says *which* code, *which* node refused, *which* field was wrong and a
sentence a person can act on (DOMAIN.md §6, "unclear errors"). Codes are never renamed:
integrators match on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorCode(str, Enum):
    # input and reference data
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_DATE = "INVALID_DATE"
    INSURANCE_TYPE_UNKNOWN = "INSURANCE_TYPE_UNKNOWN"
    FILING_TYPE_UNKNOWN = "FILING_TYPE_UNKNOWN"
    SCENARIO_INVALID = "SCENARIO_INVALID"
    CLAIMS_FILE_INVALID = "CLAIMS_FILE_INVALID"
    REGION_UNKNOWN = "REGION_UNKNOWN"
    HOSPITAL_UNKNOWN = "HOSPITAL_UNKNOWN"
    PERSON_UNKNOWN = "PERSON_UNKNOWN"
    CLAIM_UNKNOWN = "CLAIM_UNKNOWN"
    # where a command writes: --out is a file or cannot be written, or it holds a file the
    # command did not write where the command would write (a run deletes or overwrites
    # only what it wrote itself)
    OUTPUT_DIR_INVALID = "OUTPUT_DIR_INVALID"
    OUTPUT_NOT_OURS = "OUTPUT_NOT_OURS"
    # settlement
    CATALOG_CODE_UNKNOWN = "CATALOG_CODE_UNKNOWN"
    POLICY_MISSING = "POLICY_MISSING"
    POLICY_STALE = "POLICY_STALE"
    FILING_MISSING = "FILING_MISSING"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    CLAIM_STATE_INVALID = "CLAIM_STATE_INVALID"
    SETTLEMENT_MISMATCH = "SETTLEMENT_MISMATCH"
    # why an insuring region's recomputation disagrees with a treating region's settlement
    POLICY_VERSION_MISMATCH = "POLICY_VERSION_MISMATCH"
    POLICY_PARAMETER_MISMATCH = "POLICY_PARAMETER_MISMATCH"
    CATALOG_MAPPING_MISMATCH = "CATALOG_MAPPING_MISMATCH"
    # interface and transport
    SCHEMA_UNKNOWN = "SCHEMA_UNKNOWN"
    SCHEMA_INCOMPATIBLE = "SCHEMA_INCOMPATIBLE"
    MESSAGE_MALFORMED = "MESSAGE_MALFORMED"
    MESSAGE_TYPE_UNEXPECTED = "MESSAGE_TYPE_UNEXPECTED"
    DUPLICATE_ID_MODIFIED = "DUPLICATE_ID_MODIFIED"
    INFNO_MISMATCH = "INFNO_MISMATCH"
    FIELD_REQUIRED = "FIELD_REQUIRED"
    CLOCK_SKEW = "CLOCK_SKEW"
    ANSWER_TIMEOUT = "ANSWER_TIMEOUT"
    HANDLER_FAILED = "HANDLER_FAILED"
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    # a command stopped by Ctrl-C (SIGINT)
    INTERRUPTED = "INTERRUPTED"
    # clearsim itself failed: a bug, not the input's fault
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # hostile input: who sent it, how big, how late
    SENDER_NOT_AUTHORIZED = "SENDER_NOT_AUTHORIZED"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    FIELD_TOO_LARGE = "FIELD_TOO_LARGE"
    MESSAGE_REPLAYED = "MESSAGE_REPLAYED"


# Refusals of a message's bytes or of its interface, not of what it says: the receiver never
# consumed the message, so its sender may send the very same message again, repaired.
INTERFACE_CODES = frozenset({ErrorCode.MESSAGE_MALFORMED, ErrorCode.SCHEMA_UNKNOWN,
                             ErrorCode.SCHEMA_INCOMPATIBLE, ErrorCode.INFNO_MISMATCH,
                             ErrorCode.FIELD_REQUIRED})


# Refusals never answered to the message's sender, only recorded, parked and counted: the
# sender named in the header may not be who sent it (an answer would go to the node it
# pretends to be), and a replay's sender did not send it again.
UNANSWERED_CODES = frozenset({ErrorCode.SENDER_NOT_AUTHORIZED, ErrorCode.MESSAGE_REPLAYED})


def interface_refusal(error: dict | None) -> bool:
    """Was a message refused for its bytes or its interface (``error`` as on the wire)?"""
    return bool(error) and error.get("code") in INTERFACE_CODES


@dataclass(frozen=True)
class Rejection:
    """Why something was refused: a value, never an ad-hoc string."""

    code: ErrorCode
    message: str
    field: str | None = None
    node: str | None = None

    def as_dict(self) -> dict:
        out = {"code": self.code.value, "message": self.message, "field": self.field}
        if self.node is not None:
            out["node"] = self.node
        return out

    def at(self, node: str) -> "Rejection":
        """The same rejection, stamped with the node that refused."""
        return Rejection(self.code, self.message, self.field, node)

    def __str__(self) -> str:
        where = f" [{self.node}]" if self.node else ""
        field = f" ({self.field})" if self.field else ""
        return f"{self.code.value}{where}{field}: {self.message}"


class ClearsimError(Exception):
    """An exception that carries a Rejection, for code paths that must unwind."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None,
                 node: str | None = None):
        self.rejection = Rejection(code, message, field, node)
        super().__init__(str(self.rejection))

    @property
    def code(self) -> ErrorCode:
        return self.rejection.code
