package ports_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/mycorrizal/mycorrizal/ports"
)

func TestCertNodeID(t *testing.T) {
	uri := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	cases := []struct {
		name string
		cert x509.Certificate
		want ports.NodeID
		err  bool
	}{
		{"common name", x509.Certificate{Subject: pkix.Name{CommonName: "n1"}}, "n1", false},
		{"uri wins", x509.Certificate{Subject: pkix.Name{CommonName: "cn"}, URIs: []*url.URL{ports.NodeIDURI("n2")}}, "n2", false},
		{"foreign uri ignored", x509.Certificate{Subject: pkix.Name{CommonName: "n3"}, URIs: []*url.URL{uri("spiffe://x/y")}}, "n3", false},
		{"two ids", x509.Certificate{URIs: []*url.URL{ports.NodeIDURI("a"), ports.NodeIDURI("b")}}, "", true},
		{"none", x509.Certificate{}, "", true},
		{"too long", x509.Certificate{Subject: pkix.Name{CommonName: strings.Repeat("x", 256)}}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ports.CertNodeID(&c.cert)
			if c.err {
				if !errors.Is(err, ports.ErrUnauthenticated) {
					t.Fatalf("got %q, %v; want ErrUnauthenticated", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
