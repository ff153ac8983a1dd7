"""`lab` as lab.py runs it, but leaving through the interpreter's normal exit.

The entry point (tcplab.cli.main) ends with os._exit to skip the interpreter's teardown; a profiler
(`python -m cProfile -o FILE bench/lab_in_process.py run ...`) writes its file at that teardown, so
the benchmark profiles through this file instead.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tcplab.cli.app import main  # noqa: E402

if __name__ == "__main__":
    main()
