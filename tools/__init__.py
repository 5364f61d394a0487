"""Project checks run by `make test` (see the Makefile)."""
