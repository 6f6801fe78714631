#!/usr/bin/env python3
"""Run the stand-in model server (images/fault-injector/fault_injector.py) with Nagle's algorithm off.

vLLM's HTTP server (uvicorn) sets TCP_NODELAY on its connections. The stand-in's stdlib
server does not, and it writes headers and body in two sends: on a persistent connection
(LiteLLM keeps its connections to a backend open) the body then waits for the peer's
delayed ACK, about 40 ms per request. That stall would dwarf the gateway overhead this
benchmark measures, so the backend here behaves like vLLM's instead.

    python3 fault_injector_nodelay.py PATH/TO/fault_injector.py --host 127.0.0.1 --port 8001 --model NAME
"""

import importlib.util
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    spec = importlib.util.spec_from_file_location("fault_injector", sys.argv[1])
    injector = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(injector)
    injector.Handler.disable_nagle_algorithm = True  # socketserver.StreamRequestHandler option
    return injector.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
