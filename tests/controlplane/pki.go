package main

// Certificates for a throwaway loopback cluster, made with crypto/x509 so
// nothing but this binary is needed. ECDSA P-256 keys: fast to generate and
// accepted by kube-apiserver (TLS, client certs, ES256 service-account tokens).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

type keyPair struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte // PKCS#8
}

type pkiSet struct {
	ca      keyPair
	clients map[string]keyPair
}

// client identities: kubeconfig user -> (CN, O)
var clientIdentities = map[string][2]string{
	"admin":              {"operon-admin", "system:masters"},
	"controller-manager": {"system:kube-controller-manager", ""},
	"scheduler":          {"system:kube-scheduler", ""},
	"kwok":               {"kwok", "system:masters"},
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func makeKeyPair(tmpl *x509.Certificate, parent *keyPair) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		return keyPair{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func writePair(dir, name string, kp keyPair) error {
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), kp.certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), kp.keyPEM, 0o600)
}

func generatePKI(dir string) (*pkiSet, error) {
	now := time.Now().Add(-time.Hour)
	notAfter := now.Add(5 * 365 * 24 * time.Hour)
	ca, err := makeKeyPair(&x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "operon-test-ca"},
		NotBefore:             now,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	if err != nil {
		return nil, err
	}
	if err := writePair(dir, "ca", ca); err != nil {
		return nil, err
	}

	serving, err := makeKeyPair(&x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
	}, &ca)
	if err != nil {
		return nil, err
	}
	if err := writePair(dir, "apiserver", serving); err != nil {
		return nil, err
	}

	p := &pkiSet{ca: ca, clients: map[string]keyPair{}}
	for user, id := range clientIdentities {
		subj := pkix.Name{CommonName: id[0]}
		if id[1] != "" {
			subj.Organization = []string{id[1]}
		}
		kp, err := makeKeyPair(&x509.Certificate{
			SerialNumber: serial(),
			Subject:      subj,
			NotBefore:    now,
			NotAfter:     notAfter,
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, &ca)
		if err != nil {
			return nil, err
		}
		if err := writePair(dir, "client-"+user, kp); err != nil {
			return nil, err
		}
		p.clients[user] = kp
	}

	// Service-account token signing key (ES256).
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saDER}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// writeKubeconfig writes a self-contained kubeconfig (embedded certs) for user.
func writeKubeconfig(path, server string, p *pkiSet, user string) error {
	kp := p.clients[user]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["operon"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.ca.certPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.certPEM, ClientKeyData: kp.keyPEM}
	cfg.Contexts["operon"] = &clientcmdapi.Context{Cluster: "operon", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "operon"
	return clientcmd.WriteToFile(*cfg, path)
}
