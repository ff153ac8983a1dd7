#!/usr/bin/env python3
"""Run the tcplab CLI from a checkout: `python3 lab.py up closewait`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tcplab.cli import main

if __name__ == "__main__":
    main()
