"""What runs on the phone: `runner.sh`, shipped with the package and pushed to each phone by the farm."""

from importlib import resources
from pathlib import Path

RUNNER = Path(str(resources.files(__name__).joinpath("runner.sh")))
