// Command conformance runs upstream Kubernetes' conformance suite offline
// against `pocketkube up` (issue 11; `make conformance` runs it, and
// docs/CONFORMANCE.md says how and what it found).
//
// It is a module of its own, so that the product's go.mod does not carry
// the suite's dependencies; go.mod pins the k8s.io modules the product
// embeds (k8s.io/kubernetes v1.37.2, the same replace lines).
//
// A run takes four steps:
//   - build (build.go): e2e.test (`go test -c -vet=off` of
//     k8s.io/kubernetes/test/e2e), ginkgo, kubectl, agnhost, nnp and pause
//     from the module cache, and busybox and nginx from Debian's packages
//     (debian.sh), into CACHE/<k8s version>/; what is there is not built
//     again;
//   - images (images.go): the test images the suite names, assembled
//     without a registry into one `docker save` archive, each under the
//     exact name the suite uses and with the upstream image's config;
//   - cluster: `pocketkube up` in a network namespace of its own
//     (test/framework's ClusterConfig{NetNS: true}), so that it runs
//     beside the e2e tests' shared cluster on the host's network, with
//     the archive loaded by `pocketkube images load`;
//   - suite (run.go): ginkgo runs e2e.test in that namespace (so the
//     suite reaches pod and Service addresses as it does on a node) with
//     the focus and skip given, writing junit.xml and report.json, and
//     summary.txt (summary.go) with the counts and every failed spec.
//
// # Caveats
//
// It runs as root, as `pocketkube up` does. The first build compiles
// e2e.test and kubectl (minutes of CPU on two cores, run with nice -n 19)
// and busybox, and asks Debian's archive for busybox's source and
// nginx's packages. The images stand in for upstream's Alpine-based ones
// with Debian's binaries: where one differs from upstream in a way a spec
// sees, the image is what must be fixed, never the spec; images.go says
// what each holds.
package main
