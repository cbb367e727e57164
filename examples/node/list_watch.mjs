// List the pods of a namespace, then watch them, with the official
// JavaScript client, @kubernetes/client-node (pinned in package.json).
//
//   cd examples/node && npm ci
//   node list_watch.mjs --kubeconfig /var/lib/pocketkube/kubeconfig --namespace default --watch-for 4
//
// It prints the same lines as the Go example (examples/client-go):
//
//   Pods in namespace default:
//     pod-a
//     pod-b
//   Watching for 4 events from resourceVersion 1234
//   ADDED pod-c
//   MODIFIED pod-c
//   MODIFIED pod-c
//   DELETED pod-c
//
// Since client-node 1.0 the API methods take one object of named parameters
// ({ namespace }) and return the decoded object; 0.x took positional
// arguments and returned { response, body }.
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';

const { values: args } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    namespace: { type: 'string', default: 'default' },
    'watch-for': { type: 'string', default: '0' },
    timeout: { type: 'string', default: '60' }, // seconds
  },
});
if (!args.kubeconfig) {
  console.error('usage: node list_watch.mjs --kubeconfig FILE [--namespace NS] [--watch-for N] [--timeout SECONDS]');
  process.exit(2);
}
const namespace = args.namespace;
const watchFor = Number(args['watch-for']);
const timeout = Number(args.timeout);

// The kubeconfig's current context gives the server URL, the CA and the
// client certificate, as for kubectl. In a pod, kc.loadFromCluster() reads
// the service account's token and CA instead.
const kc = new k8s.KubeConfig();
kc.loadFromFile(args.kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);

// GET /api/v1/namespaces/NAMESPACE/pods, as `kubectl get pods` does.
const list = await core.listNamespacedPod({ namespace });
console.log(`Pods in namespace ${namespace}:`);
for (const pod of list.items) {
  console.log(`  ${pod.metadata.name}`);
}
if (watchFor <= 0) {
  process.exit(0);
}

// Watch takes the URL path of the list and streams one event per change.
// Starting at the list's resourceVersion loses no change made between the
// list and the watch, and does not send the listed pods again as ADDED.
const resourceVersion = list.metadata.resourceVersion;
console.log(`Watching for ${watchFor} events from resourceVersion ${resourceVersion}`);
let seen = 0;
let finished = false;
let request; // the AbortController of the watch request
// finish ends the watch, and with it the program once nothing is left to do.
const finish = (code, error) => {
  if (finished) {
    return;
  }
  finished = true;
  if (error) {
    console.error(`error: watch pods in namespace ${namespace}: ${error}`);
  }
  process.exitCode = code;
  clearTimeout(timer);
  request?.abort();
};
const timer = setTimeout(() => {
  finish(1, `stopped after ${seen} of ${watchFor} events: timed out after ${timeout}s`);
}, timeout * 1000);

request = await new k8s.Watch(kc).watch(
  `/api/v1/namespaces/${namespace}/pods`,
  { resourceVersion, timeoutSeconds: timeout },
  // Called for every event: ADDED, MODIFIED, DELETED (and ERROR, whose
  // object is a Status, e.g. 410 Gone for a resourceVersion too old).
  (type, obj) => {
    if (finished) {
      return;
    }
    if (type === 'ERROR') {
      finish(1, `${obj.code} ${obj.reason}: ${obj.message}`);
      return;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') {
      return; // BOOKMARK, which we did not ask for
    }
    console.log(`${type} ${obj.metadata.name}`);
    seen++;
    if (seen === watchFor) {
      finish(0);
    }
  },
  // Called once when the watch ends: the server closed it, an error, or
  // our own abort.
  (err) => {
    finish(1, `stopped after ${seen} of ${watchFor} events: ${err ? err.message ?? err : 'closed by the server'}`);
  },
);
if (finished) {
  request.abort(); // finished before the watch call returned
}
