#!/usr/bin/env python3
"""Runs inside the test host: the container runtime's share of a model start, without
systemd or the gate. Times `docker start` of a stand-in container published on 127.0.0.1
(as the role creates them) until the stand-in logs loading_started, five times."""

import json
import re
import statistics
import subprocess
import time

NAME = "multillm-bench-floor"


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def main():
    run("docker", "rm", "-f", NAME)
    run("docker", "create", "--name", NAME, "-p", "127.0.0.1:18299:18299", "--security-opt", "no-new-privileges",
        "multillm-fault-injector:latest", "python3", "/usr/local/bin/fault_injector.py", "--host", "0.0.0.0", "--port", "18299")
    took = []
    for _ in range(5):
        start = time.time()
        run("docker", "start", NAME)
        time.sleep(0.5)
        logs = run("docker", "logs", NAME)
        loaded = [float(t) for t in re.findall(r"event=loading_started t=([0-9.]+)", logs.stdout + logs.stderr)]
        took.append(loaded[-1] - start)
        run("docker", "stop", "--time", "1", NAME)
    run("docker", "rm", "-f", NAME)
    print(json.dumps({"docker_start_to_loading_s": took, "median_s": statistics.median(took)}))


if __name__ == "__main__":
    main()
