"""opioid-cds: a CDS Hooks 2.0 service for opioid safety in UK primary care."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("opioid-cds")  # the one place is pyproject.toml's [project] version
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
