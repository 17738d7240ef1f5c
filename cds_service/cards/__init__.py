"""Cards from firings: the rule's card template filled with the patient's figures, suggestions with FHIR actions."""
