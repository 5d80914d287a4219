"""Make the golden cases importable by the tests and the recording script alike."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
