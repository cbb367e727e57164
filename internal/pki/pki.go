package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

const (
	// caValidity is how long a generated CA is valid; as kubeadm's CAs.
	caValidity = 10 * 365 * 24 * time.Hour
	// leafValidity is how long a generated leaf certificate is valid.
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how long before expiry Ensure issues a leaf again.
	renewBefore = 30 * 24 * time.Hour
)

// Config says where the PKI lives and which names the API server answers to.
type Config struct {
	// Dir holds every file. Required; created 0700 when missing, and
	// made 0700 when it is looser.
	Dir string
	// ServingDNSNames and ServingIPs are added to the API server's serving
	// certificate, after the names every cluster has (localhost, 127.0.0.1,
	// kubernetes, kubernetes.default, … and ServiceIP).
	ServingDNSNames []string
	ServingIPs      []net.IP
	// ServiceIP is the first address of the service range: the ClusterIP of
	// the default/kubernetes Service. Required.
	ServiceIP net.IP
	// NodeName, when set, adds the local node agent's credentials: a client
	// certificate for system:node:<NodeName> in system:nodes, which the Node
	// authorizer and NodeRestriction admission treat as that node's kubelet,
	// and a serving certificate for its kubelet API with NodeName and
	// NodeIPs as SANs; and the node's service proxy's client certificate
	// for system:kube-proxy, which the built-in ClusterRoleBinding
	// system:node-proxier authorizes.
	NodeName string
	NodeIPs  []net.IP
	// Etcd, when set, adds the PKI of an embedded etcd that other
	// servers join (`up --cluster-init` and `up --server`), with
	// kubeadm's names: the etcd CA (etcd/ca.crt), the member's serving
	// certificate for clients (etcd/server.crt) and for its peers
	// (etcd/peer.crt), both for Etcd.Name and Etcd.IPs, and the client
	// certificate a server uses for etcd's membership API
	// (apiserver-etcd-client.crt).
	Etcd *EtcdMember
	// Now returns the current time. Defaults to time.Now; tests set it to
	// exercise renewal.
	Now func() time.Time
}

// EtcdMember names an etcd member in its certificates.
type EtcdMember struct {
	// Name is the member's name (the node's name).
	Name string
	// IPs are the addresses its peers and clients reach it at.
	IPs []net.IP
}

// Paths names the files Ensure keeps. Every Cert has its Key beside it.
type Paths struct {
	CA, CAKey                                  string
	FrontProxyCA, FrontProxyCAKey              string
	Serving, ServingKey                        string
	KubeletClient, KubeletClientKey            string
	FrontProxyClient, FrontProxyClientKey      string
	Admin, AdminKey                            string
	ControllerManager, ControllerManagerKey    string
	Scheduler, SchedulerKey                    string
	ServiceAccountKey, ServiceAccountPublicKey string
	// NodeClient, NodeServing and KubeProxy are empty unless
	// Config.NodeName is set.
	NodeClient, NodeClientKey   string
	NodeServing, NodeServingKey string
	KubeProxy, KubeProxyKey     string
	// MetricsServing is metrics-server's serving certificate, for
	// MetricsServerDNSName.
	MetricsServing, MetricsServingKey string
	// The etcd PKI (Config.Etcd); empty unless it is set.
	EtcdCA, EtcdCAKey         string
	EtcdServer, EtcdServerKey string
	EtcdPeer, EtcdPeerKey     string
	EtcdClient, EtcdClientKey string
}

