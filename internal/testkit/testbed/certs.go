package testbed

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

// ServingCert is a fresh CA and a server certificate it signed for 127.0.0.1, ::1 and
// localhost, written as PEM files: for the issuer's HTTPS listener, a webhook's TLS, anything a
// test serves over https on loopback.
type ServingCert struct {
	// CAFile, CertFile and KeyFile are absolute paths: <dir>/<name>-ca.pem, <name>.pem and
	// <name>-key.pem.
	CAFile, CertFile, KeyFile string
	// CAPEM is CAFile's content, as a caBundle wants it.
	CAPEM []byte
	// Pool trusts the CA.
	Pool *x509.CertPool
	// TLS is the server certificate with its chain, for a tls.Config.
	TLS tls.Certificate
}

// NewServingCert makes a CA named after name and a server certificate, valid from an hour ago
// for a week, and writes them into dir.
func NewServingCert(dir, name string) (*ServingCert, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "credsidecar testbed " + name + " CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		return nil, fmt.Errorf("encode server key: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("write certificates: %w", err)
	}
	c := &ServingCert{
		CAFile:   filepath.Join(abs, name+"-ca.pem"),
		CertFile: filepath.Join(abs, name+".pem"),
		KeyFile:  filepath.Join(abs, name+"-key.pem"),
		CAPEM:    pemBlock("CERTIFICATE", caDER),
		Pool:     x509.NewCertPool(),
		TLS:      tls.Certificate{Certificate: [][]byte{srvDER, caDER}, PrivateKey: srvKey},
	}
	c.Pool.AddCert(caCert)
	files := []struct {
		path string
		body []byte
		mode os.FileMode
	}{
		{c.CAFile, c.CAPEM, 0o644},
		{c.CertFile, append(pemBlock("CERTIFICATE", srvDER), c.CAPEM...), 0o644},
		{c.KeyFile, pemBlock("PRIVATE KEY", keyDER), 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.body, f.mode); err != nil {
			return nil, fmt.Errorf("write certificates: %w", err)
		}
	}
	return c, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
