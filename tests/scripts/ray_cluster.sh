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
# One setting for head, worker and driver alike, whatever a token file in ~/.ray says.
export RAY_AUTH_MODE=disabled
trap '"$ray" stop --force >/dev/null 2>&1 || true' EXIT

# A node gives up when its agents take more than 30 s to start, as they can on a busy machine:
# then the node is stopped and started again (its log keeps every try).
start_node() {  # LOG ARGS...
    local log=$1 try
    shift
    for try in 1 2 3; do
        "$ray" start --num-cpus=1 --num-gpus=0 --disable-usage-stats "$@" >>"$log" 2>&1 && return 0
        echo "try $try failed" >>"$log"
        "$ray" stop --force >/dev/null 2>&1 || true
        [ "$1" = --head ] || start_head
    done
    return 1
}
start_head() {
    start_node "$temp/head.log" --head --port=$port --include-dashboard=false --temp-dir="$temp"
}
start_head
start_node "$temp/worker.log" --address=127.0.0.1:$port --node-manager-port=$worker_port

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
