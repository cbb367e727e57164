# pocketkube — build, run and test. Run as root on Debian.
SHELL := /bin/bash
BIN ?= bin/pocketkube
DATA_DIR ?= /var/lib/pocketkube
K8S_VERSION := $(shell go list -m -f '{{.Version}}' k8s.io/kubernetes)
K8S_MAJOR := $(word 1,$(subst ., ,$(patsubst v%,%,$(K8S_VERSION))))
K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
# The real kubectl of each minor version the e2e tests drive, built by
# scripts/install-deps.sh from hack/kubectl/v1.*: KUBECTL_DIR/kubectl.1.27,
# kubectl.1.33. Set KUBECTL_DIR=/usr/lib/google-cloud-sdk/bin to test with the
# Google Cloud CLI's instead.
KUBECTL_CACHE ?= /var/cache/pocketkube/kubectl
KUBECTL_DIR ?= $(KUBECTL_CACHE)/bin
export KUBECTL_CACHE KUBECTL_DIR
# npm installs the e2e tests' client-node example from its cache (~/.npm)
# without asking the registry again for what it already holds.
export npm_config_prefer_offline := true
# Reads `go test -json`, prints go test's output, lists every skipped test
# with its reason and fails when one skipped: the suite runs where every
# dependency is installed, so a skip tests nothing.
TESTREPORT := bin/testreport
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
VERSION_VARS := gitVersion=$(K8S_VERSION) gitMajor=$(K8S_MAJOR) gitMinor=$(K8S_MINOR) gitTreeState=clean buildDate=$(BUILD_DATE)
LDFLAGS := -s -w -X github.com/pocketkube/pocketkube/internal/version.version=$(VERSION) \
	$(foreach v,$(VERSION_VARS),-X k8s.io/component-base/version.$(v) -X k8s.io/client-go/pkg/version.$(v))

.PHONY: deps build release testreport up test unit e2e security vet bench peers soak conformance conformance-ci clean
deps:
	bash scripts/install-deps.sh

# The container shim is built first and embedded in pocketkube (see
# internal/node/runtime/shimbin/README): one small process per container.
SHIM_BIN := internal/node/runtime/shimbin/pocketkube-shim
# Static (no cgo, so no libc and no 39 MB of dynamic symbol tables: 167 MB
# instead of 214, 26 MB less resident text) and with the release's compile
# flags, so `make release` reuses this build's cache.
SHIM_BUILD := CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -buildid=" -o $(SHIM_BIN) ./cmd/pocketkube-shim
# runc, pinned in hack/runc/go.mod, built beside $(BIN): pocketkube prefers
# it over $PATH's (Debian 12's 1.1.5 copies itself into a memfd on every
# `runc init`; docs/BENCHMARKS.md "Pod start: where the 88 ms go").
RUNC_BIN := $(abspath $(dir $(BIN)))/runc
RUNC_BUILD = cd hack/runc && CGO_ENABLED=1 go build -trimpath -tags seccomp \
	  -ldflags "-s -w -buildid= -X main.version=$$(go list -m -f '{{.Version}}' github.com/opencontainers/runc | sed 's/^v//')" \
	  -o $(1) github.com/opencontainers/runc
build:
	$(SHIM_BUILD)
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pocketkube
	$(call RUNC_BUILD,$(RUNC_BIN))

