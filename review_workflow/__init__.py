"""Review workflow: update packs, four-eyes review and the automatic compliance lint."""
