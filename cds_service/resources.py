"""Where the service's own files are when nobody says otherwise.

The rules live at the top of the repository (``rules/``) so that people read and review them as data; the wheel
ships them inside the package as ``cds_service/rules/`` (pyproject's hatch ``force-include``). An editable install
(``pip install -e .``, as ``make run`` and ``make test`` use) imports the package from the checkout, whose
``cds_service/`` has no ``rules/``: there the repository's ``rules/`` is the one. ``OPIOID_CDS_RULES`` (config.py)
and ``opioid-cds check-rules DIRECTORY`` override this default.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from cds_service.errors import ConfigError


def default_rules_dir() -> Path:
    """The rules inside the installed package, else the repository's ``rules/`` beside the package's source."""
    packaged = files("cds_service") / "rules"
    if isinstance(packaged, Path) and packaged.is_dir():  # an installed wheel (not a zip import)
        return packaged
    checkout = Path(__file__).resolve().parents[1] / "rules"
    if checkout.is_dir():  # a development checkout, editable install or not
        return checkout
    raise ConfigError(f"no rules directory: neither {packaged} nor {checkout}; set OPIOID_CDS_RULES")
