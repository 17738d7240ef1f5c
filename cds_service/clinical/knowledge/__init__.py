"""Medication knowledge: the product catalogue, name parsing, identification and OME factor profiles.

Pure code over plain objects; ``loader.py`` is the only module that reads the data files (once, at start-up).
"""
