"""EC2 reboots: the reboot itself, and EC2's dry run of it (may this role reboot these instances?)."""

from opsflow import clients
from opsflow.errors import error_code

DRY_RUN_CHUNK = 100  # one dry run per 100 instances; per instance only where one is denied


def reboot(instance_id: str) -> None:
    """Queue a reboot (RebootInstances); EC2's refusals surface as botocore ClientErrors."""
    clients.client("ec2").reboot_instances(InstanceIds=[instance_id])


def denied_reboots(instance_ids: list[str]) -> list[str]:
    """Instances this role may not reboot, by EC2's dry run (nothing is rebooted)."""
    ec2 = clients.client("ec2")

    def allowed(ids: list[str]) -> bool:
        try:
            ec2.reboot_instances(InstanceIds=ids, DryRun=True)
        except ec2.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == "DryRunOperation":
                return True
            if code == "UnauthorizedOperation":
                return False
            raise
        raise RuntimeError("EC2 answered a dry run without DryRunOperation")  # would have rebooted: a bug

    denied: list[str] = []
    for start in range(0, len(instance_ids), DRY_RUN_CHUNK):
        chunk = instance_ids[start : start + DRY_RUN_CHUNK]
        if not allowed(chunk):
            denied += [i for i in chunk if len(chunk) == 1 or not allowed([i])]
    return denied
