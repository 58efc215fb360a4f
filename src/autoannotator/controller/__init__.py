"""The meta-controller (paper §3.1): choose the specialists, map their labels, write the pipeline file."""
