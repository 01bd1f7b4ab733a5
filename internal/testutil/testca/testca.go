// Package testca makes a throwaway certificate authority and a server
// certificate it signs for 127.0.0.1 and localhost, for the TLS servers the
// tests start on loopback (the registry suite's docker-registry, the
// discovery site). ECDSA P-256; nothing is kept beyond what the caller
// writes.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is a CA and the server certificate it signed, in PEM.
type PKI struct {
	CA   []byte // the CA's certificate, for SSL_CERT_FILE or a client's pool
	Cert []byte // the server's certificate
	Key  []byte // the server's private key
}

// New makes a CA named name and a server certificate for 127.0.0.1,
// localhost and the extra dnsNames (critest's harness serves stand-ins as
// registry.k8s.io and gcr.io), both valid from an hour ago for validity.
func New(name string, validity time.Duration, dnsNames ...string) (*PKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     append([]string{"localhost"}, dnsNames...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("server key: %w", err)
	}
	return &PKI{
		CA:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// TLSCertificate is the server certificate for a tls.Config.
func (p *PKI) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(p.Cert, p.Key)
}

// Write writes ca.crt, server.cert and server.key (0600) into dir, the
// layout podman and skopeo read from a certs.d directory, and returns
// their paths.
func (p *PKI) Write(dir string) (ca, cert, key string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", err
	}
	ca, cert, key = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.cert"), filepath.Join(dir, "server.key")
	for path, data := range map[string][]byte{ca: p.CA, cert: p.Cert, key: p.Key} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", "", "", err
		}
	}
	return ca, cert, key, nil
}
