"""The local sandbox: opsflow's real state machines and handlers on moto, against a simulated fleet.

A test double of AWS for trying opsflow and for testing every workflow end to end without an account;
production runs on AWS Step Functions and Lambda (``sam deploy``).
"""

import sys
from pathlib import Path

# The shared layer is importable as on Lambda (there it is /opt/python).
LAYER_DIR = Path(__file__).resolve().parent.parent / "layers" / "shared"
if str(LAYER_DIR) not in sys.path:
    sys.path.insert(0, str(LAYER_DIR))
