"""Scale-out extraction on Ray: the same ``lamina extract`` over a cluster.

``runner.run_extract`` reads the input with Ray Data, extracts on a pool of actors
that each load the GGUF once, and writes the same JSONL output and errors file as
the local path. Ray is an optional extra (``pip install "lamina[ray]"``); nothing
here is imported unless ``--ray`` is used.
"""
