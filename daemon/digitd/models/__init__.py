"""The default model shipped inside the package (see config.PACKAGED_MODEL)."""
