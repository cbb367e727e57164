#!/usr/bin/python3
"""List the pods of a namespace, then watch them, with the official Python
client (Debian: `apt-get install python3-kubernetes`).

    /usr/bin/python3 examples/python/list_watch.py \\
        --kubeconfig /var/lib/pocketkube/kubeconfig --namespace default --watch-for 4

It prints the same lines as the Go example (examples/client-go):

    Pods in namespace default:
      pod-a
      pod-b
    Watching for 4 events from resourceVersion 1234
    ADDED pod-c
    MODIFIED pod-c
    MODIFIED pod-c
    DELETED pod-c

Use /usr/bin/python3: Debian installs the package for the system Python, not
for a pyenv or virtualenv python3 that may come first in PATH.
"""

import argparse
import sys

from kubernetes import client, config, watch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True,
                        help="path to a kubeconfig file, e.g. DIR/kubeconfig of pocketkube up")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--watch-for", type=int, default=0, metavar="N",
                        help="after listing, watch until N events have arrived (0: list only)")
    parser.add_argument("--timeout", type=int, default=60, metavar="SECONDS",
                        help="give up watching after this long")
    args = parser.parse_args()

    # Reads the current context of the kubeconfig (server URL, CA, client
    # certificate) as kubectl does. In a pod, config.load_incluster_config()
    # reads the service account's token and CA instead.
    config.load_kube_config(config_file=args.kubeconfig)
    v1 = client.CoreV1Api()

    # GET /api/v1/namespaces/NAMESPACE/pods, as `kubectl get pods` does.
    pods = v1.list_namespaced_pod(args.namespace)
    print(f"Pods in namespace {args.namespace}:")
    for pod in pods.items:
        print(f"  {pod.metadata.name}")
    if args.watch_for <= 0:
        return 0

    # The same call with watch=True streams one event per change. Starting
    # at the list's resourceVersion loses no change made between the list
    # and the watch, and does not send the listed pods again as ADDED.
    # With timeout_seconds the server ends the watch after that long (and
    # the library does not reconnect), so this cannot hang.
    rv = pods.metadata.resource_version
    print(f"Watching for {args.watch_for} events from resourceVersion {rv}", flush=True)
    seen = 0
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, args.namespace,
                          resource_version=rv, timeout_seconds=args.timeout):
        print(f"{event['type']} {event['object'].metadata.name}", flush=True)
        seen += 1
        if seen == args.watch_for:
            w.stop()
            return 0
    print(f"error: watch pods in namespace {args.namespace}: stopped after "
          f"{seen} of {args.watch_for} events: timed out after {args.timeout}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
