"""The pure clinical core: the patient record from FHIR, knowledge (products, codes, factors), dosage, OME, the
facts the rules see, and the taper planner. No HTTP, no database; only knowledge/loader.py and codelists.py read
files."""
