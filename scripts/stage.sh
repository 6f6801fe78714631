#!/usr/bin/env bash
# Run one stage of the build, printing its name and wall time, and keep its exit code.
name=$1
shift
start=$(date +%s)
echo "==> [$name] started $(date -u +%H:%M:%S)"
"$@"
rc=$?
echo "==> [$name] $([[ $rc -eq 0 ]] && echo passed || echo "FAILED (exit $rc)") in $(($(date +%s) - start)) s"
exit $rc
