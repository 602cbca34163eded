"""Start Design Studio: python launch.py [--host 127.0.0.1] [--port 7860] [--profile tiny] [--data-dir PATH]."""
import sys

from design_studio.cli import main

if __name__ == "__main__":
    sys.exit(main(["launch", *sys.argv[1:]]))
