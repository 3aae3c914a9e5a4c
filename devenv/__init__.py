"""Local development environments: throwaway infrastructure the tests and `make` targets start on this machine."""
