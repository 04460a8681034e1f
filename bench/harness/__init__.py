"""The benchmark harness behind `bench/run.py`.

It runs the plugins as the nightly job would (their console scripts, fed from files or
pipes, talking TLS to the sandboxes) and measures each child process from the outside, so
nothing in the plugins is instrumented and nothing here imports them.
"""
