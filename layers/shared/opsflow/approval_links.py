"""Approve/reject links of the approval emails: what is signed, so the mailer and the verifier agree.

The mailer signs (kms:GenerateMac) and the verifier behind the public URL only verifies
(kms:VerifyMac): a compromised URL function cannot mint a valid link.
"""

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict

MAC_ALGORITHM = "HMAC_SHA_256"
Decision = Literal["approve", "reject"]


class Link(BaseModel):
    """The fields of an approve/reject link; the MAC covers all of them."""

    model_config = ConfigDict(extra="forbid")

    decision: Decision
    execution: str
    expires: int
    token: str
    mac: str = ""

    def signed_part(self) -> bytes:
        digest = hashlib.sha256(self.token.encode()).hexdigest()
        return f"{self.decision}|{self.execution}|{self.expires}|{digest}".encode()
