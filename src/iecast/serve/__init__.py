"""The local web page: the FastAPI app and routes, the job queue, and request limits/hardening."""
