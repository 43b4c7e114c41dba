package consul_test

import (
	"context"
	"log"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/discovery/consul"
	"github.com/mycorrizal/mycorrizal/ports"
)

// Register this node with the local Consul agent, find its peers, and
// wait for the set to change.
func Example() {
	d, err := consul.New(consul.Config{
		Service: "mycorrizal",
		TTL:     10 * time.Second,
		// Address, Token and TLS default to CONSUL_HTTP_ADDR,
		// CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	self := ports.Registration{ID: "node-1", Addr: "10.0.0.1", Port: 7946}
	if err := d.Register(ctx, self); err != nil {
		log.Fatal(err)
	}
	defer d.Deregister(ctx)

	peers, err := d.Discover(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for {
		next, err := d.WaitChange(ctx, peers)
		if err != nil {
			log.Print(err)
			time.Sleep(time.Second) // back off, then wait again
			continue
		}
		peers = next
		log.Printf("peers: %v", peers)
	}
}
