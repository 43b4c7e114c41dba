package memberlist

import (
	"fmt"
	"log"
	"net"
	"strings"

	ml "github.com/hashicorp/memberlist"
)

// transportFor returns the transport to hand memberlist for conf (after
// Tune) and updates conf's ports to the real ones. Without a transport in
// conf it binds memberlist's NetTransport itself, so that with BindPort 0
// the port the kernel chose is known and advertised: memberlist would
// otherwise overwrite an explicit AdvertisePort with it. The returned
// transport refuses to advertise port 0 or an unspecified IP.
func transportFor(conf *ml.Config, logger *log.Logger) (ml.Transport, error) {
	if conf.Transport != nil {
		nat, ok := conf.Transport.(ml.NodeAwareTransport)
		if !ok {
			return conf.Transport, nil
		}
		return &advertisingTransport{NodeAwareTransport: nat, port: conf.AdvertisePort}, nil
	}
	nt, err := bindNetTransport(conf, logger)
	if err != nil {
		return nil, err
	}
	bound := nt.GetAutoBindPort()
	conf.BindPort = bound // memberlist's default port for seeds given without one
	port := conf.AdvertisePort
	if port == 0 {
		port = bound
	}
	return &advertisingTransport{NodeAwareTransport: nt, port: port}, nil
}

// bindNetTransport binds memberlist's UDP+TCP transport on conf.BindAddr
// and conf.BindPort. With port 0 the TCP port the kernel picks may be taken
// for UDP, so it retries a few times, as memberlist itself does.
func bindNetTransport(conf *ml.Config, logger *log.Logger) (*ml.NetTransport, error) {
	nc := &ml.NetTransportConfig{
		BindAddrs:    []string{conf.BindAddr},
		BindPort:     conf.BindPort,
		Logger:       logger,
		MetricLabels: conf.MetricLabels,
	}
	attempts := 1
	if conf.BindPort == 0 {
		attempts = 10
	}
	var err error
	for range attempts {
		var nt *ml.NetTransport
		if nt, err = ml.NewNetTransport(nc); err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("memberlist: bind %s: %w", net.JoinHostPort(conf.BindAddr, fmt.Sprint(conf.BindPort)), err)
}

// advertisingTransport fixes what a transport advertises: a non-zero port
// forces that port, and neither port 0 nor an unspecified IP (0.0.0.0, ::)
// is ever advertised to peers.
type advertisingTransport struct {
	ml.NodeAwareTransport
	port int // port to advertise; 0 = the inner transport's choice
}

// FinalAdvertiseAddr implements ml.Transport.
func (t *advertisingTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if t.port != 0 {
		port = t.port
	}
	addr, port, err := t.NodeAwareTransport.FinalAdvertiseAddr(ip, port)
	if err != nil {
		return nil, 0, err
	}
	if t.port != 0 {
		port = t.port
	}
	if port == 0 {
		return nil, 0, fmt.Errorf("memberlist: transport would advertise port 0; set AdvertisePort")
	}
	if addr == nil || addr.IsUnspecified() {
		return nil, 0, fmt.Errorf("memberlist: transport would advertise the unspecified address %v; set AdvertiseAddr", addr)
	}
	return addr, port, nil
}
