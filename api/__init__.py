"""Front doors: the FastAPI app (`create_app`) and the `zhiku` command line, over the same services."""
