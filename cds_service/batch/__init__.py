"""Bulk evaluation of whole practices (request files, Bundles, Bulk Data NDJSON), synthetic exports, the report."""
