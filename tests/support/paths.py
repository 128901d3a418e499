"""Where the tests find the project and their fixtures."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
SKAB_FIXTURES = FIXTURES / "skab"
SCREENSHOTS = PROJECT_ROOT / "tests" / "results" / "screenshots"
