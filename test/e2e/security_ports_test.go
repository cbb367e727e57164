//go:build e2e

package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestListeningPorts (issue 13) lists every socket `pocketkube up`
// listens on, from outside the process (ss), and checks that each one
// lets nobody read or change the cluster without credentials: a plain
// HTTP request gets nothing, and over TLS without a client certificate
// either the handshake fails or etcd's, the API server's and the kubelet
// API's data paths answer 401 or 403. Port 53 is cluster DNS, which
// TestDNSNotOpenResolver covers. Before the fix, etcd's peer listener
// (plain HTTP on a loopback port) served /members, /raft and snapshots
// to anyone. README.md's table of ports lists the same sockets.
func TestListeningPorts(t *testing.T) {
	pid := shared.Pid()
	tcp := listeners(t, "-ltnp", pid)
	udp := listeners(t, "-lunp", pid)
	t.Logf("pocketkube (pid %d) listens on TCP %v, UDP %v", pid, tcp, udp)

	known := map[int]string{shared.Port: "API server", shared.KubeletPort: "kubelet API", 53: "cluster DNS"}
	for _, addr := range udp {
		if _, port := splitAddr(t, addr); port != 53 {
			t.Errorf("UDP %s: not cluster DNS; README.md lists no such port", addr)
		}
	}
	for _, addr := range tcp {
		host, port := splitAddr(t, addr)
		what, ok := known[port]
		if !ok {
			what = "unknown listener"
			t.Errorf("TCP %s: README.md lists no such port", addr)
		}
		if port == 53 {
			continue
		}
		target := net.JoinHostPort(host, strconv.Itoa(port))
		if leak := unauthenticated(target); leak != "" {
			t.Errorf("TCP %s (%s) without credentials: %s", addr, what, leak)
		}
	}
}

// dataPaths are what etcd's peer and client HTTP handlers, the API
// server and the kubelet API serve data or take writes on.
var dataPaths = []string{
	"/members", "/version", "/v2/keys/", "/raft", "/raft/probing", "/raft/snapshot", "/members/promote/1",
	"/api/v1/namespaces/kube-system/secrets", "/apis", "/pods", "/runningpods/", "/configz", "/metrics", "/stats/summary",
}

// unauthenticated returns what addr serves on dataPaths to a client
// without credentials, over plain HTTP and over TLS without a client
// certificate, or "" when it serves nothing: every request fails (a
// handshake refused for want of a certificate) or gets an error status
// (401, 403, 404, or 400 for plain HTTP to a TLS server).
func unauthenticated(addr string) string {
	var leaks []string
	clients := map[string]*http.Client{
		"http":  {Timeout: 3 * time.Second},
		"https": {Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
	for scheme, client := range clients {
		for _, p := range dataPaths {
			// The API server tells anyone its version, as every
			// cluster does (system:public-info-viewer).
			if scheme == "https" && p == "/version" {
				continue
			}
			resp, err := client.Get(scheme + "://" + addr + p)
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 120))
			resp.Body.Close()
			if resp.StatusCode < 400 {
				leaks = append(leaks, fmt.Sprintf("%s GET %s: %s %q", scheme, p, resp.Status, body))
			}
		}
	}
	return strings.Join(leaks, "; ")
}

// listeners returns the local addresses of pid's sockets that
// `ss <flags>` lists (-ltnp: listening TCP, -lunp: bound UDP).
func listeners(t *testing.T, flags string, pid int) []string {
	t.Helper()
	out, err := exec.Command("ss", "-H", flags).Output()
	if err != nil {
		t.Fatalf("ss %s: %v", flags, err)
	}
	owner := regexp.MustCompile(`pid=` + strconv.Itoa(pid) + `,`)
	var addrs []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) >= 6 && owner.MatchString(line) {
			addrs = append(addrs, f[3])
		}
	}
	return addrs
}

// splitAddr splits ss's local address ("127.0.0.1:2380", "*:10250",
// "[::]:10250", "10.0.0.1%eth0:53") into a host to connect to and a port.
func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("ss address %q has no port", addr)
	}
	host, portStr := strings.Trim(addr[:i], "[]"), addr[i+1:]
	if j := strings.IndexByte(host, '%'); j >= 0 {
		host = host[:j]
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("ss address %q: %v", addr, err)
	}
	switch host {
	case "*", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return host, port
}
