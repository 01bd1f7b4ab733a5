package testca

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestServerVerifiesAgainstCA: a client trusting only the CA connects to
// a server with the certificate, by address and by name.
func TestServerVerifiesAgainstCA(t *testing.T) {
	p, err := New("testca test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, _, _, err := p.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ca); err != nil {
		t.Fatal(err)
	}
	cert, err := p.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.CA) {
		t.Fatal("the CA's PEM does not parse")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		_ = resp.Body.Close()
	}
}
