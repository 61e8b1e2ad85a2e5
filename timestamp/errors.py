"""TSA errors and the RFC 3161 §2.4.2 PKIFailureInfo bits a rejection carries."""
from __future__ import annotations

import enum

from pkicore.errors import ErrorCode, PkiError


class FailureInfo(str, enum.Enum):
    """PKIFailureInfo names as asn1crypto spells them (RFC 3161 §2.4.2 bit numbers in comments)."""

    BAD_ALG = "bad_alg"                              # 0: unrecognized or unsupported algorithm
    BAD_REQUEST = "bad_request"                      # 2: transaction not permitted or supported
    BAD_DATA_FORMAT = "bad_data_format"              # 5: the data submitted has the wrong format
    TIME_NOT_AVAILABLE = "time_not_available"        # 14: the TSA's time source is not available
    UNACCEPTED_POLICY = "unaccepted_policy"          # 15: the requested policy is not supported
    UNACCEPTED_EXTENSION = "unaccepted_extensions"   # 16: the requested extension is not supported
    ADD_INFO_NOT_AVAILABLE = "add_info_not_available"  # 17
    SYSTEM_FAILURE = "system_failure"                # 25: the request cannot be handled due to system failure


class TsaError(PkiError):
    """A TSA failure outside the protocol (configuration, provisioning, verification input)."""

    code = ErrorCode.INTERNAL


class TsaRejection(TsaError):
    """A query the TSA refuses: becomes a TimeStampResp with status rejection (never an HTTP error)."""

    code = ErrorCode.BAD_REQUEST

    def __init__(self, failure: FailureInfo, public_message: str):
        # no trustworthy time: over RFC 3161 a rejection (timeNotAvailable); to a REST caller stamping
        # in process (seals) the service is unavailable for now (503 + Retry-After), not a bad request
        super().__init__(public_message,
                         code=ErrorCode.TIME_UNAVAILABLE if failure is FailureInfo.TIME_NOT_AVAILABLE else None)
        self.failure = failure
