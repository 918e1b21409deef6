#!/usr/bin/env bash
# A real two-node Ray cluster on 127.0.0.1 for tests/test_ray.py: a head node and one worker node
# (one CPU each), then the command given, then `ray stop --force` whatever happened.
#
# Run it inside its own network and pid namespaces:
#   unshare -n -p -f --mount-proc bash ray_cluster.sh TEMP_DIR COMMAND...
# Ray advertises a node by its interface address, not 127.0.0.1; in a fresh network namespace
# loopback is the only interface, so the cluster is reachable at 127.0.0.1 and nowhere else, and
# no port can clash with another user's. In the pid namespace `ray stop` sees only this
# cluster's processes, and when this script ends the kernel ends whatever is left of them.
#
# The command runs with RAY_TEST_ADDRESS (the head's address) and RAY_TEST_WORKER_PORT (the
# worker node's raylet port, to find and kill that node) set. $RAY is the ray executable,
# $PYTHON the interpreter with ray installed.
set -euo pipefail
temp=$1
shift
ray=${RAY:-ray}
python=${PYTHON:-python3}
port=6380
worker_port=6390
ip link set lo up
trap '"$ray" stop --force >/dev/null 2>&1 || true' EXIT

"$ray" start --head --port=$port --num-cpus=1 --num-gpus=0 --include-dashboard=false \
    --disable-usage-stats --temp-dir="$temp" >"$temp/head.log" 2>&1
"$ray" start --address=127.0.0.1:$port --num-cpus=1 --num-gpus=0 --disable-usage-stats \
    --node-manager-port=$worker_port >"$temp/worker.log" 2>&1

# Both nodes alive before the command starts (a node registers a moment after its start).
"$python" - "127.0.0.1:$port" <<'EOF'
import sys
import time

import ray

ray.init(address=sys.argv[1], logging_level="WARNING", log_to_driver=False)
deadline = time.monotonic() + 120
while sum(node["Alive"] for node in ray.nodes()) < 2:
    if time.monotonic() > deadline:
        sys.exit("the worker node did not join the head node")
    time.sleep(0.5)
ray.shutdown()
EOF

export RAY_TEST_ADDRESS=127.0.0.1:$port RAY_TEST_WORKER_PORT=$worker_port
"$@"