// PathsFor returns the file names Ensure uses in dir.
func PathsFor(dir string) Paths {
	p := func(name string) string { return filepath.Join(dir, name) }
	return Paths{
		CA: p("ca.crt"), CAKey: p("ca.key"),
		FrontProxyCA: p("front-proxy-ca.crt"), FrontProxyCAKey: p("front-proxy-ca.key"),
		Serving: p("apiserver.crt"), ServingKey: p("apiserver.key"),
		KubeletClient: p("apiserver-kubelet-client.crt"), KubeletClientKey: p("apiserver-kubelet-client.key"),
		FrontProxyClient: p("front-proxy-client.crt"), FrontProxyClientKey: p("front-proxy-client.key"),
		Admin: p("admin.crt"), AdminKey: p("admin.key"),
		ControllerManager: p("controller-manager.crt"), ControllerManagerKey: p("controller-manager.key"),
		Scheduler: p("scheduler.crt"), SchedulerKey: p("scheduler.key"),
		ServiceAccountKey: p("sa.key"), ServiceAccountPublicKey: p("sa.pub"),
		NodeClient: p("node-client.crt"), NodeClientKey: p("node-client.key"),
		NodeServing: p("node-serving.crt"), NodeServingKey: p("node-serving.key"),
		KubeProxy: p("kube-proxy.crt"), KubeProxyKey: p("kube-proxy.key"),
		MetricsServing: p("metrics-server.crt"), MetricsServingKey: p("metrics-server.key"),
		EtcdCA: p("etcd/ca.crt"), EtcdCAKey: p("etcd/ca.key"),
		EtcdServer: p("etcd/server.crt"), EtcdServerKey: p("etcd/server.key"),
		EtcdPeer: p("etcd/peer.crt"), EtcdPeerKey: p("etcd/peer.key"),
		EtcdClient: p("apiserver-etcd-client.crt"), EtcdClientKey: p("apiserver-etcd-client.key"),
	}
}

// EtcdClientUser is the common name of the client certificate servers use
// for etcd (kubeadm's apiserver-etcd-client).
const EtcdClientUser = "kube-apiserver-etcd-client"

// Upstream identities, as kubeadm names them. The API server's RBAC
// bootstrap policy grants each its permissions by these names.
const (
	AdminUser             = "kubernetes-admin"
	MastersGroup          = "system:masters"
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
	KubeletClientUser     = "kube-apiserver-kubelet-client"
	FrontProxyClientUser  = "front-proxy-client"
	// NodesGroup and NodeUserPrefix make a kubelet's identity:
	// system:node:<name> in system:nodes.
	NodesGroup     = "system:nodes"
	NodeUserPrefix = "system:node:"
	// KubeProxyUser is a node's service proxy (kube-proxy).
	KubeProxyUser = "system:kube-proxy"
	// MetricsServerDNSName is the name the API server's aggregator checks
	// metrics-server's certificate against: its Service's
	// <name>.<namespace>.svc.
	MetricsServerDNSName = "metrics-server.kube-system.svc"
)

