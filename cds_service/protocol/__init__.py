"""HTTP and CDS Hooks: routes (Blueprint), request model and checks, service definitions, prefetch, feedback, JWT
authentication, the store and log pseudonyms. The only layer that talks to clients and FHIR servers."""
