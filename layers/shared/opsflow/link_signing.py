"""KMS HMAC of the approval links: the mailer signs (kms:GenerateMac), the verifier only verifies (kms:VerifyMac)."""

import base64

from opsflow import clients
from opsflow.approval_links import MAC_ALGORITHM, Link
from opsflow.errors import error_code


def sign(link: Link, key_id: str) -> Link:
    """The link with its MAC (URL-safe base64)."""
    mac = clients.client("kms").generate_mac(Message=link.signed_part(), KeyId=key_id, MacAlgorithm=MAC_ALGORITHM)
    return link.model_copy(update={"mac": base64.urlsafe_b64encode(mac["Mac"]).decode()})


def mac_problem(link: Link, mac: bytes, key_id: str) -> str | None:
    """None when ``mac`` is the key's MAC of the link; otherwise why it is not, in words for the person who clicked."""
    kms = clients.client("kms")
    try:
        kms.verify_mac(Message=link.signed_part(), KeyId=key_id, MacAlgorithm=MAC_ALGORITHM, Mac=mac)
    except kms.exceptions.KMSInvalidMacException:
        return "This link is not valid (it was altered, or it belongs to another request)."
    except kms.exceptions.ClientError as exc:
        if error_code(exc) != "ValidationException":  # a MAC of the wrong length, for example
            raise
        return "This link is not valid (its signature is damaged)."
    return None