// Ensure makes every file in Paths exist and be valid for cfg, generating
// only what is missing or stale, and returns the paths.
func Ensure(cfg Config) (Paths, error) {
	if cfg.Dir == "" {
		return Paths{}, errors.New("pki: Dir is required")
	}
	if cfg.ServiceIP == nil {
		return Paths{}, errors.New("pki: ServiceIP is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return Paths{}, fmt.Errorf("create pki dir: %w", err)
	}
	// MkdirAll keeps the mode of a directory that exists: one made looser
	// (by hand, a restore, an archive) would show every key to local
	// users. kubeadm creates its pki directory 0700.
	if err := restrictDir(cfg.Dir); err != nil {
		return Paths{}, err
	}
	paths := PathsFor(cfg.Dir)
	now := cfg.Now()

	ca, err := ensureCA(paths.CA, paths.CAKey, "kubernetes", now)
	if err != nil {
		return Paths{}, err
	}
	frontProxyCA, err := ensureCA(paths.FrontProxyCA, paths.FrontProxyCAKey, "front-proxy-ca", now)
	if err != nil {
		return Paths{}, err
	}

	dnsNames, ips := servingNames(cfg)
	leaves := []leaf{
		{paths.Serving, paths.ServingKey, ca, Spec{CommonName: "kube-apiserver", DNSNames: dnsNames, IPs: ips, Server: true}},
		{paths.KubeletClient, paths.KubeletClientKey, ca, Spec{CommonName: KubeletClientUser, Organization: []string{MastersGroup}}},
		{paths.Admin, paths.AdminKey, ca, Spec{CommonName: AdminUser, Organization: []string{MastersGroup}}},
		{paths.ControllerManager, paths.ControllerManagerKey, ca, Spec{CommonName: ControllerManagerUser}},
		{paths.Scheduler, paths.SchedulerKey, ca, Spec{CommonName: SchedulerUser}},
		{paths.FrontProxyClient, paths.FrontProxyClientKey, frontProxyCA, Spec{CommonName: FrontProxyClientUser}},
		{paths.MetricsServing, paths.MetricsServingKey, ca, Spec{CommonName: "metrics-server", DNSNames: []string{MetricsServerDNSName}, Server: true}},
	}
	if cfg.NodeName != "" {
		leaves = append(leaves,
			leaf{paths.NodeClient, paths.NodeClientKey, ca, Spec{CommonName: NodeUserPrefix + cfg.NodeName, Organization: []string{NodesGroup}}},
			leaf{paths.NodeServing, paths.NodeServingKey, ca, Spec{CommonName: cfg.NodeName, DNSNames: []string{cfg.NodeName, "localhost"}, IPs: append([]net.IP{net.IPv4(127, 0, 0, 1)}, cfg.NodeIPs...), Server: true}},
			leaf{paths.KubeProxy, paths.KubeProxyKey, ca, Spec{CommonName: KubeProxyUser}},
		)
	} else {
		paths.NodeClient, paths.NodeClientKey, paths.NodeServing, paths.NodeServingKey = "", "", "", ""
		paths.KubeProxy, paths.KubeProxyKey = "", ""
	}
	if cfg.Etcd != nil {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, "etcd"), 0o700); err != nil {
			return Paths{}, fmt.Errorf("create etcd pki dir: %w", err)
		}
		etcdCA, err := ensureCA(paths.EtcdCA, paths.EtcdCAKey, "etcd-ca", now)
		if err != nil {
			return Paths{}, err
		}
		// As kubeadm's: the member's certificates serve and, since a
		// member dials its peers, authenticate it as a client too.
		names := []string{cfg.Etcd.Name, "localhost"}
		ips := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, cfg.Etcd.IPs...)
		leaves = append(leaves,
			leaf{paths.EtcdServer, paths.EtcdServerKey, etcdCA, Spec{CommonName: cfg.Etcd.Name, DNSNames: names, IPs: ips, Server: true, Client: true}},
			leaf{paths.EtcdPeer, paths.EtcdPeerKey, etcdCA, Spec{CommonName: cfg.Etcd.Name, DNSNames: names, IPs: ips, Server: true, Client: true}},
			leaf{paths.EtcdClient, paths.EtcdClientKey, etcdCA, Spec{CommonName: EtcdClientUser}},
		)
	} else {
		paths.EtcdCA, paths.EtcdCAKey, paths.EtcdServer, paths.EtcdServerKey = "", "", "", ""
		paths.EtcdPeer, paths.EtcdPeerKey, paths.EtcdClient, paths.EtcdClientKey = "", "", "", ""
	}
	for _, l := range leaves {
		if err := ensureLeaf(l.cert, l.key, l.issuer, l.spec, now); err != nil {
			return Paths{}, err
		}
	}
	if err := ensureServiceAccountKey(paths.ServiceAccountKey, paths.ServiceAccountPublicKey); err != nil {
		return Paths{}, err
	}
	return paths, nil
}

// leaf is one certificate Ensure keeps: its files, its issuer, its contents.
type leaf struct {
	cert, key string
	issuer    *Authority
	spec      Spec
}

// servingNames returns the API server certificate's SANs: those every
// kubeadm cluster has, then the caller's, without duplicates.
func servingNames(cfg Config) ([]string, []net.IP) {
	dnsNames := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	for _, n := range cfg.ServingDNSNames {
		if n != "" && !slices.Contains(dnsNames, n) {
			dnsNames = append(dnsNames, n)
		}
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, cfg.ServiceIP}
	for _, ip := range cfg.ServingIPs {
		if ip != nil && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	return dnsNames, ips
}

// Authority is a CA that can sign certificates.
type Authority struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// LoadAuthority reads a CA written by Ensure.
func LoadAuthority(certFile, keyFile string) (*Authority, error) {
	certs, err := cert.CertsFromFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate %s: %w", certFile, err)
	}
	key, err := keyutil.PrivateKeyFromFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key %s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("CA key %s cannot sign", keyFile)
	}
	return &Authority{Cert: certs[0], Key: signer}, nil
}

// ErrCAIncomplete is returned by Ensure when a CA's certificate is on disk
// but its private key is not, or the other way round. Ensure never mints a
// new CA over half of an old one: every certificate and kubeconfig issued
// so far, and every client that trusts the old CA, would stop working
// without a word.
var ErrCAIncomplete = errors.New("CA incomplete")

