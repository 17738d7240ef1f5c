"""opioid-cds: a CDS Hooks 2.0 service for opioid safety in UK primary care."""

__version__ = "0.1.0"
