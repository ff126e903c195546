"""Azure-facing trigger modules, one per function group; each parses input and calls the library."""