func ensureCA(certFile, keyFile, commonName string, now time.Time) (*Authority, error) {
	certExists, keyExists := exists(certFile), exists(keyFile)
	if certExists != keyExists {
		// kubeadm's certs phase loads a CA when either file exists and
		// fails when that fails. pocketkube has no external-CA mode: a
		// CA without its key cannot issue what the cluster needs.
		missing, present := keyFile, certFile
		if !certExists {
			missing, present = certFile, keyFile
		}
		return nil, fmt.Errorf("%w: %s exists but %s is missing; refusing to create a new %s CA, which would invalidate every certificate and kubeconfig issued so far: restore the missing file, or move %s away to start a cluster with a new identity",
			ErrCAIncomplete, present, missing, commonName, filepath.Dir(certFile))
	}
	if certExists {
		return LoadAuthority(certFile, keyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for CA %s: %w", commonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              now.Add(caValidity).UTC(),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA %s: %w", commonName, err)
	}
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := writeKey(keyFile, key); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(certFile, pemCert(crt.Raw), 0o644); err != nil {
		return nil, err
	}
	return &Authority{Cert: crt, Key: key}, nil
}

// Spec describes a leaf certificate. Organization becomes the user's groups
// when the certificate authenticates a client.
type Spec struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	// Server makes a serving certificate; otherwise a client certificate.
	Server bool
	// Client, with Server, makes it a client certificate too (etcd's
	// member certificates).
	Client bool
}

// Issue signs a new certificate for spec with a new ECDSA P-256 key and
// returns both PEM-encoded.
func (a *Authority) Issue(spec Spec, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", spec.CommonName, err)
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if spec.Server {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if spec.Client {
			usages = append(usages, x509.ExtKeyUsageClientAuth)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
		NotBefore:    now.Add(-time.Hour).UTC(),
		NotAfter:     now.Add(leafValidity).UTC(),
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
	}
	if tmpl.NotAfter.After(a.Cert.NotAfter) {
		tmpl.NotAfter = a.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, key.Public(), a.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", spec.CommonName, err)
	}
	keyPEM, err = keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), keyPEM, nil
}

func ensureLeaf(certFile, keyFile string, ca *Authority, spec Spec, now time.Time) error {
	if leafValid(certFile, keyFile, ca, spec, now) {
		return nil
	}
	certPEM, keyPEM, err := ca.Issue(spec, now)
	if err != nil {
		return err
	}
	// Key first: a crash in between leaves a certificate that fails
	// leafValid's key check and is issued again next time.
	if err := atomicfile.Write(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(certFile, certPEM, 0o644)
}

// leafValid reports whether the certificate on disk can be kept.
func leafValid(certFile, keyFile string, ca *Authority, spec Spec, now time.Time) bool {
	certs, err := cert.CertsFromFile(certFile)
	if err != nil {
		return false
	}
	c := certs[0]
	if c.CheckSignatureFrom(ca.Cert) != nil || now.Add(renewBefore).After(c.NotAfter) {
		return false
	}
	if c.Subject.CommonName != spec.CommonName || !slices.Equal(c.Subject.Organization, spec.Organization) {
		return false
	}
	for _, n := range spec.DNSNames {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range spec.IPs {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	key, err := keyutil.PrivateKeyFromFile(keyFile)
	if err != nil {
		return false
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return false
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(c.PublicKey)
}

// ensureServiceAccountKey keeps an RSA 2048 key pair, as kubeadm does, so
// that tokens are RS256 JWTs like on any kubeadm cluster.
func ensureServiceAccountKey(keyFile, pubFile string) error {
	key, err := keyutil.PrivateKeyFromFile(keyFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("generate service-account key: %w", err)
		}
		if err := writeKey(keyFile, rsaKey); err != nil {
			return err
		}
		key = rsaKey
	case err != nil:
		return fmt.Errorf("read service-account key %s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("service-account key %s cannot sign", keyFile)
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return fmt.Errorf("encode service-account public key: %w", err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if old, err := os.ReadFile(pubFile); err == nil && bytes.Equal(old, pubPEM) {
		return nil
	}
	return atomicfile.Write(pubFile, pubPEM, 0o644)
}

// exists reports whether anything is at path; an error other than "not
// found" (a permission problem) counts as existing, so that LoadAuthority
// reports it.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// restrictDir makes dir 0700 when its mode gives anything to group or
// others.
func restrictDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	return nil
}

func writeKey(path string, key crypto.Signer) error {
	data, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", path, err)
	}
	return atomicfile.Write(path, data, 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(math.MaxInt64))
	if err != nil {
		// crypto/rand never fails on Linux ≥ 3.17 (getrandom).
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: cert.CertificateBlockType, Bytes: der})
}