# The download (issue 16): one static binary and the runc it prefers (cgo:
# it needs the host's libseccomp2) in a tar.xz, with its sha256.
# Reproducible: the same commit gives the same bytes on any machine with the
# same Go (-trimpath, no build IDs, the commit's time as the build date and
# the archive's times, sorted names, single-threaded xz). Not part of `make
# test`: static linking rebuilds the whole tree once (~10 minutes cold).
RELEASE_DIR ?= dist
RELEASE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
RELEASE_DATE := $(shell date -u -d @$(RELEASE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
RELEASE_NAME := pocketkube-$(VERSION)-linux-amd64
release:
	$(SHIM_BUILD)
	mkdir -p $(RELEASE_DIR)/$(RELEASE_NAME)
	CGO_ENABLED=0 go build -trimpath -ldflags "$(subst buildDate=$(BUILD_DATE),buildDate=$(RELEASE_DATE),$(LDFLAGS)) -buildid=" \
	  -o $(RELEASE_DIR)/$(RELEASE_NAME)/pocketkube ./cmd/pocketkube
	$(call RUNC_BUILD,$(abspath $(RELEASE_DIR)/$(RELEASE_NAME))/runc)
	tar -C $(RELEASE_DIR) --sort=name --mtime=@$(RELEASE_EPOCH) --owner=0 --group=0 --numeric-owner \
	  -cf - $(RELEASE_NAME) | xz -9e -T1 > $(RELEASE_DIR)/$(RELEASE_NAME).tar.xz
	cd $(RELEASE_DIR) && sha256sum $(RELEASE_NAME).tar.xz > $(RELEASE_NAME).tar.xz.sha256 && \
	  cat $(RELEASE_NAME).tar.xz.sha256 && ls -l $(RELEASE_NAME).tar.xz

# Starts a cluster in the foreground; Ctrl-C stops it.
up: deps build
	$(BIN) up --data-dir $(DATA_DIR)

vet:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go vet -tags e2e ./test/e2e/...
	go vet -tags bench ./bench/...

testreport:
	go build -o $(TESTREPORT) ./hack/testreport

# unit.json and e2e.json keep the whole `go test -json` stream; e2e.log is
# the e2e run as go test -v prints it. The e2e run holds /tmp/pk-e2e.lock:
# its shared cluster is on the host's network (bridge, nftables table, port
# 53), one per machine, so a second run on the machine waits for the first.
unit: testreport
	set -o pipefail; go test -json ./... 2>&1 | tee unit.json | $(TESTREPORT)

e2e: build testreport
	set -o pipefail; flock /tmp/pk-e2e.lock env POCKETKUBE_BIN=$(abspath $(BIN)) go test -json -tags e2e -count=1 -timeout 30m -v \
	  -skip '^($(SECURITY_TESTS))$$' ./test/e2e/... 2>&1 \
	  | tee e2e.json | $(TESTREPORT) -v | tee e2e.log

# The attack and fault tests of the hardening work (docs/SECURITY.md says
# what each proves): e2e tests against the real binary, run by `make
# security` and left out of `make e2e`, so `make test` runs each once.
# A name here that no test has fails the target.
SECURITY_TEST_NAMES := TestListeningPorts TestKubeletAPIAuth TestAPIServerVerifiesKubelet TestDNSNotOpenResolver \
	TestDataDirAcrossRestart TestSecurityContext TestSysctls TestRuntimeClass TestProcMount TestShareProcessNamespace \
	TestExecProbeLimits TestExecStdinReturnsWhenCommandExits TestImageReimportKeepsRunningContainers \
	TestOOMScoreAdj TestContainerCgroupLimits TestNodeRestartAndCrash TestAPIOutageAgentCatchesUp \
	TestSeccompRuntimeDefaultBlocksSyscalls TestSeccompLocalhostProfile TestAppArmorRefusedWithoutHostSupport \
	TestSubPathSymlinkSwapNeverEscapes TestSubPathSymlinkOutsideRefused TestImageLoadRefusesPoisonedBlob \
	TestImagePasswdIsReadInsideTheImage TestPodPidsLimitForkBomb TestPodPidsLimitDefault TestEmptyDirSizeLimitEviction \
	TestKilledShimContainerRestarts TestRebootResumesPods TestMemoryPressureEviction TestSoftMemoryEviction TestDiskPressureCondition \
	TestEtcdDiskFull TestImageGCUnderDiskPressure \
	TestEnsureSecretPulledImages
empty :=
SECURITY_TESTS := $(subst $(empty) $(empty),|,$(strip $(SECURITY_TEST_NAMES)))
security: build testreport
	set -o pipefail; flock /tmp/pk-e2e.lock env POCKETKUBE_BIN=$(abspath $(BIN)) go test -json -tags e2e -count=1 -timeout 20m -v \
	  -run '^($(SECURITY_TESTS))$$' ./test/e2e/... 2>&1 \
	  | tee security.json | $(TESTREPORT) -v | tee security.log
	@missing=; for t in $(SECURITY_TEST_NAMES); do \
	  grep -q "\"Action\":\"pass\",.*\"Test\":\"$$t\"," security.json || missing="$$missing $$t"; done; \
	  test -z "$$missing" || { echo "security: no passing test named:$$missing"; exit 1; }

# The whole suite, as CI runs it.
test: deps build vet unit security e2e conformance-ci

# System benchmarks (bench/, `go test -bench` against the real binary),
# each with the sample count docs/BENCHMARKS.md quotes; BENCH_COUNT=5
# repeats them for benchstat. Writes bench/results/DATE-COMMIT.txt: the
# machine, then the raw benchmark output (benchstat reads it), then a
# markdown table. Clusters hold the e2e lock: no two at once.
BENCH_COUNT ?= 1
BENCH_RUNS := 'BenchmarkPodStart/pods=1$$:20x' 'BenchmarkPodStart/pods=(30|100)$$:1x' BenchmarkPodMemory:1x BenchmarkLoggingShimMemory:2x \
	BenchmarkLabelToFile:200x BenchmarkDNS:1x BenchmarkServiceChange:20x 'BenchmarkPVCStart$$:20x' BenchmarkNetworkPolicy:20x BenchmarkLoadBalancer:10x BenchmarkStatsSummary:20x 'BenchmarkTimeToK8s$$:5x' BenchmarkTimeToK8sTimeline:5x \
	BenchmarkAgentJoin:10x BenchmarkAgentFailover:5x BenchmarkPVCStartAgent:10x BenchmarkPodNetwork:20000x \
	'BenchmarkStartup$$:5x' BenchmarkStartupBare:5x 'BenchmarkIdleRSS$$:1x' BenchmarkIdleRSSBurst:1x BenchmarkPlatformIdleRSS:1x \
	'BenchmarkPeerPodStart/pods=1$$:20x' 'BenchmarkPeerPodStart/pods=(30|100)$$:1x' BenchmarkPeerPodMemory:1x
# The peer lane's kubelet and containerd (bench/peer_test.go), built once
# from the module cache into PEERS_DIR by hack/peers/build.sh.
PEERS_DIR ?= /var/cache/pocketkube/peers
export PEERS_DIR
peers:
	bash hack/peers/build.sh $(PEERS_DIR)

bench: deps build peers
	mkdir -p bench/results
	out=bench/results/$$(date -u +%Y-%m-%d)-$$(git rev-parse --short HEAD).txt; \
	{ echo "# $$(date -u +%Y-%m-%dT%H:%MZ) commit $$(git describe --always --dirty)"; \
	  echo "# $$(nproc) cores ($$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $$(free -g | awk '/Mem:/ {print $$2}') GiB, Linux $$(uname -r)"; \
	  echo "# load average before: $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	  s=$$(date +%s%N); for i in $$(seq 200); do /bin/true; done; \
	  echo "# fork + exec of /bin/true: $$(( ($$(date +%s%N) - s) / 200000 )) us (the VMs differ here: see docs/BENCHMARKS.md)"; } > $$out; \
	for r in $(BENCH_RUNS); do \
	  flock /tmp/pk-e2e.lock env POCKETKUBE_BIN=$(abspath $(BIN)) go test -tags bench -run '^$$' \
	    -bench "^$${r%:*}" -benchtime "$${r##*:}" -count $(BENCH_COUNT) -timeout 60m ./bench/ 2>&1 | tee -a $$out; \
	  test $${PIPESTATUS[0]} = 0 || exit 1; \
	done; \
	echo "# load average after: $$(cut -d' ' -f1-3 /proc/loadavg)" >> $$out; \
	{ echo; echo "| benchmark | figure | value |"; echo "|---|---|---|"; \
	  awk '/^Benchmark/ { for (i = 3; i < NF; i += 2) printf "| %s | %s | %s |\n", $$1, $$(i + 1), $$i }' $$out; \
	  awk -f bench/peer-ratios.awk $$out; } >> $$out.md; \
	cat $$out.md >> $$out; rm $$out.md; echo "results: $$out"

# The soak (BenchmarkSoak, docs/BENCHMARKS.md "Soak"): SOAK_MINUTES of pod
# churn (probes, exec, logs, label patches into downwardAPI volumes) while
# pocketkube's RSS, fds, threads, goroutines, mounts, network namespaces,
# cgroups and shims are sampled; reports each one's first/last value and
# slope per hour after SOAK_WARMUP. Its cluster runs in a network namespace
# of its own, so it takes no e2e lock and runs beside other clusters. Not
# part of `make bench` (BenchmarkSoak skips unless SOAK_MINUTES or
# -soak-minutes is set). Writes bench/results/DATE-COMMIT-soak.txt (the
# machine, the benchmark output, the summary table) and the samples as
# DATE-COMMIT-soak.csv beside it.
SOAK_MINUTES ?= 30
SOAK_WARMUP ?= 5m
SOAK_INTERVAL ?= 15s
soak: deps build
	mkdir -p bench/results
	out=bench/results/$$(date -u +%Y-%m-%d)-$$(git rev-parse --short HEAD)-soak; \
	{ echo "# $$(date -u +%Y-%m-%dT%H:%MZ) commit $$(git describe --always --dirty)"; \
	  echo "# $$(nproc) cores ($$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $$(free -g | awk '/Mem:/ {print $$2}') GiB, Linux $$(uname -r)"; \
	  echo "# load average before: $$(cut -d' ' -f1-3 /proc/loadavg)"; } > $$out.txt; \
	env POCKETKUBE_BIN=$(abspath $(BIN)) SOAK_MINUTES=$(SOAK_MINUTES) go test -tags bench -run '^$$' \
	  -bench '^BenchmarkSoak$$' -benchtime 1x -timeout $$(( $(SOAK_MINUTES) + 20 ))m ./bench/ \
	  -soak-warmup $(SOAK_WARMUP) -soak-interval $(SOAK_INTERVAL) -soak-csv $(abspath .)/$$out.csv 2>&1 | tee -a $$out.txt; \
	rc=$${PIPESTATUS[0]}; echo "# load average after: $$(cut -d' ' -f1-3 /proc/loadavg)" >> $$out.txt; \
	echo "results: $$out.txt $$out.csv"; exit $$rc

# Upstream's conformance suite (e2e.test of the embedded k8s.io/kubernetes)
# against `pocketkube up`, offline: test/conformance (a module of its own)
# builds the suite and its images into CONFORMANCE_CACHE once, starts a
# cluster in a network namespace of its own (no e2e lock needed: it does
# not touch the host's network), and writes junit.xml, report.json,
# ginkgo.log, pocketkube.log and summary.txt to CONFORMANCE_OUT. The whole
# non-serial suite takes ~45 minutes on 2 cores: `make test` runs the fixed
# part below (conformance-ci) instead. See docs/CONFORMANCE.md.
CONFORMANCE_FOCUS ?= \[Conformance\]
CONFORMANCE_SKIP ?= \[Serial\]|\[Disruptive\]|\[Slow\]
CONFORMANCE_PROCS ?= 2
CONFORMANCE_TIMEOUT ?= 2h
CONFORMANCE_CACHE ?= /var/cache/pocketkube/conformance
CONFORMANCE_OUT ?= $(abspath bin/conformance)
CONFORMANCE_FLAGS ?=
conformance: build
	cd test/conformance && nice -n 19 go build -o $(abspath bin/conformance-harness) . && \
	  $(abspath bin/conformance-harness) -pocketkube $(abspath $(BIN)) -cache $(CONFORMANCE_CACHE) -out $(CONFORMANCE_OUT) \
	    -focus '$(CONFORMANCE_FOCUS)' -skip '$(CONFORMANCE_SKIP)' -procs $(CONFORMANCE_PROCS) -timeout $(CONFORMANCE_TIMEOUT) $(CONFORMANCE_FLAGS)

# The fixed part of the suite that `make test` (and so CI) runs: every
# non-serial [Conformance] spec of sig-storage and sig-network, and
# sig-node's Downward API, ConfigMap and Secrets specs, sig-auth's
# PodCertificate ones (161 specs, ~6
# minutes on 2 cores, plus ~9 minutes for the first build of e2e.test and
# the images). -strict fails the target on any failed spec, or when none
# passed.
CONFORMANCE_CI_FOCUS := \[sig-(storage|network)\].*\[Conformance\]|\[sig-node\] (Downward API|ConfigMap|Secrets).*\[Conformance\]|\[sig-auth\] (Projected PodCertificate|PodCertificateRequest API).*\[Conformance\]
conformance-ci:
	$(MAKE) conformance CONFORMANCE_FOCUS='$(CONFORMANCE_CI_FOCUS)' CONFORMANCE_OUT=$(abspath bin/conformance-ci) CONFORMANCE_FLAGS=-strict

clean:
	rm -rf bin dist unit.json e2e.json e2e.log security.json security.log $(SHIM_BIN)
