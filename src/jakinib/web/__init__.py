"""HTTP: the JSON API, the CDS Hooks service and the pages, in one FastAPI app."""
