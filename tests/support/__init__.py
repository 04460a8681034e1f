"""Helpers several test modules share (on `sys.path` through pytest's `pythonpath`)."""
