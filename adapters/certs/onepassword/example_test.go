package onepassword_test

import (
	"context"
	"log"
	"time"

	"github.com/mycorrizal/mycorrizal/adapters/certs/onepassword"
)

// A node whose CA is the item "mycorrizal-ca" of the vault "infra"; the
// service-account token is in OP_SERVICE_ACCOUNT_TOKEN. The Source is then
// given to mycorrizal.WithCertSource.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	certs, err := onepassword.New(ctx, onepassword.Config{
		CACertRef: "op://infra/mycorrizal-ca/certificate",
		CAKeyRef:  "op://infra/mycorrizal-ca/private-key",
		NodeID:    "node-1",
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("CA %s, valid until %s", certs.CA().Subject, certs.CA().NotAfter)
	// node, err := mycorrizal.New(mycorrizal.WithNodeID("node-1"), mycorrizal.WithCertSource(certs))
}
