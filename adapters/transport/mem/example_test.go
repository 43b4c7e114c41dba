package mem_test

import (
	"context"
	"fmt"
	"io"

	"github.com/mycorrizal/mycorrizal/adapters/transport/mem"
)

// Two nodes on one in-memory network: b echoes what a sends.
func Example() {
	ctx := context.Background()
	net := mem.NewNetwork()
	a, _ := mem.New(net, mem.Config{})
	b, _ := mem.New(net, mem.Config{})
	defer a.Close()
	defer b.Close()
	if _, err := a.Listen(ctx, "a"); err != nil {
		panic(err)
	}
	addrB, err := b.Listen(ctx, "b")
	if err != nil {
		panic(err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		s, err := b.Accept(ctx)
		if err != nil {
			return
		}
		fmt.Println("b accepted a stream from", s.Peer())
		_, _ = io.Copy(s, s) // echo until a ends writing
		_ = s.Close()
	}()

	s, err := a.Open(ctx, "b", addrB)
	if err != nil {
		panic(err)
	}
	_, _ = s.Write([]byte("hello"))
	_ = s.CloseWrite()
	reply, _ := io.ReadAll(s)
	<-done
	fmt.Printf("a got %q back from %s at %s\n", reply, s.Peer(), addrB)
	// Output:
	// b accepted a stream from a
	// a got "hello" back from b at mem:b
}
